"""Shapley, Banzhaf and leave-one-out on games with closed-form answers, plus the axioms."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest

from valuation.engine.shapley import (
    ShapleyResult,
    exact_banzhaf,
    exact_shapley,
    exact_shapley_result,
    leave_one_out,
    semivalue,
    shapley_weights,
)

TOL = 1e-9


def game_table(n: int, v: Callable[[frozenset[int]], float]) -> np.ndarray:
    """The 2^n table of a set function, index = bitmask (bit i ⇔ player i ∈ S)."""
    return np.array(
        [v(frozenset(i for i in range(n) if mask >> i & 1)) for mask in range(1 << n)],
        dtype=np.float64,
    )


def brute_force_shapley(v: np.ndarray) -> np.ndarray:
    """Average marginal contribution over all n! arrival orders."""
    n = v.size.bit_length() - 1
    phi = np.zeros(n)
    for order in itertools.permutations(range(n)):
        mask = 0
        for i in order:
            phi[i] += v[mask | 1 << i] - v[mask]
            mask |= 1 << i
    return phi / math.factorial(n)


def weighted_majority(weights: list[float], quota: float) -> np.ndarray:
    return game_table(len(weights), lambda s: float(sum(weights[i] for i in s) >= quota))


# --- closed-form games -------------------------------------------------------------


@pytest.mark.parametrize("costs", [[1.0, 3.0, 4.0, 8.0], [2.0, 2.0, 5.0, 7.0, 7.5, 11.0], [5.0]])
def test_airport_game_matches_littlechild_owen(costs: list[float]) -> None:
    n = len(costs)
    v = game_table(n, lambda s: max((costs[i] for i in s), default=0.0))
    # φ_i = Σ_{k≤i} (c_k − c_{k−1}) / (n − k + 1), 1-indexed with c_0 = 0.
    padded = [0.0, *costs]
    expected = [
        sum((padded[k] - padded[k - 1]) / (n - k + 1) for k in range(1, i + 1)) for i in range(1, n + 1)
    ]
    np.testing.assert_allclose(exact_shapley(v), expected, rtol=0, atol=TOL)


def test_airport_game_as_a_cost_saving_game_negates() -> None:
    costs = [1.0, 3.0, 4.0]
    v = game_table(3, lambda s: -max((costs[i] for i in s), default=0.0))
    np.testing.assert_allclose(exact_shapley(v), [-1 / 3, -4 / 3, -7 / 3], rtol=0, atol=TOL)


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (1, 2, [2 / 3, 1 / 6, 1 / 6]),
        (1, 3, [3 / 4, 1 / 12, 1 / 12, 1 / 12]),
        (2, 2, [1 / 2, 1 / 2, 1 / 2, 1 / 2]),
    ],
)
def test_glove_game(left: int, right: int, expected: list[float]) -> None:
    v = game_table(left + right, lambda s: min(sum(i < left for i in s), sum(i >= left for i in s)))
    np.testing.assert_allclose(exact_shapley(v), expected, rtol=0, atol=TOL)


@pytest.mark.parametrize(("n", "carrier"), [(3, {0}), (5, {1, 3}), (6, {0, 2, 4, 5}), (4, {0, 1, 2, 3})])
def test_unanimity_game_splits_evenly_over_its_carrier(n: int, carrier: set[int]) -> None:
    v = game_table(n, lambda s: float(carrier <= s))
    expected = [1 / len(carrier) if i in carrier else 0.0 for i in range(n)]
    np.testing.assert_allclose(exact_shapley(v), expected, rtol=0, atol=TOL)
    expected_banzhaf = [0.5 ** (len(carrier) - 1) if i in carrier else 0.0 for i in range(n)]
    np.testing.assert_allclose(exact_banzhaf(v), expected_banzhaf, rtol=0, atol=TOL)


@pytest.mark.parametrize(
    ("weights", "quota", "expected"),
    [
        ([50, 49, 1], 51, [2 / 3, 1 / 6, 1 / 6]),
        ([1, 1, 1], 2, [1 / 3, 1 / 3, 1 / 3]),
        # S wins iff 0 ∈ S and |S| ≥ 2: player 0 is pivotal unless it arrives first
        # (3/4 of orders); player i only when 0 arrived first and i second (2/24).
        ([3, 1, 1, 1], 4, [3 / 4, 1 / 12, 1 / 12, 1 / 12]),
        ([10, 1, 1], 5, [1.0, 0.0, 0.0]),  # a dictator takes everything
    ],
)
def test_weighted_majority_game(weights: list[float], quota: float, expected: list[float]) -> None:
    np.testing.assert_allclose(exact_shapley(weighted_majority(weights, quota)), expected, rtol=0, atol=TOL)


def test_duplicate_players_get_equal_values() -> None:
    sizes = [3.0, 3.0, 1.0, 5.0, 3.0]
    v = game_table(5, lambda s: math.sqrt(sum(sizes[i] for i in s)))
    phi = exact_shapley(v)
    assert phi[0] == pytest.approx(phi[1], abs=1e-12) == pytest.approx(phi[4], abs=1e-12)
    assert phi[2] < phi[0] < phi[3]
    assert phi.sum() == pytest.approx(math.sqrt(15.0), abs=1e-12)


def test_one_and_zero_players() -> None:
    np.testing.assert_allclose(exact_shapley(np.array([0.25, 1.0])), [0.75], rtol=0, atol=0)
    assert exact_shapley(np.array([3.0])).shape == (0,)


# --- axioms on random games ----------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_matches_brute_force_over_permutations(n: int) -> None:
    v = np.random.default_rng(n).normal(size=1 << n)
    np.testing.assert_allclose(exact_shapley(v), brute_force_shapley(v), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [3, 7, 11])
def test_efficiency(n: int) -> None:
    v = np.random.default_rng(n).normal(size=1 << n)
    assert exact_shapley(v).sum() == pytest.approx(v[-1] - v[0], abs=1e-12)


def test_symmetry() -> None:
    n, rng = 6, np.random.default_rng(7)
    u = rng.normal(size=1 << n)
    masks = np.arange(1 << n)
    bit2, bit4 = (masks >> 2) & 1, (masks >> 4) & 1
    swapped = masks ^ ((bit2 ^ bit4) << 2) ^ ((bit2 ^ bit4) << 4)  # swap players 2 and 4
    v = u + u[swapped]  # a game invariant under that swap
    phi = exact_shapley(v)
    assert phi[2] == pytest.approx(phi[4], abs=1e-12)
    assert not np.isclose(phi[2], phi[0])


def test_null_player_gets_zero() -> None:
    n, null = 7, 3
    u = np.random.default_rng(11).normal(size=1 << n)
    v = u[np.arange(1 << n) & ~(1 << null)]  # v(S) = u(S ∖ {null})
    phi = exact_shapley(v)
    assert phi[null] == pytest.approx(0.0, abs=1e-12)
    assert exact_banzhaf(v)[null] == pytest.approx(0.0, abs=1e-12)
    assert leave_one_out(v)[null] == 0.0


def test_linearity() -> None:
    rng = np.random.default_rng(3)
    v, w = rng.normal(size=(2, 1 << 8))
    np.testing.assert_allclose(
        exact_shapley(2.5 * v - 0.75 * w),
        2.5 * exact_shapley(v) - 0.75 * exact_shapley(w),
        rtol=0, atol=1e-12,
    )


@pytest.mark.parametrize("chunk", [1, 2, 8, 100])
def test_chunking_does_not_change_values(chunk: int) -> None:
    v = np.random.default_rng(5).normal(size=1 << 9)
    np.testing.assert_allclose(exact_shapley(v, chunk=chunk), exact_shapley(v), rtol=0, atol=1e-13)
    np.testing.assert_allclose(exact_banzhaf(v, chunk=chunk), exact_banzhaf(v), rtol=0, atol=1e-13)


def test_shapley_weights_sum_to_one_over_subsets() -> None:
    n = 12
    w = shapley_weights(n)
    # Σ_k C(n−1, k)·w(k) = 1: the weights are a distribution over S ⊆ N∖{i}.
    assert sum(math.comb(n - 1, k) * w[k] for k in range(n)) == pytest.approx(1.0, abs=1e-14)
    assert w[0] == w[-1] == pytest.approx(1 / n)


# --- Banzhaf and leave-one-out ---------------------------------------------------------


def test_banzhaf_on_glove_and_majority_games() -> None:
    glove = game_table(3, lambda s: min(int(0 in s), len(s - {0})))
    np.testing.assert_allclose(exact_banzhaf(glove), [3 / 4, 1 / 4, 1 / 4], rtol=0, atol=TOL)
    majority = weighted_majority([50, 49, 1], 51)
    np.testing.assert_allclose(exact_banzhaf(majority), [3 / 4, 1 / 4, 1 / 4], rtol=0, atol=TOL)


def test_leave_one_out_on_known_games() -> None:
    glove = game_table(3, lambda s: min(int(0 in s), len(s - {0})))
    np.testing.assert_array_equal(leave_one_out(glove), [1.0, 0.0, 0.0])
    costs = [1.0, 3.0, 4.0, 8.0]
    airport = game_table(4, lambda s: max((costs[i] for i in s), default=0.0))
    np.testing.assert_array_equal(leave_one_out(airport), [0.0, 0.0, 0.0, 4.0])
    additive = game_table(3, lambda s: sum([0.5, -2.0, 7.0][i] for i in s))
    np.testing.assert_allclose(leave_one_out(additive), [0.5, -2.0, 7.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(exact_banzhaf(additive), [0.5, -2.0, 7.0], rtol=0, atol=1e-15)


# --- result object and bad input --------------------------------------------------------


def test_exact_shapley_result() -> None:
    v = weighted_majority([50, 49, 1], 51)
    result = exact_shapley_result(v)
    np.testing.assert_allclose(result.values, [2 / 3, 1 / 6, 1 / 6], rtol=0, atol=TOL)
    np.testing.assert_array_equal(result.stderr, np.zeros(3))
    np.testing.assert_array_equal(result.ci_low, result.values)
    np.testing.assert_array_equal(result.ci_high, result.values)
    assert (result.n_evaluations, result.method, result.seed, result.n) == (8, "exact", None, 3)
    as_dict = result.to_dict()
    assert as_dict["values"] == pytest.approx([2 / 3, 1 / 6, 1 / 6]) and as_dict["seed"] is None
    with pytest.raises(AttributeError):
        result.method = "permutation"  # type: ignore[misc]


def test_result_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="stderr"):
        ShapleyResult(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3), 8, "exact")


@pytest.mark.parametrize("bad", [np.zeros(6), np.zeros(0), np.zeros((2, 4)), np.array([0.0, np.nan])])
def test_rejects_tables_that_are_not_2_to_the_n(bad: np.ndarray) -> None:
    for fn in (exact_shapley, exact_banzhaf, leave_one_out):
        with pytest.raises(ValueError):
            fn(bad)


def strided_differences(v: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Σ_{S∌i} w(|S|)(v(S∪i) − v(S)) as n strided subtractions (the textbook layout)."""
    n = v.size.bit_length() - 1
    sizes = np.bitwise_count(np.arange(v.size))
    phi = np.empty(n)
    for i in range(n):
        pairs = v.reshape(-1, 2, 1 << i)
        without = sizes.reshape(-1, 2, 1 << i)[:, 0, :]
        phi[i] = np.sum((pairs[:, 1, :] - pairs[:, 0, :]) * weights[without])
    return phi


@pytest.mark.parametrize("chunk", [1, 3, 1000, 1 << 20])
def test_regrouped_semivalue_equals_strided_differences(chunk: int) -> None:
    n = 13
    v = np.random.default_rng(13).normal(-0.7, 0.05, size=1 << n)
    for weights in (shapley_weights(n), np.full(n, 0.5 ** (n - 1)), np.linspace(1.0, 0.0, n) / 100):
        got = semivalue(v, weights=weights, chunk=chunk)
        np.testing.assert_allclose(got, strided_differences(v, weights), rtol=0, atol=1e-14)
