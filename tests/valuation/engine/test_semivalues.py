"""Beta Shapley, Banzhaf, leave-one-out and the Shapley interaction index on known games."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest

from valuation.engine.interactions import estimate_interaction, shapley_interaction
from valuation.engine.semivalues import (
    beta_shapley,
    beta_weights,
    estimate_semivalue,
    exact_banzhaf,
    leave_one_out,
)
from valuation.engine.shapley import exact_shapley, semivalue, shapley_weights


def game_table(n: int, v: Callable[[frozenset[int]], float]) -> np.ndarray:
    return np.array([v(frozenset(i for i in range(n) if m >> i & 1)) for m in range(1 << n)], float)


def lookup(table: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    powers = 1 << np.arange(table.size.bit_length() - 1)
    return lambda members: table[members.astype(np.int64) @ powers]


def semivalue_by_definition(v: np.ndarray, w: Callable[[int], float]) -> np.ndarray:
    """Σ_{S∌i} w(|S|)(v(S∪i) − v(S)) with Python loops."""
    n = v.size.bit_length() - 1
    return np.array([sum(w(bin(m).count("1")) * (v[m | 1 << i] - v[m])
                         for m in range(1 << n) if not m >> i & 1) for i in range(n)])


def interaction_by_definition(v: np.ndarray) -> np.ndarray:
    n = v.size.bit_length() - 1
    out = np.zeros((n, n))
    for i, j in itertools.permutations(range(n), 2):
        for m in range(1 << n):
            if m >> i & 1 or m >> j & 1:
                continue
            k = bin(m).count("1")
            w = math.factorial(k) * math.factorial(n - k - 2) / math.factorial(n - 1)
            out[i, j] += w * (v[m | 1 << i | 1 << j] - v[m | 1 << i] - v[m | 1 << j] + v[m])
    return out


UNANIMITY = game_table(6, lambda s: float({0, 2, 3} <= s))
OR_GAME = game_table(5, lambda s: float(bool(s & {1, 4})))  # 1 and 4 are perfect substitutes


# --- Beta Shapley ---------------------------------------------------------------------------


def test_beta_1_1_is_shapley() -> None:
    for n in (1, 2, 5, 12):
        np.testing.assert_allclose(beta_weights(n, 1.0, 1.0), shapley_weights(n), rtol=1e-12, atol=0)
    v = np.random.default_rng(0).normal(size=1 << 7)
    np.testing.assert_allclose(beta_shapley(v, alpha=1, beta=1), exact_shapley(v), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("alpha", "beta"), [(16.0, 1.0), (4.0, 1.0), (1.0, 4.0), (0.5, 0.5), (2.0, 3.0)])
def test_beta_weights_are_a_distribution_and_match_the_integral(alpha: float, beta: float) -> None:
    n = 9
    w = beta_weights(n, alpha, beta)
    assert sum(math.comb(n - 1, k) * w[k] for k in range(n)) == pytest.approx(1.0, abs=1e-12)
    # w(k) = ∫ t^k (1−t)^{n−1−k} Beta(t; β, α) dt, by midpoint quadrature.
    t = (np.arange(200_000) + 0.5) / 200_000
    density = t ** (beta - 1) * (1 - t) ** (alpha - 1)
    density /= density.mean()
    for k in (0, 3, n - 1):
        integral = np.mean(t**k * (1 - t) ** (n - 1 - k) * density)
        assert w[k] == pytest.approx(integral, rel=2e-3)


def test_beta_16_1_favours_small_coalitions() -> None:
    w = beta_weights(10, 16.0, 1.0)
    assert np.all(np.diff(w) < 0)  # Kwon & Zou: large α up-weights small cardinalities
    v = game_table(6, lambda s: math.sqrt(len(s)) + 0.3 * (5 in s) * len(s))
    np.testing.assert_allclose(
        beta_shapley(v, alpha=16, beta=1),
        semivalue_by_definition(v, lambda k: math.exp(
            math.lgamma(k + 1) + math.lgamma(6 - 1 - k + 16) - math.lgamma(6 + 16)
            - (math.lgamma(16) + math.lgamma(1) - math.lgamma(17)))),
        rtol=0, atol=1e-12,
    )


def test_semivalues_ignore_constants_and_scale_linearly() -> None:
    v = np.random.default_rng(1).normal(size=1 << 8)
    for weights in (beta_weights(8, 16, 1), beta_weights(8, 2, 5)):
        np.testing.assert_allclose(semivalue(v + 7.5, weights=weights), semivalue(v, weights=weights),
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(semivalue(3 * v, weights=weights), 3 * semivalue(v, weights=weights),
                                   rtol=0, atol=1e-12)


def test_bad_beta_parameters_are_refused() -> None:
    for alpha, beta in ((0, 1), (1, -2), (math.inf, 1), (True, 1)):
        with pytest.raises(ValueError, match="positive finite"):
            beta_weights(4, alpha, beta)


# --- Banzhaf and leave-one-out ------------------------------------------------------------------


def test_banzhaf_and_loo_on_unanimity() -> None:
    np.testing.assert_allclose(exact_banzhaf(UNANIMITY), [0.25, 0, 0.25, 0.25, 0, 0], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(leave_one_out(UNANIMITY), [1, 0, 1, 1, 0, 0])
    np.testing.assert_allclose(exact_banzhaf(OR_GAME), [0, 0.5, 0, 0, 0.5], rtol=0, atol=1e-15)
    # Perfect substitutes: removing either one alone changes nothing.
    np.testing.assert_array_equal(leave_one_out(OR_GAME), np.zeros(5))


# --- sampled semivalues (weighted MSR) ----------------------------------------------------------


@pytest.mark.parametrize(("kind", "alpha", "beta"), [("banzhaf", 1, 1), ("beta", 16, 1), ("beta", 1, 1)])
def test_sampled_semivalues_converge(kind: str, alpha: float, beta: float) -> None:
    v = game_table(8, lambda s: math.sqrt(sum([3, 3, 1, 5, 2, 2, 4, 1][i] for i in s)))
    truth = exact_banzhaf(v) if kind == "banzhaf" else beta_shapley(v, alpha=alpha, beta=beta)
    result = estimate_semivalue(lookup(v), 8, kind=kind, alpha=alpha, beta=beta, budget=40_000, seed=0,
                                target=None)
    assert result.n_evaluations == 40_000 and result.method == f"msr-{kind}"
    assert np.all(np.abs(result.values - truth) <= 5 * result.stderr)
    assert np.abs(result.values - truth).max() <= 0.05 * np.abs(truth).max()


def test_sampled_banzhaf_is_reproducible_and_covers() -> None:
    v = UNANIMITY
    truth = exact_banzhaf(v)
    runs = [estimate_semivalue(lookup(v), 6, budget=600, seed=s, target=None) for s in range(100)]
    np.testing.assert_array_equal(runs[0].values,
                                  estimate_semivalue(lookup(v), 6, budget=600, seed=0, target=None).values)
    covered = np.mean([(r.ci_low <= truth + 1e-12) & (truth - 1e-12 <= r.ci_high) for r in runs])
    assert covered >= 0.9


# --- Shapley interaction index --------------------------------------------------------------------


def test_unanimity_interactions_are_one_over_carrier_minus_one() -> None:
    interaction = shapley_interaction(UNANIMITY)
    carrier = [0, 2, 3]
    for i, j in itertools.permutations(range(6), 2):
        expected = 1 / (len(carrier) - 1) if i in carrier and j in carrier else 0.0
        assert interaction[i, j] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(np.diag(interaction), exact_shapley(UNANIMITY), rtol=0, atol=1e-12)


def test_substitutes_interact_negatively_complements_positively() -> None:
    assert shapley_interaction(OR_GAME)[1, 4] == pytest.approx(-1.0)  # redundant: duplicates
    both = game_table(4, lambda s: float({0, 1} <= s))  # complementary: worthless apart
    assert shapley_interaction(both)[0, 1] == pytest.approx(1.0)
    additive = game_table(5, lambda s: sum([1.0, -2.0, 0.5, 3.0, 0.0][i] for i in s))
    off_diagonal = shapley_interaction(additive) - np.diag(np.diag(shapley_interaction(additive)))
    np.testing.assert_allclose(off_diagonal, 0.0, atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 16])
def test_interaction_matches_the_definition_at_any_chunk(chunk: int) -> None:
    v = np.random.default_rng(2).normal(size=1 << 6)
    got = shapley_interaction(v, chunk=chunk)
    expected = interaction_by_definition(v)
    np.fill_diagonal(expected, exact_shapley(v))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, got.T, rtol=0, atol=1e-12)


def test_sampled_interaction_converges_within_its_errors() -> None:
    truth = shapley_interaction(UNANIMITY)
    np.fill_diagonal(truth, 0.0)
    result = estimate_interaction(lookup(UNANIMITY), 6, budget=20_000, seed=0)
    assert result.n_evaluations == 20_000
    assert np.abs(result.values - truth).max() <= 0.05
    off = ~np.eye(6, dtype=bool)
    assert np.mean(np.abs(result.values - truth)[off] <= 3 * result.stderr[off] + 1e-12) >= 0.9
    again = estimate_interaction(lookup(UNANIMITY), 6, budget=20_000, seed=0)
    np.testing.assert_array_equal(result.values, again.values)


def test_sampled_interaction_refuses_tiny_budgets() -> None:
    with pytest.raises(ValueError, match="at least"):
        estimate_interaction(lookup(UNANIMITY), 6, budget=10, seed=0)
