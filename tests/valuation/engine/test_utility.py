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
    """One coalition, written out from docs/design.md §2 with Python loops."""
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
            v = all_coalition_utilities(
                D, utility=utility, composition=composition, beta=0.3, sizes=[1, 2, 3, 4]
            )
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
    sampled = coalition_utility_fn(D, **kwargs)(all_members(9))
    np.testing.assert_allclose(sampled, whole, rtol=0, atol=1e-12)


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
    accuracy = utility_from_margins(margins, utility="preference_accuracy", beta=1.0)
    np.testing.assert_array_equal(accuracy, [0.625, 0.5])
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
    utility_of = coalition_utility_fn(D_TINY, utility="bt_loglik", composition="sum", beta=1.0)
    with pytest.raises(ValueError, match="boolean"):
        utility_of(np.full((1, 2), 2))
    with pytest.raises(ValueError, match="sampled Shapley estimator"):
        all_coalition_utilities(np.zeros((25, 1)), utility="bt_loglik", composition="sum", beta=1.0)


# --- the fast table: precision, ties, tiles ------------------------------------------------


@pytest.mark.parametrize("composition", COMPOSITIONS)
def test_float32_table_is_close_to_float64(composition: str) -> None:
    rng = np.random.default_rng(8)
    D, sizes = rng.normal(0.2, 3.0, size=(12, 300)), rng.integers(1, 500, 12)
    kwargs = dict(utility="bt_loglik", composition=composition, beta=0.2, sizes=sizes)
    exact = all_coalition_utilities(D, **kwargs)
    fast = all_coalition_utilities(D, precision="float32", **kwargs)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=2e-6)
    accuracy = dict(kwargs, utility="preference_accuracy")  # signs stay float64: identical
    np.testing.assert_array_equal(all_coalition_utilities(D, precision="float32", **accuracy),
                                  all_coalition_utilities(D, **accuracy))
    with pytest.raises(ValueError, match="float64, float32"):
        all_coalition_utilities(D, precision="float16", **kwargs)


@pytest.mark.parametrize("composition", COMPOSITIONS)
def test_exact_ties_are_found_in_every_block(composition: str) -> None:
    # Zeros, exact negations and a duplicate make ties in some high rows but not others;
    # the one-comparison path must only run where there are none.
    rng = np.random.default_rng(6)
    D = rng.integers(-3, 4, size=(10, 24)).astype(float)
    D[3] = -D[7]
    D[5] = D[2]
    sizes = np.full(10, 4)  # equal sizes: `mean` margins are the `sum` ones over 4|S|, same signs
    kwargs = dict(utility="preference_accuracy", composition=composition, beta=1.0, sizes=sizes)
    # Integer scores make the `sum` margins exact, so this reference has exact ties.
    naive = utility_from_margins(coalition_margins(D, all_members(10), composition="sum"),
                                 utility="preference_accuracy", beta=1.0)
    for chunk_bytes, tile_bytes in ((1 << 23, 1 << 20), (8 * 24 * 16, 8 * 24 * 4), (1, 1)):
        table = all_coalition_utilities(D, chunk_bytes=chunk_bytes, tile_bytes=tile_bytes, **kwargs)
        np.testing.assert_allclose(table, naive, rtol=0, atol=1e-15)


@pytest.mark.parametrize("utility", UTILITIES)
def test_tiles_threads_and_precision_do_not_change_the_table(utility: str) -> None:
    rng = np.random.default_rng(3)
    D, sizes = rng.normal(size=(11, 50)), rng.integers(1, 9, 11)
    kwargs = dict(utility=utility, composition="sum", beta=0.9, sizes=sizes)
    whole = all_coalition_utilities(D, n_jobs=1, **kwargs)
    for tile_bytes, n_jobs in ((1, 2), (4096, 3), (1 << 22, 2)):
        tiled = all_coalition_utilities(D, tile_bytes=tile_bytes, n_jobs=n_jobs, **kwargs)
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-13)


def test_score_utility_is_a_set_function_with_a_fast_table() -> None:
    rng = np.random.default_rng(12)
    D, sizes = rng.normal(size=(7, 30)), rng.integers(1, 40, 7)
    fn = coalition_utility_fn(D, utility="bt_loglik", composition="mean", beta=0.4, sizes=sizes)
    assert fn.n == 7
    table = fn.table()
    np.testing.assert_allclose(fn(all_members(7)), table, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fn.table(precision="float32"), table, rtol=0, atol=1e-6)


def test_bt_loglik_factorised_path_falls_back_per_block() -> None:
    # One owner's margins alone overflow e^z in float32 (β·D ≈ 200) while others are tame:
    # those blocks must take the exact path, the rest the fast one.
    rng = np.random.default_rng(5)
    D = rng.normal(size=(8, 20))
    D[7] *= 400.0
    for precision in ("float64", "float32"):
        got = all_coalition_utilities(D, utility="bt_loglik", composition="sum", beta=0.5,
                                      precision=precision, chunk_bytes=8 * 20 * 8)
        naive = [naive_utility(D, m, utility="bt_loglik", composition="sum", beta=0.5,
                               sizes=np.ones(8)) for m in range(1 << 8)]
        np.testing.assert_allclose(got, naive, rtol=1e-6 if precision == "float32" else 1e-12, atol=1e-6)
