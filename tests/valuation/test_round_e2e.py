"""A real round with the tiny model: value ordering, exact payouts, resume and replay.

Slow: trains real DPO models (TRL) on the CPU. Owner models are cached by key, so the
four (utility, composition) rounds of the ordering test share three fine-tunes.
"""
from decimal import Decimal

import pytest

from valuation import services
from valuation.engine import dpo, synthetic
from valuation.models import OwnerModel, Payout, ScoreCache, ValuationRound
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
POOL = Decimal("1000.00")


@pytest.fixture
def three_owners():
    add_owner("clean", synthetic.owner_pairs("clean_mix", 120, 11))
    add_owner("noisy", synthetic.owner_pairs("noisy", 120, 12))
    add_owner("adversary", synthetic.owner_pairs("adversarial", 120, 13))
    return add_eval_set("eval", synthetic.eval_pairs(150, 0))


@pytest.fixture
def train_calls(monkeypatch):
    calls = []
    real = dpo.train_owner_model

    def counting(base_dir, pairs, out_dir, config, **kwargs):
        result = real(base_dir, pairs, out_dir, config, **kwargs)
        if not result.cached:  # a finished artifact returned as is is not a training
            calls.append(len(pairs))
        return result

    monkeypatch.setattr(dpo, "train_owner_model", counting)
    return calls


def values_of(r) -> dict[str, float]:
    return {v.owner.name: v.shapley for v in r.values.all()}


def payouts_of(r) -> dict[str, Decimal]:
    return {p.owner.name: p.amount for p in r.payouts.all()}


def run(eval_set, base, name, **kwargs):
    r = services.round_create(name=name, pool=str(POOL), eval_set=eval_set, base_model_dir=str(base), **kwargs)
    return services.round_execute(round_id=r.pk)


@pytest.mark.parametrize("utility", ["preference_accuracy", "bt_loglik"])
@pytest.mark.parametrize("composition", ["sum", "mean"])
def test_values_order_clean_over_noisy_over_adversary(three_owners, tiny_base_model, settings, tmp_path_factory,
                                                      utility, composition):
    # One artifacts dir for the four parametrised rounds: the owner models are trained once.
    settings.ARTIFACTS_DIR = tmp_path_factory.getbasetemp() / "ordering-artifacts"
    r = run(three_owners, tiny_base_model, f"{utility}-{composition}", utility=utility, composition=composition)
    assert r.status == ValuationRound.Status.DONE and r.estimator_used == "exact"
    phi = values_of(r)
    assert phi["clean"] > phi["noisy"] > 0 > phi["adversary"], phi
    v = r.coalition_utilities.order_by("mask").values_list("value", flat=True)
    assert sum(phi.values()) == pytest.approx(v[7] - v[0], abs=1e-9)  # efficiency on the real game
    paid = payouts_of(r)
    assert sum(paid.values()) == POOL and paid["adversary"] == Decimal("0")
    assert paid["clean"] > paid["noisy"] > 0
    assert set(r.timings) == {"training", "scoring", "valuing"}


class Interrupt(BaseException):
    """Stands in for a kill: not an Exception, so the round is not marked failed."""


def interrupt_at(stage: str, done: int):
    def on_progress(s, d, total):
        if s == stage and d == done:
            raise Interrupt(f"{s} {d}/{total}")
    return on_progress


def forget_caches(*rounds):
    """Drop finished rounds and every cached model and score: the next round starts cold."""
    for r in rounds:
        Payout.objects.filter(round=r).delete()
        r.delete()
    OwnerModel.objects.all().delete()
    ScoreCache.objects.all().delete()


@pytest.mark.parametrize("stage, done", [("training", 1), ("scoring", 0), ("valuing", 1)])
def test_interrupted_round_resumes_trains_nothing_twice_and_matches(three_owners, tiny_base_model, settings,
                                                                    tmp_path, train_calls, stage, done):
    settings.ARTIFACTS_DIR = tmp_path / "reference"
    reference = run(three_owners, tiny_base_model, "reference", training={"epochs": 1})
    expected, expected_paid = values_of(reference), payouts_of(reference)
    assert len(train_calls) == 3
    forget_caches(reference)

    settings.ARTIFACTS_DIR = tmp_path / "interrupted"
    r = services.round_create(name="interrupted", pool=str(POOL), eval_set=three_owners,
                              base_model_dir=str(tiny_base_model), training={"epochs": 1})
    with pytest.raises(Interrupt):
        services.round_execute(round_id=r.pk, on_progress=interrupt_at(stage, done))
    r.refresh_from_db()
    assert r.status == stage and r.runner == "" and not r.payouts.exists()
    resumed = services.round_execute(round_id=r.pk)
    assert len(train_calls) == 6  # three for the reference, three for this round: none twice
    assert resumed.status == ValuationRound.Status.DONE
    assert values_of(resumed) == expected  # bit-identical, not approximately equal
    assert payouts_of(resumed) == expected_paid
    assert Payout.objects.filter(round=resumed).count() == 3


def test_replay_from_scratch_is_bit_identical_and_cache_is_reused(three_owners, tiny_base_model, settings, tmp_path,
                                                                   train_calls):
    settings.ARTIFACTS_DIR = tmp_path / "first"
    first = run(three_owners, tiny_base_model, "first", training={"epochs": 1}, seed=3)
    again = run(three_owners, tiny_base_model, "again", training={"epochs": 1}, seed=3)
    assert len(train_calls) == 3 and all(p.model_reused for p in again.participants.all())
    assert values_of(again) == values_of(first)
    expected = values_of(first)
    forget_caches(again, first)
    settings.ARTIFACTS_DIR = tmp_path / "replay"
    replay = run(three_owners, tiny_base_model, "replay", training={"epochs": 1}, seed=3)
    assert len(train_calls) == 6
    assert values_of(replay) == expected


def test_a_finished_round_measures_what_the_next_estimate_needs(tiny_base_model, settings, tmp_path_factory):
    """The tokens counted at creation are the tokens training reports; the step log is kept per model; the
    next round on this base model gets an estimate from the measured throughput."""
    from valuation import estimate_selectors

    add_owner("small_a", synthetic.owner_pairs("clean_mix", 16, 21))
    add_owner("small_b", synthetic.owner_pairs("noisy", 16, 22))
    eval_set = add_eval_set("small_eval", synthetic.eval_pairs(8, 0))
    settings.ARTIFACTS_DIR = tmp_path_factory.mktemp("measured-artifacts")  # cold: adopted artifacts time nothing
    r = run(eval_set, tiny_base_model, "measured")
    epochs = r.config["training"]["epochs"]
    for p in r.participants.select_related("owner_model"):
        metrics = p.owner_model.metrics
        assert metrics["tokens"] == p.n_tokens * epochs > 0
        assert len(metrics["log"]["steps"]) == metrics["steps"] > 0
    fresh = services.round_create(name="next", pool="1.00", eval_set=eval_set, base_model_dir=str(tiny_base_model),
                                  seed=1)  # another seed: every model is to be trained again
    estimate = estimate_selectors.round_estimate(valuation_round=fresh)
    assert estimate["tokens"] == sum(p.n_tokens for p in fresh.participants.all()) * epochs
    assert estimate["training"] > 0 and estimate["scoring"] > 0 and estimate["training_source"].endswith("this model")
