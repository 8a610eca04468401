"""Coalition weights, margins and utilities against hand computation and a naive loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from valuation.engine.arithmetic import COMPOSITIONS, coalition_margins, coalition_weights
from valuation.engine.utility import (
    UTILITIES,
    UTILITY_RANGES,
    all_coalition_utilities,
    coalition_utility_fn,
    utility_from_margins,
)

# Two owners, three eval pairs; owner 1 holds three times owner 0's pairs.
D_TINY = np.array([[1.0, -1.0, 0.5], [-2.0, 0.5, -0.5]])
SIZES_TINY = np.array([1, 3])
ALL_2 = np.array([[False, False], [True, False], [False, True], [True, True]])  # index = mask


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def naive_utility(D: np.ndarray, mask: int, *, utility: str, composition: str, beta: float,
                  sizes: np.ndarray) -> float:
    """One coalition, written out from DESIGN.md §2 with Python loops."""
    n, T = D.shape
    members = [i for i in range(n) if mask >> i & 1]
    total = sum(float(sizes[i]) for i in members)
    w = {i: (1.0 if composition == "sum" else float(sizes[i]) / total) for i in members}
    margins = [sum(w[i] * D[i, t] for i in members) for t in range(T)]
    if utility == "preference_accuracy":
        return sum(1.0 if m > 0 else 0.5 if m == 0 else 0.0 for m in margins) / T
    return sum(log_sigmoid(beta * m) for m in margins) / T


def all_members(n: int) -> np.ndarray:
    masks = np.arange(1 << n)
    return ((masks[:, None] >> np.arange(n)) & 1).astype(bool)


# --- hand-computed ---------------------------------------------------------------------


def test_weights_by_hand() -> None:
    np.testing.assert_array_equal(coalition_weights(ALL_2, composition="sum"), ALL_2.astype(float))
    np.testing.assert_allclose(
        coalition_weights(ALL_2, sizes=SIZES_TINY, composition="mean"),
        [[0, 0], [1, 0], [0, 1], [0.25, 0.75]],
        rtol=0, atol=1e-15,
    )


def test_mean_weights_sum_to_one_for_every_nonempty_coalition() -> None:
    members = all_members(7)
    sizes = np.random.default_rng(0).integers(1, 1000, 7)
    sums = coalition_weights(members, sizes=sizes, composition="mean").sum(axis=1)
    assert sums[0] == 0.0
    np.testing.assert_allclose(sums[1:], 1.0, rtol=0, atol=1e-15)


def test_margins_by_hand() -> None:
    np.testing.assert_allclose(
        coalition_margins(D_TINY, ALL_2, sizes=SIZES_TINY, composition="mean"),
        [[0, 0, 0], [1, -1, 0.5], [-2, 0.5, -0.5], [-1.25, 0.125, -0.25]],
        rtol=0, atol=1e-15,
    )


@pytest.mark.parametrize(
    ("composition", "expected"),
    # sum: {0,1} has margins (−1, −0.5, 0): one tie ⇒ ½/3. mean: (−1.25, 0.125, −0.25) ⇒ 1/3.
    [("sum", [0.5, 2 / 3, 1 / 3, 1 / 6]), ("mean", [0.5, 2 / 3, 1 / 3, 1 / 3])],
)
def test_preference_accuracy_by_hand(composition: str, expected: list[float]) -> None:
    kwargs = dict(utility="preference_accuracy", composition=composition, beta=0.1, sizes=SIZES_TINY)
    np.testing.assert_allclose(all_coalition_utilities(D_TINY, **kwargs), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(coalition_utility_fn(D_TINY, **kwargs)(ALL_2), expected, rtol=0, atol=1e-15)


def test_bt_loglik_by_hand() -> None:
    beta = 2.0
    margins = [[0, 0, 0], [1, -1, 0.5], [-2, 0.5, -0.5], [-1, -0.5, 0]]
    expected = [sum(log_sigmoid(beta * m) for m in row) / 3 for row in margins]
    assert expected[0] == pytest.approx(math.log(0.5), abs=1e-15)
    got = all_coalition_utilities(D_TINY, utility="bt_loglik", composition="sum", beta=beta)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)


def test_empty_coalition_is_the_base_model() -> None:
    D = np.random.default_rng(1).normal(size=(4, 50))
    for utility, empty in (("preference_accuracy", 0.5), ("bt_loglik", math.log(0.5))):
        for composition in COMPOSITIONS:
            v = all_coalition_utilities(D, utility=utility, composition=composition, beta=0.3, sizes=[1, 2, 3, 4])
            assert v[0] == pytest.approx(empty, abs=1e-15)


# --- the fast table equals the definition ----------------------------------------------


@pytest.mark.parametrize("utility", UTILITIES)
@pytest.mark.parametrize("composition", COMPOSITIONS)
def test_table_equals_naive_loop(utility: str, composition: str) -> None:
    rng = np.random.default_rng(42)
    D, sizes, beta = rng.normal(size=(6, 37)), rng.integers(1, 200, 6), 0.7
    v = all_coalition_utilities(D, utility=utility, composition=composition, beta=beta, sizes=sizes)
    naive = [naive_utility(D, m, utility=utility, composition=composition, beta=beta, sizes=sizes)
             for m in range(1 << 6)]
    np.testing.assert_allclose(v, naive, rtol=0, atol=1e-12)
    low, high = UTILITY_RANGES[utility]
    assert np.all((v >= low) & (v <= high))


@pytest.mark.parametrize("utility", UTILITIES)
@pytest.mark.parametrize("composition", COMPOSITIONS)
def test_chunked_and_threaded_paths_agree(utility: str, composition: str) -> None:
    rng = np.random.default_rng(9)
    D, sizes = rng.normal(size=(9, 21)), rng.integers(1, 50, 9)
    kwargs = dict(utility=utility, composition=composition, beta=1.3, sizes=sizes)
    whole = all_coalition_utilities(D, chunk_bytes=1 << 30, n_jobs=1, **kwargs)
    for chunk_bytes, n_jobs in ((1, 1), (8 * 24 * 4, 2), (8 * 24 * 32, 3)):
        chunked = all_coalition_utilities(D, chunk_bytes=chunk_bytes, n_jobs=n_jobs, **kwargs)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-13)
    np.testing.assert_allclose(coalition_utility_fn(D, **kwargs)(all_members(9)), whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("composition", COMPOSITIONS)
def test_bt_loglik_is_stable_for_huge_margins(composition: str) -> None:
    # β·M reaches ±10^4: e^{−βM} would overflow, the stable path must take over.
    rng = np.random.default_rng(4)
    D, sizes = rng.normal(scale=5e3, size=(5, 16)), rng.integers(1, 9, 5)
    v = all_coalition_utilities(D, utility="bt_loglik", composition=composition, beta=2.0, sizes=sizes)
    naive = [naive_utility(D, m, utility="bt_loglik", composition=composition, beta=2.0, sizes=sizes)
             for m in range(1 << 5)]
    assert np.all(np.isfinite(v))
    np.testing.assert_allclose(v, naive, rtol=1e-12, atol=1e-12)


def test_exact_cancellation_is_a_tie() -> None:
    D = np.array([[0.3, -1.7, 2.0], [-0.3, 1.7, -2.0]])  # owner 1 undoes owner 0 exactly
    v = all_coalition_utilities(D, utility="preference_accuracy", composition="sum", beta=1.0)
    np.testing.assert_allclose(v, [0.5, 2 / 3, 1 / 3, 0.5], rtol=0, atol=1e-15)


def test_utility_from_margins_reference() -> None:
    margins = np.array([[0.0, 1.0, -1.0, 3.0], [-800.0, 800.0, 0.0, 0.0]])
    np.testing.assert_allclose(
        utility_from_margins(margins, utility="preference_accuracy", beta=1.0), [0.625, 0.5], rtol=0, atol=0
    )
    bt = utility_from_margins(margins, utility="bt_loglik", beta=1.0)
    assert bt[1] == pytest.approx((-800.0 + 2 * math.log(0.5)) / 4, abs=1e-12)


# --- bad input ------------------------------------------------------------------------------


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="preference_accuracy, bt_loglik"):
        all_coalition_utilities(D_TINY, utility="accuracy", composition="sum", beta=1.0)
    with pytest.raises(ValueError, match="sum, mean"):
        coalition_utility_fn(D_TINY, utility="bt_loglik", composition="median", beta=1.0)
    with pytest.raises(ValueError, match="sum, mean"):
        coalition_weights(ALL_2, composition="product")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_refused(bad: float) -> None:
    D = D_TINY.copy()
    D[1, 2] = bad
    with pytest.raises(ValueError, match="owner row 1, eval pair 2"):
        all_coalition_utilities(D, utility="bt_loglik", composition="sum", beta=1.0)
    with pytest.raises(ValueError, match="non-finite"):
        coalition_margins(D, ALL_2, composition="sum")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(composition="mean"), "needs the owners' dataset sizes"),
        (dict(composition="mean", sizes=[1, 2, 3]), r"shape \(2,\)"),
        (dict(composition="mean", sizes=[1, 0]), "owner 1 has size 0"),
        (dict(composition="sum", sizes=[-4, 2]), "must be positive"),
        (dict(composition="sum", beta=0.0), "beta"),
        (dict(composition="sum", beta=-1.0), "beta"),
        (dict(composition="sum", beta=math.inf), "beta"),
    ],
)
def test_bad_sizes_and_beta_are_refused(kwargs: dict, message: str) -> None:
    kwargs = {"beta": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        all_coalition_utilities(D_TINY, utility="bt_loglik", **kwargs)


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="2-D"):
        all_coalition_utilities(np.zeros(3), utility="bt_loglik", composition="sum", beta=1.0)
    with pytest.raises(ValueError, match="eval set is empty"):
        all_coalition_utilities(np.zeros((2, 0)), utility="bt_loglik", composition="sum", beta=1.0)
    with pytest.raises(ValueError, match=r"shape \(k, 2\)"):
        coalition_margins(D_TINY, np.ones((4, 3), bool), composition="sum")
    with pytest.raises(ValueError, match="boolean"):
        coalition_utility_fn(D_TINY, utility="bt_loglik", composition="sum", beta=1.0)(np.full((1, 2), 2))
    with pytest.raises(ValueError, match="sampled Shapley estimator"):
        all_coalition_utilities(np.zeros((25, 1)), utility="bt_loglik", composition="sum", beta=1.0)
