"""Replay and incremental rounds on the tiny model (slow: real DPO training).

Replay from the stored artifacts must reproduce values and payouts bit for bit; from scratch
(cold artifacts, every owner model retrained) too, since training is deterministic. An
incremental round that adds one owner trains exactly one model and scores exactly one.
"""
import json
import shutil
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from valuation import replay, services
from valuation.engine import dpo, scoring, synthetic
from valuation.models import ValuationRound
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def market():
    add_owner("clean", synthetic.owner_pairs("clean_mix", 32, 41))
    add_owner("noisy", synthetic.owner_pairs("noisy", 24, 42))
    return add_eval_set("eval", synthetic.eval_pairs(40, 3))


@pytest.fixture
def counted(monkeypatch):
    """Fine-tunes actually run (not found on disk) and scoring passes, by call."""
    calls = {"train": 0, "score": 0}
    train, score = dpo.train_owner_model, scoring.score_model

    def counting_train(*args, **kwargs):
        result = train(*args, **kwargs)
        calls["train"] += not result.cached
        return result

    def counting_score(*args, **kwargs):
        calls["score"] += 1
        return score(*args, **kwargs)

    monkeypatch.setattr(dpo, "train_owner_model", counting_train)
    monkeypatch.setattr(scoring, "score_model", counting_score)
    return calls


def run(eval_set, base, name, **kwargs):
    r = services.round_create(name=name, pool="1000.00", eval_set=eval_set, base_model_dir=str(base),
                              training={"epochs": 1}, seed=7, **kwargs)
    return services.round_execute(round_id=r.pk)


def test_replay_with_the_same_artifacts_is_bit_identical(market, tiny_base_model, isolated_artifacts, counted):
    r = run(market, tiny_base_model, "first")
    assert counted == {"train": 2, "score": 3}
    report = replay.round_replay(valuation_round=r)
    assert counted == {"train": 2, "score": 6}  # rescored from the model files, not the score cache
    assert report.matches and [c.status for c in report.checks] == ["ok"] * 8
    assert [c.what for c in report.checks] == ["base model", "eval set", "owner data", "library versions",
                                               "semantic screen",
                                               "model of clean", "model of noisy", "utility table"]
    recorded = {v.owner.name: v.shapley for v in r.values.all()}
    assert {row["owner"]: row["replayed"] for row in report.values} == recorded  # float ==, not approx
    assert {row["owner"]: row["replayed"] for row in report.payouts} == {
        p.owner.name: str(p.amount.quantize(Decimal("0.01"))) for p in r.payouts.all()}

    out = StringIO()
    call_command("replay_round", "first", "--json", stdout=out)
    assert json.loads(out.getvalue())["matches"] is True

    record = replay.round_record(valuation_round=r)
    assert record["seed"] == 7 and record["versions"]["torch"] and record["base_model_hash"] == r.base_model_hash
    assert [o["owner"] for o in record["owners"]] == ["clean", "noisy"]
    assert all(o["model_hash"] and o["data_hash"] and not o["reused"] for o in record["owners"])


def test_replay_from_scratch_in_a_cold_artifacts_dir(market, tiny_base_model, isolated_artifacts, counted):
    r = run(market, tiny_base_model, "first")
    shutil.rmtree(Path(isolated_artifacts) / "owner_models")  # cold: only the inputs are left

    missing = replay.round_replay(valuation_round=r)
    assert not missing.matches and [c.status for c in missing.checks][-1] == "failed"
    assert "missing" in missing.checks[-1].detail and counted["train"] == 2
    with pytest.raises(CommandError, match="does not reproduce"):
        call_command("replay_round", str(r.pk), stdout=StringIO(), stderr=StringIO())

    out = StringIO()
    call_command("replay_round", str(r.pk), "--from-scratch", stdout=out, stderr=StringIO())
    assert counted["train"] == 4  # both owner models retrained
    assert "values and payouts match exactly" in out.getvalue()
    assert not any(Path(isolated_artifacts).glob("replay-*"))  # retrained models were temporary


def test_tampered_model_is_caught(market, tiny_base_model, isolated_artifacts):
    r = run(market, tiny_base_model, "first")
    model = r.participants.get(index=1).owner_model
    weights = Path(model.artifact_path) / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b"\0")
    report = replay.round_replay(valuation_round=r)
    assert not report.matches and report.checks[-1].what == "model of noisy" and report.checks[-1].status == "failed"


def test_adding_one_owner_costs_one_fine_tune_and_one_scoring_pass(market, tiny_base_model, isolated_artifacts,
                                                                   counted):
    first = run(market, tiny_base_model, "first")
    assert counted == {"train": 2, "score": 3}
    add_owner("late", synthetic.owner_pairs("clean_helpful", 24, 43))
    second = run(market, tiny_base_model, "second")
    assert second.status == ValuationRound.Status.DONE
    assert counted == {"train": 3, "score": 4}  # one new model, one new scoring pass; base and old owners cached
    reused = {p.owner.name: p.model_reused for p in second.participants.all()}
    assert reused == {"clean": True, "late": False, "noisy": True}
    record = replay.round_record(valuation_round=second)
    assert record["n_reused"] == 2 and record["n_trained"] == 1
    by_owner = {o["owner"]: o for o in record["owners"]}
    assert by_owner["clean"]["trained_in_round"] == first.pk and by_owner["late"]["trained_in_round"] == second.pk
    first_models = {p.owner.name: p.owner_model_id for p in first.participants.all()}
    assert {p.owner.name: p.owner_model_id for p in second.participants.all() if p.model_reused} == first_models
