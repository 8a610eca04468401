"""The lattice twin of preference_accuracy (`valuation.engine.lattice`).

Its Shapley values must be exactly those of the twin game (its 2^n table through `exact_shapley`),
ties at a zero sum included, for odd and even n (the rows above n/2 come from complements) and on
either precision of the counts; the twin must approach the real game as the lattice gets finer; and
the sampler built on it must be unbiased, converge and cover (tests/valuation/engine/test_positions.py
runs it with the other every-position mode).
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
    shapley_weights,
)
from valuation.engine.sampling import misallocation
from valuation.engine.shapley import estimate_shapley, exact_shapley
from valuation.engine.structured import StructuredConfig, StructuredSampler
from valuation.engine.utility import coalition_utility_fn

from tests.valuation.engine.test_structured import score_game


def twin_table_values(lattice_t: np.ndarray) -> np.ndarray:
    """The twin game's Shapley values the slow way: its integer terms as a score matrix, 2^n table."""
    fn = coalition_utility_fn(lattice_t.T.astype(np.float64), utility="preference_accuracy", composition="sum", beta=0.1)
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


def test_heavy_tailed_terms_and_wide_lattices_stay_exact() -> None:
    # One huge term per pair (the lattice's span is mostly its), the rest small: the alternating sums
    # reach far along the lattice and cancel exactly.
    rng = np.random.default_rng(0)
    lattice_t = rng.integers(-3, 4, size=(30, 11))
    lattice_t[:, 4] = rng.integers(-5000, 5000, size=30)
    assert lattice_shapley(lattice_t) == pytest.approx(twin_table_values(lattice_t), abs=1e-12)


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


def test_a_finer_lattice_is_a_closer_twin() -> None:
    D = score_game(12, 200, 2)
    fn = coalition_utility_fn(D, utility="preference_accuracy", composition="sum", beta=0.1)
    truth = exact_shapley(fn.table())
    errors = [misallocation(lattice_shapley(lattice_scores(D, G)), truth) for G in (16, 256, 16384)]
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


def test_results_do_not_depend_on_the_thread_count() -> None:
    lattice_t = lattice_scores(score_game(30, 70, 4), 900)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(lattice_shapley(lattice_t))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(results[0], results[1])


def test_the_sampler_uses_the_twin_up_to_its_limit_with_a_resolution_from_the_work() -> None:
    config = StructuredConfig()
    assert config.uses_twin(MAX_LATTICE_OWNERS, "preference_accuracy")
    assert not config.uses_twin(MAX_LATTICE_OWNERS + 1, "preference_accuracy")
    assert not config.uses_twin(10, "bt_loglik") and not StructuredConfig(twin_owners=0).uses_twin(10, "preference_accuracy")
    assert config.resolution_for(16, 1000) == (1 << 31) // (256 * 1000)
    assert config.resolution_for(50, 100_000) == RESOLUTIONS[0] and config.resolution_for(2, 10) == RESOLUTIONS[1]
    assert StructuredConfig(twin_resolution=64).resolution_for(16, 1000) == 64
    D = score_game(20, 60, 5)
    fn = coalition_utility_fn(D, utility="preference_accuracy", composition="sum", beta=0.1)
    sampler = StructuredSampler(fn, 20, seed=0)
    assert sampler.twin and not sampler.with_prior and sampler.game.m == 0
    r = estimate_shapley(fn, 20, method="structured", budget=10 * 19 + 2, seed=0, target=None)
    assert r.method == "structured" and np.all(np.isfinite(r.stderr)) and np.all(r.stderr > 0)
