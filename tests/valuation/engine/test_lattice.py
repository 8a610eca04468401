"""The lattice twins of preference_accuracy and bt_loglik (`valuation.engine.lattice`).

Their Shapley values must be exactly those of the twin game (its 2^n table through `exact_shapley`),
ties at a zero sum included, for odd and even n (accuracy's rows above n/2 come from complements) and
on either precision of the counts; a twin must approach the real game as the lattice gets finer; and
the sampler built on it must be unbiased, converge and cover (tests/valuation/engine/test_positions.py
runs accuracy's with the other every-position mode; here the log-likelihood's).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from valuation.engine.lattice import (
    MAX_LATTICE_OWNERS,
    RESOLUTIONS,
    _lattice_values,
    lattice_scores,
    lattice_shapley,
    lattice_steps,
    loglik_lattice_shapley,
    shapley_weights,
)
from valuation.engine.sampling import Evaluator, misallocation
from valuation.engine.shapley import estimate_shapley, exact_shapley
from valuation.engine.structured import StructuredConfig, StructuredSampler
from valuation.engine.utility import coalition_utility_fn

from tests.valuation.engine.test_structured import score_game


def twin_table_values(lattice_t: np.ndarray, steps=None, utility="preference_accuracy") -> np.ndarray:
    """The twin game's Shapley values the slow way: its terms (× steps) as a score matrix, 2^n table."""
    scores = lattice_t.T.astype(np.float64) * (1.0 if steps is None else steps)
    fn = coalition_utility_fn(scores, utility=utility, composition="sum", beta=0.1)
    return exact_shapley(fn.table())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8, 13])
def test_equals_the_shapley_value_of_the_twin_table(n) -> None:
    rng = np.random.default_rng(n)
    lattice_t = rng.integers(-6, 7, size=(40, n))
    lattice_t[0] = 0  # a pair nobody moves
    if n >= 3:
        lattice_t[:, 1] = 0  # an owner with no effect
        lattice_t[:, 2] = lattice_t[:, 0]  # a duplicate: sums land on each other and on 0
    assert lattice_shapley(lattice_t) == pytest.approx(twin_table_values(lattice_t), abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 11])
def test_loglik_twin_equals_the_shapley_value_of_its_table(n) -> None:
    rng = np.random.default_rng(10 + n)
    lattice_t = rng.integers(-9, 10, size=(25, n))
    lattice_t[3] = 0
    if n >= 3:
        lattice_t[:, 1] = 0
        lattice_t[:, 2] = -lattice_t[:, 0]  # sums that cancel exactly
    steps = rng.uniform(0.2, 3.0, size=25)
    assert loglik_lattice_shapley(lattice_t, steps, 0.1) == pytest.approx(
        twin_table_values(lattice_t, steps, "bt_loglik"), abs=1e-12)


def test_heavy_tailed_terms_and_wide_lattices_stay_exact() -> None:
    # One huge term per pair (the lattice's span is mostly its), the rest small: the alternating sums
    # reach far along the lattice and cancel exactly.
    rng = np.random.default_rng(0)
    lattice_t = rng.integers(-3, 4, size=(30, 11))
    lattice_t[:, 4] = rng.integers(-5000, 5000, size=30)
    assert lattice_shapley(lattice_t) == pytest.approx(twin_table_values(lattice_t), abs=1e-12)
    steps = np.full(30, 0.01)
    assert loglik_lattice_shapley(lattice_t, steps, 0.1) == pytest.approx(
        twin_table_values(lattice_t, steps, "bt_loglik"), abs=1e-12)


def test_float32_and_float64_counts_agree() -> None:
    # Up to 25 owners the counts fit float32's mantissa exactly, so both precisions give the same sums.
    lattice_t = lattice_scores(score_game(20, 50, 3), 700)
    weights = shapley_weights(20)
    single = _lattice_values(lattice_t, weights, np.zeros(1, np.float32))
    double = _lattice_values(lattice_t, weights, np.zeros(1, np.float64))
    assert single == pytest.approx(double, abs=1e-13)


def test_shapley_weights_sum_to_one_over_coalitions() -> None:
    from math import comb

    for n in (1, 5, 24):
        weights = shapley_weights(n)
        assert sum(comb(n - 1, k) * weights[k] for k in range(n)) == pytest.approx(1.0, abs=1e-12)


def test_lattice_scores_round_each_pair_to_its_own_step() -> None:
    D = score_game(9, 30, 1)
    D[:, 5] = 0.0
    lattice_t = lattice_scores(D, 400)
    assert lattice_t.shape == (30, 9) and lattice_t.dtype == np.int64 and lattice_t.flags.c_contiguous
    assert np.all(lattice_t[5] == 0)
    spans = np.abs(lattice_t).sum(axis=1)
    assert np.all(np.abs(spans[np.arange(30) != 5] - 400) <= 9 / 2 + 1e-9)  # G up to each term's rounding
    # The same signs as the scores wherever the term is not rounded to 0.
    nonzero = lattice_t != 0
    assert np.array_equal(np.sign(lattice_t[nonzero]), np.sign(D.T[nonzero]))


@pytest.mark.parametrize("utility", ["preference_accuracy", "bt_loglik"])
def test_a_finer_lattice_is_a_closer_twin(utility) -> None:
    D = score_game(12, 200, 2)
    fn = coalition_utility_fn(D, utility=utility, composition="sum", beta=0.1)
    truth = exact_shapley(fn.table())

    def twin(G):
        if utility == "preference_accuracy":
            return lattice_shapley(lattice_scores(D, G))
        return loglik_lattice_shapley(lattice_scores(D, G), lattice_steps(D, G), 0.1)

    errors = [misallocation(twin(G), truth) for G in (16, 256, 8192)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3


def test_refusals() -> None:
    with pytest.raises(ValueError, match="resolution must be a positive integer"):
        lattice_scores(np.ones((3, 4)), 0)
    with pytest.raises(ValueError, match="resolution must be a positive integer"):
        lattice_scores(np.ones((3, 4)), 10.5)
    with pytest.raises(ValueError, match="must be integers"):
        lattice_shapley(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"shape \(T, n\)"):
        lattice_shapley(np.ones(4, dtype=np.int64))
    with pytest.raises(ValueError, match="exact up to 50 owners"):
        lattice_shapley(np.ones((2, MAX_LATTICE_OWNERS + 1), dtype=np.int64))
    with pytest.raises(ValueError, match="steps must be 4 positive finite numbers"):
        loglik_lattice_shapley(np.ones((4, 3), dtype=np.int64), np.array([1.0, 1.0, 0.0, 1.0]), 0.1)
    with pytest.raises(ValueError, match="steps must be 4 positive finite numbers"):
        loglik_lattice_shapley(np.ones((4, 3), dtype=np.int64), np.ones(3), 0.1)


def test_results_do_not_depend_on_the_thread_count() -> None:
    lattice_t = lattice_scores(score_game(30, 70, 4), 900)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append((lattice_shapley(lattice_t), loglik_lattice_shapley(lattice_t, np.full(70, 0.05), 0.1)))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])


def test_the_sampler_uses_the_twin_up_to_its_limit_with_a_resolution_from_the_work() -> None:
    config = StructuredConfig()
    assert config.uses_twin(MAX_LATTICE_OWNERS, "preference_accuracy")
    assert not config.uses_twin(MAX_LATTICE_OWNERS + 1, "preference_accuracy")
    assert config.uses_twin(10, "bt_loglik") and not config.uses_twin(10, "bt_loglik", divided=True)
    assert not config.uses_twin(MAX_LATTICE_OWNERS + 1, "bt_loglik") and not config.uses_twin(1, "bt_loglik")
    assert not StructuredConfig(twin_owners=0).uses_twin(10, "preference_accuracy")
    assert not StructuredConfig(all_positions=False).uses_twin(10, "preference_accuracy")
    assert config.resolution_for(16, 1000) == (1 << 31) // (256 * 1000)
    assert config.resolution_for(16, 1000, "bt_loglik") == (1 << 28) // (256 * 1000)
    assert config.resolution_for(50, 100_000) == RESOLUTIONS[0] and config.resolution_for(2, 10) == RESOLUTIONS[1]
    assert StructuredConfig(twin_resolution=64).resolution_for(16, 1000) == 64
    D = score_game(20, 60, 5)
    fn = coalition_utility_fn(D, utility="preference_accuracy", composition="sum", beta=0.1)
    sampler = StructuredSampler(fn, 20, seed=0)
    assert sampler.twin and not sampler.with_prior and sampler.game.m == 0
    r = estimate_shapley(fn, 20, method="structured", budget=10 * 19 + 2, seed=0, target=None)
    assert r.method == "structured" and np.all(np.isfinite(r.stderr)) and np.all(r.stderr > 0)


def twin_loglik_game(composition="sum"):
    D = score_game(6, 60, 1)
    sizes = np.arange(1, 7) * 10.0 if composition == "mean" else None
    fn = coalition_utility_fn(D, utility="bt_loglik", composition=composition, beta=0.1, sizes=sizes)
    return fn, exact_shapley(fn.table())


def test_loglik_sampler_with_the_twin_is_unbiased_and_efficient() -> None:
    # A coarse twin (G = 8) and no exact prior, so that sampling has a real correction to make.
    fn, truth = twin_loglik_game()
    grand, empty = fn(np.array([[True] * 6, [False] * 6]))
    config = StructuredConfig(big_owners=0, twin_resolution=8)
    raws = []
    for seed in range(200):
        sampler = StructuredSampler(fn, 6, seed=seed, config=config)
        assert sampler.twin and not sampler.with_prior and not sampler.all_positions
        evaluate = Evaluator(fn, 6, 2 + 2 * 10)
        sampler.start(evaluate)
        sampler.step(evaluate, 2 * sampler.min_batch, np.random.default_rng(seed))
        estimate = sampler.estimate()
        assert estimate.values.sum() == pytest.approx(grand - empty, abs=1e-12)
        assert np.all(estimate.stderr > 0)
        raws.append(sampler.raw)
    mean = np.mean(raws, axis=0)
    standard_error = np.std(raws, axis=0, ddof=1) / np.sqrt(len(raws))
    assert np.all(standard_error > 0)
    assert np.all(np.abs(mean - truth) <= 3 * standard_error + 1e-12)


def test_loglik_twin_converges_and_mean_composition_keeps_the_normal_prior() -> None:
    fn, truth = twin_loglik_game()
    errors = []
    for pairs in (1, 300):
        # The coarse twin again (the default game of 6 owners is solved exactly by the normal prior).
        sampler = StructuredSampler(fn, 6, seed=2, config=StructuredConfig(big_owners=0, twin_resolution=8))
        evaluate = Evaluator(fn, 6, 2 + pairs * sampler.min_batch)
        sampler.start(evaluate)
        twin_error = np.abs(sampler.prior_values - truth).max()
        sampler.step(evaluate, evaluate.remaining, np.random.default_rng(2))
        errors.append(np.abs(sampler.estimate().values - truth).max())
    assert twin_error > 1e-3  # the twin alone is off: sampling has corrected it
    assert errors[1] < errors[0] and errors[1] < 0.1 * twin_error
    divided, _ = twin_loglik_game("mean")
    sampler = StructuredSampler(divided, 6, seed=0, config=StructuredConfig(big_owners=2))
    assert not sampler.twin and sampler.with_prior
