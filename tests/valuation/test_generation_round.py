"""A real `reward` round with the tiny model: per-objective values, checkpointed generations, resume, replay.

Slow: trains three DPO owners (TRL) and decodes every coalition. The signature ordering of the demo
domain is asserted on the demo itself (tests/valuation/test_commands.py).
"""
from decimal import Decimal

import pytest

from tests.valuation.conftest import add_eval_set, add_owner
from valuation import services
from valuation.engine import decoding, synthetic
from valuation.models import CoalitionGeneration, ValuationRound
from valuation.replay import round_replay

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
PROMPTS = 40


@pytest.fixture
def signature_market():
    add_owner("helpful", synthetic.owner_pairs("clean_helpful", 100, 21))
    add_owner("harmless", synthetic.owner_pairs("clean_harmless", 100, 22))
    add_owner("adversary", synthetic.owner_pairs("adversarial", 100, 23))
    return add_eval_set("eval", synthetic.eval_pairs(PROMPTS, 1))


@pytest.fixture
def decoded(monkeypatch):
    """Coalitions handed to the decoder, per call."""
    calls = []
    real = decoding.decode

    def counting(policies, weights, prompts, config=decoding.DecodingConfig(), **kwargs):
        calls.append(len(weights))
        return real(policies, weights, prompts, config, **kwargs)

    monkeypatch.setattr("valuation.engine.reward.decode", counting)
    return calls


class Interrupt(BaseException):
    """Stands in for a kill: not an Exception, so the round is not marked failed."""


def create(eval_set, base, name, **kwargs):
    return services.round_create(name=name, pool="100.00", eval_set=eval_set, base_model_dir=str(base),
                                 utility="reward", composition="mean", objectives=["helpfulness", "harmlessness"],
                                 prompts=PROMPTS, **kwargs)


def objective_values(r) -> dict:
    return {(v.owner.name, v.objective): v.shapley for v in r.objective_values.all()}


def test_a_reward_round_values_each_objective_checkpoints_generations_resumes_and_replays(
        signature_market, tiny_base_model, settings, tmp_path, decoded):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    r = create(signature_market, tiny_base_model, "interrupted", payout_objective="helpfulness=1,harmlessness=3")

    def stop_after_four(stage, done, total):
        if stage == "valuing" and total == 8 and done == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        services.round_execute(round_id=r.pk, on_progress=stop_after_four)
    assert CoalitionGeneration.objects.filter(round=r).count() == 4 and not r.objective_values.exists()
    resumed = services.round_execute(round_id=r.pk)
    assert resumed.status == ValuationRound.Status.DONE and resumed.estimator_used == "exact"
    assert decoded == [8, 4]  # killed after four of eight were checkpointed: only the other four again

    generations = {g.mask: g for g in resumed.generations.all()}
    assert sorted(generations) == list(range(8))
    assert all(len(g.responses) == PROMPTS and g.n_tokens > 0 for g in generations.values())
    phi = objective_values(resumed)
    for objective in ("helpfulness", "harmlessness"):  # efficiency on the real game of each objective
        total = sum(phi[(o, objective)] for o in ("helpful", "harmless", "adversary"))
        assert total == pytest.approx(generations[7].scores[objective] - generations[0].scores[objective], abs=1e-12)
        assert phi[("adversary", objective)] < 0 < phi[("helpful", objective)]
    for value in resumed.values.all():  # the payout objective is the admin's blend: linearity of φ
        blend = 0.25 * phi[(value.owner.name, "helpfulness")] + 0.75 * phi[(value.owner.name, "harmlessness")]
        assert value.shapley == pytest.approx(blend, abs=1e-12)
    assert sum(p.amount for p in resumed.payouts.all()) == Decimal("100.00")
    assert resumed.payouts.get(owner__user__username="adversary").amount == 0

    uninterrupted = services.round_execute(round_id=create(signature_market, tiny_base_model, "straight",
                                                           payout_objective="helpfulness=1,harmlessness=3").pk)
    assert objective_values(uninterrupted) == phi  # bit-identical: the same seed, the same shared noise
    report = round_replay(valuation_round=resumed)  # decodes afresh from the hash-checked models
    assert report.matches, report.to_dict()
    assert {c.what for c in report.checks} >= {"values for objective helpfulness", "values for objective harmlessness"}
