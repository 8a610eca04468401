"""Every insertion position of an order (preference_accuracy): the counted marginals and the location
terms of the structured estimator's `all_positions` mode.

The counts must equal the marginals evaluated one coalition at a time through the utility itself
(ties at a zero margin included), their mean over all orders must be the Shapley value, and the
location terms must have mean exactly zero; then the sampler built on them is unbiased and converges.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from valuation.engine.positions import location_terms, position_marginals
from valuation.engine.sampling import Evaluator
from valuation.engine.shapley import estimate_shapley, exact_shapley
from valuation.engine.structured import StructuredConfig, StructuredSampler
from valuation.engine.utility import coalition_utility_fn

from tests.valuation.engine.test_structured import game, score_game


def tied_scores(n: int, T: int, seed: int) -> np.ndarray:
    """A score game with exact ties: a pair where every owner scores 0, an owner with no effect at all,
    and an exact duplicate (margins land exactly on 0 and on each other)."""
    D = score_game(n, T, seed)
    D[:, 0] = 0.0
    if n >= 3:
        D[1] = 0.0
        D[2] = D[0]
    return D


def one_at_a_time(fn, n: int, order: np.ndarray) -> np.ndarray:
    """(1/n) Σ_k v(Q_k ∪ {i}) − v(Q_k) with Q_k the first k others in `order`, through the utility."""
    out = np.zeros(n)
    for i in range(n):
        others = [j for j in order if j != i]
        members = np.zeros((2 * n, n), dtype=bool)
        for k in range(n):
            members[2 * k, others[:k]] = True
            members[2 * k + 1] = members[2 * k]
            members[2 * k + 1, i] = True
        values = fn(members)
        out[i] = (values[1::2] - values[0::2]).mean()
    return out


def numerators(D: np.ndarray, sizes) -> np.ndarray:
    return np.ascontiguousarray((D if sizes is None else D * sizes[:, None]).T)


@pytest.mark.parametrize("n", [1, 2, 3, 9])
@pytest.mark.parametrize("composition", ["sum", "mean"])
def test_counted_marginals_equal_the_utility_one_coalition_at_a_time(n, composition) -> None:
    D = tied_scores(n, 40, seed=n)
    sizes = np.arange(1, n + 1) * 7.0 if composition == "mean" else None
    fn = coalition_utility_fn(D, utility="preference_accuracy", composition=composition, beta=0.1, sizes=sizes)
    rng = np.random.default_rng(n)
    for _ in range(3):
        order = rng.permutation(n)
        both = position_marginals(numerators(D, sizes), order, antithetic=True)
        assert both[0] == pytest.approx(one_at_a_time(fn, n, order), abs=1e-12)
        assert both[1] == pytest.approx(one_at_a_time(fn, n, order[::-1]), abs=1e-12)
        assert np.array_equal(both[0], position_marginals(numerators(D, sizes), order))


def test_mean_over_every_order_is_the_shapley_value() -> None:
    n = 5
    D = tied_scores(n, 30, seed=4)
    fn = coalition_utility_fn(D, utility="preference_accuracy", composition="sum", beta=0.1)
    orders = list(itertools.permutations(range(n)))
    mean = np.mean([position_marginals(numerators(D, None), np.array(o)) for o in orders], axis=0)
    assert mean == pytest.approx(exact_shapley(fn.table()), abs=1e-12)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_location_terms_have_mean_exactly_zero_whatever_the_weights(n) -> None:
    D = score_game(n, 25, seed=n)
    weights = np.random.default_rng(n).standard_normal((2, 25, n))
    terms = np.array([location_terms(numerators(D, None), np.array(o), weights)
                      for o in itertools.permutations(range(n))])
    assert terms.shape[1:] == (n, 3)
    scale = np.abs(terms).max()
    assert scale > 0 or n == 2
    assert np.abs(terms.mean(axis=0)).max() <= 1e-12 * max(scale, 1.0)


def test_accuracy_uses_every_position_with_the_twin_up_to_its_limit() -> None:
    config = StructuredConfig()
    assert config.uses_all_positions(2, "preference_accuracy") and config.uses_all_positions(1000, "preference_accuracy")
    assert not config.uses_all_positions(1000, "bt_loglik") and not config.uses_all_positions(1, "preference_accuracy")
    assert not StructuredConfig(all_positions=False).uses_all_positions(100, "preference_accuracy")
    for n, twin in ((50, True), (51, False)):
        fn = coalition_utility_fn(score_game(n, 20, 0), utility="preference_accuracy", composition="sum", beta=0.1)
        sampler = StructuredSampler(fn, n, seed=0)
        assert sampler.all_positions and sampler.twin == twin and not sampler.with_prior
        assert sampler.game.m == 0  # exact big owners only feed the normal prior, unused here


# Every position corrected by the location terms (no prior: the default above 50 owners), and by a
# coarse lattice twin (so that its value is off and sampling has something to correct).
MODES = {"location terms": StructuredConfig(big_owners=0, twin_owners=0),
         "twin": StructuredConfig(big_owners=0, twin_resolution=24)}


@pytest.mark.parametrize("mode", MODES)
def test_positions_sampler_is_unbiased_and_efficient(mode) -> None:
    fn, truth = game(n=6, T=60, seed=1)
    grand, empty = fn(np.array([[True] * 6, [False] * 6]))
    raws = []
    for seed in range(200):
        sampler = StructuredSampler(fn, 6, seed=seed, config=MODES[mode])
        assert sampler.twin == (mode == "twin") and not sampler.exhausted
        evaluate = Evaluator(fn, 6, 2 + 2 * 10)  # anchors + two antithetic pairs of 5 prefixes each
        sampler.start(evaluate)
        sampler.step(evaluate, 2 * sampler.min_batch, np.random.default_rng(seed))
        estimate = sampler.estimate()
        assert estimate.values.sum() == pytest.approx(grand - empty, abs=1e-12)
        raws.append(sampler.raw)
    mean = np.mean(raws, axis=0)
    standard_error = np.std(raws, axis=0, ddof=1) / np.sqrt(len(raws))
    assert np.all(standard_error > 0)
    assert np.all(np.abs(mean - truth) <= 3 * standard_error + 1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("composition", ["sum", "mean"])
def test_positions_sampler_converges_and_covers(composition, mode) -> None:
    fn, truth = game(n=12, T=120, seed=2, composition=composition)
    config = MODES[mode]
    errors = []
    for budget in (100, 1000, 20000):
        sampler = StructuredSampler(fn, 12, seed=0, config=config)
        evaluate = Evaluator(fn, 12, budget)
        sampler.start(evaluate)
        sampler.step(evaluate, evaluate.remaining, np.random.default_rng(3))
        errors.append(np.abs(sampler.estimate().values - truth).max())
    assert errors[-1] < errors[0] and errors[-1] < 2e-3
    covered = []
    for seed in range(60):
        sampler = StructuredSampler(fn, 12, seed=seed, config=config)
        evaluate = Evaluator(fn, 12, 2 + 10 * sampler.min_batch)
        sampler.start(evaluate)
        sampler.step(evaluate, evaluate.remaining, np.random.default_rng(seed))
        e = sampler.estimate()
        half = 2.26 * e.stderr  # t quantile at 9 degrees of freedom
        covered.append(np.mean(np.abs(e.values - truth) <= half))
    assert np.mean(covered) >= 0.9


def test_a_large_accuracy_round_uses_every_position_and_stays_linear_in_memory() -> None:
    D = score_game(300, 40, 7)
    fn = coalition_utility_fn(D, utility="preference_accuracy", composition="sum", beta=0.1)
    sampler = StructuredSampler(fn, 300, seed=0)
    assert sampler.all_positions and sampler.moments.comoment is None
    sampler.start(Evaluator(fn, 300, 2))
    assert sampler._location_weights.shape == (2, 40, 300)  # O(n·T), nothing n × n
    r = estimate_shapley(fn, 300, method="structured", budget=20 * 299 + 2, seed=0, target=None)
    assert r.method == "structured" and r.n_evaluations <= 20 * 299 + 2 and np.all(np.isfinite(r.stderr))
    assert r.values[:100].mean() > r.values[100:200].mean() > r.values[200:].mean()


def test_refuses_an_order_that_is_not_a_permutation() -> None:
    numer_t = numerators(score_game(4, 10, 0), None)
    for bad in (np.arange(5), np.array([0, 1, 1, 3]), np.array([0, 1, 2, 4])):
        with pytest.raises(ValueError, match="permutation of 0..3"):
            position_marginals(numer_t, bad)
        with pytest.raises(ValueError, match="permutation of 0..3"):
            location_terms(numer_t, bad, np.zeros((2, 10, 4)))
    with pytest.raises(ValueError, match="weights must have shape"):
        location_terms(numer_t, np.arange(4), np.zeros((2, 4, 10)))


def test_results_do_not_depend_on_the_thread_count() -> None:
    # numba runs as many threads as torch has (the round's count); each pair is one thread's work.
    numer_t = numerators(score_game(40, 64, 5), None)
    weights = np.random.default_rng(5).standard_normal((2, 64, 40))
    order = np.random.default_rng(6).permutation(40)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append((position_marginals(numer_t, order, antithetic=True), location_terms(numer_t, order, weights)))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])
