"""Round time estimates: the arithmetic on numbers, and the round page's wording from this machine's records."""
import io

import pytest
from django.test import Client
from django.utils import timezone

from marketplace.services import eval_set_create, owner_create
from tests.conftest import PASSWORD, jsonl_bytes, make_pairs
from tests.dashboards import round_for
from tests.valuation.engine.test_presets import weights_of
from valuation import estimate_selectors, estimates
from valuation.models import OwnerModel, RoundOwner, RoundTask, ValuationRound


def test_throughput_is_total_work_over_total_time():
    rate = estimates.throughput([(1000, 10.0), (3000, 10.0), (0, 5.0), (50, 0.0)])
    assert rate.per_second == 200.0 and rate.runs == 2 and not rate.scaled
    assert rate.source == "2 runs on this model"
    assert estimates.throughput([]) is None and estimates.throughput([(0, 3.0)]) is None


def test_other_models_scale_by_parameter_count():
    # 1,000 tokens/s on a 1M model and 500 tokens/s on a 2M model are both 1e9 token-parameters/s.
    rate = estimates.scaled_throughput([(1000, 1.0, 1_000_000), (1000, 2.0, 2_000_000), (9, 1.0, None)], 100_000_000)
    assert rate.per_second == pytest.approx(10.0) and rate.runs == 2 and rate.scaled
    assert rate.source == "2 runs on other base models, scaled by parameter count"
    assert estimates.scaled_throughput([(1000, 1.0, None)], 10) is None


def test_seconds_and_remaining():
    assert estimates.seconds_for(600, estimates.Throughput(per_second=20.0, runs=1)) == 30.0
    assert estimates.seconds_for(600, None) is None
    assert estimates.remaining_seconds(done=1, total=4, elapsed=30.0, planned=None) == 90.0  # the pace so far
    assert estimates.remaining_seconds(done=0, total=4, elapsed=30.0, planned=100.0) == 70.0  # the plan less time spent
    assert estimates.remaining_seconds(done=0, total=4, elapsed=130.0, planned=100.0) == 0.0
    assert estimates.remaining_seconds(done=0, total=0, elapsed=5.0, planned=None) is None  # nothing to go on
    assert estimates.remaining_seconds(done=4, total=4, elapsed=5.0, planned=None) == 0.0


@pytest.mark.parametrize("seconds, text", [(None, "no measurement yet"), (0.2, "1 s"), (95, "95 s"), (150, "2 min"),
                                           (3 * 3600 + 60, "3.0 h")])
def test_duration_text(seconds, text):
    assert estimates.duration_text(seconds) == text


# --- from the records of this machine ---------------------------------------------------------------

TRAINING = {"beta": 0.1, "epochs": 2, "learning_rate": 1e-3, "batch_size": 16, "gradient_accumulation": 1,
            "loss_types": ["sigmoid", "sft"], "loss_weights": [1.0, 1.0], "use_lora": False, "lora_r": 16,
            "lora_alpha": 32, "lora_dropout": 0.0, "max_length": 128, "seed": 0}


@pytest.fixture
def queued(db, tmp_path):
    eval_set = eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(4, tag="eval"))),
                               filename="heldout.jsonl")
    team = [owner_create(username=f"o{i}", password=PASSWORD) for i in range(2)]
    r = round_for("r-queued", eval_set, team, status=ValuationRound.Status.QUEUED,
                  config={"beta": 0.1, "training": TRAINING})
    RoundOwner.objects.filter(round=r, index=0).update(n_tokens=3000)
    RoundOwner.objects.filter(round=r, index=1).update(n_tokens=1000)
    ValuationRound.objects.filter(pk=r.pk).update(base_model_path=str(weights_of(tmp_path / "base", 2_000_000)))
    r.refresh_from_db()
    return r


def finished_fine_tune(key: str, base_hash: str, tokens: int, seconds: float, parameters=None, lora=None):
    metrics = {"tokens": tokens, "base_parameters": parameters}
    if lora is not None:  # fine-tunes from before the kind was recorded have no key
        metrics["lora"] = lora
    OwnerModel.objects.create(cache_key=key, base_model_hash=base_hash, data_hash="d", config_hash="c",
                              artifact_path="/x", model_hash=key, seconds=seconds, metrics=metrics)


def test_no_measurement_yet(queued):
    estimate = estimate_selectors.round_estimate(valuation_round=queued)
    assert estimate["kind"] == "before" and estimate["tokens"] == 8000  # 4,000 tokens x 2 epochs
    assert estimate["training"] is None and estimate["scoring"] is None and estimate["total"] is None


def test_estimate_from_this_models_runs(queued, staff_user):
    finished_fine_tune("a", queued.base_model_hash, tokens=4000, seconds=10.0)  # 400 tokens/s
    finished_fine_tune("b", "other", tokens=10, seconds=100.0)  # another base model: not used when this one has runs
    done = round_for("r-old", queued.eval_set, [], status=ValuationRound.Status.DONE)  # 4 eval pairs
    RoundTask.objects.create(round=done, stage="scoring", index=-1, status="done", seconds=2.0)  # 2 pairs/s
    RoundTask.objects.create(round=done, stage="scoring", index=0, status="done", seconds=0.01, cached=True)
    estimate = estimate_selectors.round_estimate(valuation_round=queued)
    assert estimate["training"] == pytest.approx(20.0)  # 8,000 tokens at 400/s
    assert estimate["scoring"] == pytest.approx(6.0)  # 3 passes (2 owners + base) x 4 pairs at 2 pairs/s
    assert estimate["total"] == pytest.approx(26.0)
    html = Client()
    html.force_login(staff_user)
    page = html.get(f"/rounds/{queued.pk}/").content.decode()
    assert "Estimated duration:</strong>\n  26 s — training 20 s, scoring 6 s" in page
    assert "8,000 tokens to train at 1 run on this model" in page


def test_a_full_fine_tune_is_estimated_from_full_fine_tunes_and_lora_from_lora(queued):
    finished_fine_tune("lora", queued.base_model_hash, tokens=8000, seconds=1.0, lora=True)  # 8,000 tokens/s
    finished_fine_tune("old", queued.base_model_hash, tokens=8000, seconds=2.0)  # kind not recorded
    assert estimate_selectors.round_estimate(valuation_round=queued)["training"] == pytest.approx(2.0)  # old only
    finished_fine_tune("full", queued.base_model_hash, tokens=800, seconds=1.0, lora=False)  # 800 tokens/s
    assert estimate_selectors.round_estimate(valuation_round=queued)["training"] == pytest.approx(10.0)
    ValuationRound.objects.filter(pk=queued.pk).update(config={**queued.config,
                                                               "training": {**TRAINING, "use_lora": True}})
    queued.refresh_from_db()
    assert estimate_selectors.round_estimate(valuation_round=queued)["training"] == pytest.approx(1.0)


def test_this_models_untagged_runs_come_before_another_models_runs_of_the_kind(queued):
    finished_fine_tune("old", queued.base_model_hash, tokens=8000, seconds=2.0)  # here, kind not recorded
    finished_fine_tune("elsewhere", "other", tokens=1000, seconds=1.0, parameters=1_000_000, lora=False)
    estimate = estimate_selectors.round_estimate(valuation_round=queued)
    assert estimate["training"] == pytest.approx(2.0) and not estimate["training_source"].endswith("count")


def test_estimate_scaled_from_another_base_model(queued):
    finished_fine_tune("a", "other", tokens=1000, seconds=1.0, parameters=1_000_000)  # 1e9 token-params/s
    estimate = estimate_selectors.round_estimate(valuation_round=queued)
    assert estimate["training"] == pytest.approx(8000 / 500)  # 2M parameters here: 500 tokens/s
    assert estimate["training_source"].endswith("scaled by parameter count")


def test_cached_owner_models_cost_no_training(queued):
    from valuation.engine.hashing import config_hash
    from valuation.stages.common import training_config
    from valuation.stages.training import owner_model_key

    first = queued.participants.get(index=0)
    key = owner_model_key(base_model_hash=queued.base_model_hash, data_hash=first.data_hash,
                          config_hash=config_hash(training_config(queued.config)))
    finished_fine_tune(key, queued.base_model_hash, tokens=4000, seconds=10.0)
    assert estimate_selectors.round_estimate(valuation_round=queued)["tokens"] == 2000  # only owner 1 trains


def test_remaining_time_while_training(queued, staff_user):
    finished_fine_tune("a", queued.base_model_hash, tokens=4000, seconds=10.0)
    ValuationRound.objects.filter(pk=queued.pk).update(
        status=ValuationRound.Status.TRAINING, started_at=timezone.now() - timezone.timedelta(seconds=600),
        progress={"training": {"done": 1, "total": 2}})
    queued.refresh_from_db()
    estimate = estimate_selectors.round_estimate(valuation_round=queued)
    assert estimate["kind"] == "running"
    assert estimate["stage_left"] == pytest.approx(600.0, abs=5.0)  # one more owner at 600 s each
    assert estimate["scoring"] is None and estimate["remaining"] is None  # scoring never measured here
    client = Client()
    client.force_login(staff_user)
    page = client.get(f"/rounds/{queued.pk}/").content.decode()
    assert ("Remaining:</strong> no measurement yet\n  (training: about 10 min from the progress so far; "
            "then scoring: no measurement yet)") in page


def test_no_estimate_once_done(queued):
    ValuationRound.objects.filter(pk=queued.pk).update(status=ValuationRound.Status.DONE)
    queued.refresh_from_db()
    assert estimate_selectors.round_estimate(valuation_round=queued) is None


def test_the_round_api_gives_staff_the_estimate_and_owners_none(queued, staff_user):
    finished_fine_tune("a", queued.base_model_hash, tokens=4000, seconds=10.0)
    staff = Client()
    staff.force_login(staff_user)
    estimate = staff.get(f"/api/rounds/{queued.pk}/").json()["estimate"]
    assert estimate["kind"] == "before" and estimate["training"] == pytest.approx(20.0) and estimate["scoring"] is None
    assert 'id="round-estimate"' in estimate["html"] and "training 20 s" not in estimate["html"]  # no total yet
    owner = Client()
    owner.force_login(queued.participants.get(index=0).owner.user)
    assert owner.get(f"/api/rounds/{queued.pk}/").json()["estimate"] is None
