"""The valuing stage on cached scores (no training): exact vs sampled estimators, CIs,
interactions and the exact pool split. Scores are written into the cache directly, as the
scoring stage would."""
from decimal import Decimal

import numpy as np
import pytest

from marketplace.services import owner_create
from valuation import services
from valuation.models import OwnerModel, ScoreCache, ValuationRound
from valuation.stages import run_valuing
from valuation.stages.scoring import score_eval_hash, score_key
from valuation.engine import synthetic
from valuation.engine.shapley import exact_shapley
from valuation.engine.utility import all_coalition_utilities
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = pytest.mark.django_db
T = 40


def market_with_scores(n: int, fake_model_dir, *, seed=0, **round_kwargs):
    """n owners whose (fake) models change eval margins by known amounts; returns (round, D)."""
    for i in range(n):
        add_owner(f"owner{i:02d}", synthetic.owner_pairs("clean_mix", 4, i))
    eval_set = add_eval_set("eval", synthetic.eval_pairs(T, 0))
    r = services.round_create(name="r", pool="100.00", eval_set=eval_set, base_model_dir=str(fake_model_dir),
                              seed=seed, **round_kwargs)
    rng = np.random.default_rng(seed)
    quality = np.linspace(1.0, -0.6, n)  # owner i's mean margin change: good first, adversarial last
    D = quality[:, None] + rng.normal(0, 0.8, size=(n, T))
    base_c, base_r = rng.normal(-20, 2, T), rng.normal(-21, 2, T)
    ScoreCache.objects.create(model_hash=r.base_model_hash, eval_hash=score_eval_hash(r),
                              chosen_logps=list(base_c), rejected_logps=list(base_r))
    for p in r.participants.order_by("index"):
        model = OwnerModel.objects.create(cache_key=f"k{p.index}", base_model_hash=r.base_model_hash,
                                          data_hash=p.data_hash, config_hash="c", artifact_path="/nowhere",
                                          model_hash=f"m{p.index}")
        p.owner_model = model
        p.save()
        ScoreCache.objects.create(model_hash=score_key(r, model), eval_hash=score_eval_hash(r),
                                  chosen_logps=list(base_c + D[p.index]), rejected_logps=list(base_r))
    return r, D


def test_exact_round_stores_values_interactions_and_exact_split(fake_model_dir):
    r, D = market_with_scores(5, fake_model_dir)
    run_valuing(r)
    r.refresh_from_db()
    v = all_coalition_utilities(D, utility="preference_accuracy", composition="sum", beta=0.1,
                                sizes=np.full(5, 4))
    expected = exact_shapley(v)
    got = [val.shapley for val in r.values.order_by("owner__user__username")]
    assert got == pytest.approx(expected, abs=1e-12)
    assert r.estimator_used == "exact" and r.stopped_because == "exact" and r.n_evaluations == 32
    assert r.coalition_utilities.count() == 32 and len(r.interactions) == 5
    assert [row[i] for i, row in enumerate(r.interactions)] == pytest.approx(expected, abs=1e-12)
    assert all(val.stderr == 0 and val.ci_low == val.shapley == val.ci_high for val in r.values.all())
    assert sum(p.amount for p in r.payouts.all()) == Decimal("100.00")
    assert r.status == ValuationRound.Status.DONE


@pytest.mark.parametrize("estimator", ["auto", "kernel", "permutation", "stratified", "structured"])
def test_sampled_round_records_cis_budget_and_stopping(fake_model_dir, estimator):
    r, D = market_with_scores(8, fake_model_dir, estimator=estimator, budget=200 if estimator == "auto" else 2000,
                              target=0.02)
    run_valuing(r)
    r.refresh_from_db()
    # Above the exact limit a round's cached scores get the structured estimator.
    assert r.estimator_used == ("structured" if estimator == "auto" else estimator)
    assert r.n_evaluations <= r.config["budget"] and r.misallocation_bound is not None
    assert r.utilities_path == "" and r.coalition_utilities.count() == 0
    truth = exact_shapley(all_coalition_utilities(D, utility="preference_accuracy", composition="sum", beta=0.1,
                                                  sizes=np.full(8, 4)))
    values = list(r.values.order_by("owner__user__username"))
    if r.estimator_used == "structured":
        # 8 owners: every owner's 7 others fit the structured prior exactly — nothing left to sample.
        assert r.stopped_because == "exact" and r.n_evaluations == 2
        assert [v.shapley for v in values] == pytest.approx(truth, abs=1e-12)
    else:
        assert r.stopped_because in ("target", "budget")
        assert all(v.stderr > 0 and v.ci_low < v.shapley < v.ci_high for v in values)
    assert np.corrcoef([v.shapley for v in values], truth)[0, 1] > 0.9
    assert sum(p.amount for p in r.payouts.all()) == Decimal("100.00")


def test_sampled_round_is_reproducible_from_its_seed(fake_model_dir):
    r, _ = market_with_scores(8, fake_model_dir, estimator="kernel", budget=500, seed=4)
    run_valuing(r)
    first = [(v.shapley, v.stderr) for v in r.values.order_by("owner__user__username")]
    ValuationRound.objects.filter(pk=r.pk).update(status=ValuationRound.Status.VALUING)
    r.refresh_from_db()
    run_valuing(r)  # a re-run (e.g. after a crash) replaces the drafts with the same numbers
    assert [(v.shapley, v.stderr) for v in r.values.order_by("owner__user__username")] == first
    assert r.payouts.count() == 8
