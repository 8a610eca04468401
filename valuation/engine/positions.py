"""Every insertion position of one arrival order at once, for preference_accuracy (docs/design.md §2).

A permutation estimator uses owner i's marginal at one position of an order: Δ_i(P) with P the owners
before it. Removing i from the order leaves a uniform order of the other n − 1 owners, and inserting i
at each of its n positions k = 0 … n − 1 gives coalitions Q_k (the first k others), each as likely as
the one sampled. Their mean

    φ̂_i(order) = (1/n) Σ_k Δ_i(Q_k)

has the same expectation, φ_i (Rao–Blackwell: it averages the sampled position away), and under
preference_accuracy it costs O(log n) per owner and pair instead of O(n):

    Δ_i(Q)(t) = g(M_Q(t) + d) − g(M_Q(t)),   g(x) = 1[x > 0] + ½·1[x = 0],   d = D[i, t],

is +1 for M_Q ∈ (−d, 0) and +½ at either end when d > 0 (mirrored when d < 0), so Σ_k Δ_i(Q_k)(t)
= ½·sign(d)·(closed + open count of the Q_k margins in the window). With P_0 … P_n the order's prefix
margins and i at position p, the others' prefixes are P_0 … P_p (before i) and P_{p+2} − d … P_n − d
(after it, i taken out), so the count is

    #{k ≤ p: P_k in W} + #{k ≥ p + 2: P_k in W + d},   W = [−d, 0] (d > 0) or [0, |d|] (d < 0).

One sweep along the order per pair answers both parts with a Fenwick tree over the ranks of the sorted
prefixes: O(T·n·log n) per order, O(n·T) memory. Counts are integers, so the result is exact: ties
(the empty coalition's margin is exactly 0) are counted ½ as `utility` counts them, and the output
equals the mean of the n marginals evaluated one coalition at a time (tests/valuation/engine).

The sign of a margin does not change when it is divided by a positive Σ n_j, so the composition
`mean` is this game on the numerators n_i·D[i] (what `structured.ArithmeticGame.numer` holds).

Control variate (`location_terms`). What is left is how near 0 the order's prefix margins happen to
run. Its first-order part is linear in Q_k − E[Q_k], and E[Q_k] = k·x̄_i exactly (x̄_i the mean of the
others' terms on the pair), so for any weights w(t, k)

    z_i^w = (1/(n·T)) Σ_t s_i(t)·Σ_k w(t, k)·(Q_k(t) − k·x̄_i(t))

has mean exactly 0. With G = Φ(μ/s) the normal approximation of a k-subset's step (`smoothed`), the
slope of E[Δ_i(Q_k)] in the location is G′(μ + d) − G′(μ) ≈ d·G″ + d²/2·G‴: the two linear terms
use w = G″ with s_i = d and w = G‴ with s_i = d²/2. A third, quadratic term d/2·G‴·((Q_k − k·x̄)² −
Var Q_k) uses the exact finite-population variance Var Q_k = k(N − k)/(N − 1)·σ_i². All are O(n·T)
per order (the sums over k split at i's position into running sums). On the 1,000-owner bench game the
linear terms remove 60% of the variance and the quadratic one 15% of what is left (an exploratory fit
over 80 antithetic pairs).

The loops are compiled by numba (cached on disk after the first call) and run pairs in parallel on as
many threads as torch has (`_threads`: the round's thread count, docs/rounds.md "Reproducibility"). Each
pair's counts and sums are computed by one thread and the pairs are summed afterwards in a fixed order,
so the result does not depend on the thread count.
"""

from __future__ import annotations

import numba
import numpy as np
import torch


@numba.njit(inline="always", cache=True)
def _below(sorted_values, x):
    """How many sorted values are ≤ x."""
    lo, hi = 0, sorted_values.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_values[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(inline="always", cache=True)
def _inserted_below(tree, rank):
    """How many inserted prefixes have a sorted rank < `rank` (Fenwick prefix sum)."""
    total = 0
    while rank > 0:
        total += tree[rank]
        rank -= rank & (-rank)
    return total


@numba.njit(inline="always", cache=True)
def _ranks(sorted_values, x):
    """(how many sorted values are < x, how many are ≤ x): one search, then the ties walked."""
    closed = _below(sorted_values, x)
    open_ = closed
    while open_ > 0 and sorted_values[open_ - 1] == x:
        open_ -= 1
    return open_, closed


@numba.njit(inline="always", cache=True)
def _edge(sorted_values, tree, x):
    """A window's end x: how many prefixes are < x and ≤ x, and how many inserted ones are."""
    open_, closed = _ranks(sorted_values, x)
    inserted_closed = _inserted_below(tree, closed)
    inserted_open = inserted_closed if open_ == closed else _inserted_below(tree, open_)
    return open_, closed, inserted_open, inserted_closed


@numba.njit(inline="always", cache=True)
def _inside(lo, hi):
    """closed + open count of the inserted prefixes in [lo, hi] (two `_edge`s)."""
    return (hi[3] - lo[2]) + (hi[2] - lo[3])


@numba.njit(inline="always", cache=True)
def _outside(lo, hi):
    """closed + open count of the prefixes not yet inserted in [lo, hi]."""
    return ((hi[1] - hi[3]) - (lo[0] - lo[2])) + ((hi[0] - hi[2]) - (lo[1] - lo[3]))


@numba.njit(inline="always", cache=True)
def _sweep(row, order, rank, sorted_values, counts):
    """Add sign(d)·(closed + open count) of each owner's window (module doc) to counts[owner] for one
    order whose prefix margins have these ranks in `sorted_values`. One end of every window is 0,
    whose inserted counts are kept as the prefixes go in; the other end costs a search."""
    n = order.size
    zero_open, zero_closed = _ranks(sorted_values, 0.0)
    negative, non_positive = 0, 0  # inserted prefixes < 0 and ≤ 0
    tree = np.zeros(n + 2, dtype=np.int64)
    for p in range(n + 1):
        j = rank[p] + 1  # insert P_p
        while j <= n + 1:
            tree[j] += 1
            j += j & (-j)
        if rank[p] < zero_open:
            negative += 1
            non_positive += 1
        elif rank[p] < zero_closed:
            non_positive += 1
        zero = (zero_open, zero_closed, negative, non_positive)
        if p < n:  # owner at position p: the prefixes before it, P_0 … P_p, are all inserted
            d = row[order[p]]
            if d > 0:
                counts[order[p]] += _inside(_edge(sorted_values, tree, -d), zero)
            elif d < 0:
                counts[order[p]] -= _inside(zero, _edge(sorted_values, tree, -d))
        if p >= 1:  # owner at position p − 1: the prefixes after it, P_{p+1} … P_n, are the others
            d = row[order[p - 1]]
            if d > 0:
                counts[order[p - 1]] += _outside(zero, _edge(sorted_values, tree, d))
            elif d < 0:
                counts[order[p - 1]] -= _outside(_edge(sorted_values, tree, d), zero)


@numba.njit(parallel=True, cache=True)
def _doubled_counts(numer_t, order, antithetic):
    """(1 or 2, T, n) int32: 2·Σ_k Δ_i(Q_k)(t) for the order (and its reverse when `antithetic`)."""
    T, n = numer_t.shape
    out = np.zeros((2 if antithetic else 1, T, n), dtype=np.int32)
    backwards = order[::-1].copy()
    for t in numba.prange(T):
        row = numer_t[t]
        prefix = np.zeros(n + 1)
        for k in range(n):
            prefix[k + 1] = prefix[k] + row[order[k]]
        by_value = np.argsort(prefix)
        sorted_values = prefix[by_value]
        rank = np.empty(n + 1, dtype=np.int64)
        for r in range(n + 1):
            rank[by_value[r]] = r
        _sweep(row, order, rank, sorted_values, out[0, t])
        if antithetic:
            # The reverse's prefixes, summed in its own order (so exact ties stay exact). They are
            # total − P_{n−k} up to rounding, so the forward sort reversed leaves them almost sorted
            # and an insertion sort finishes the job in O(n).
            mirrored = np.zeros(n + 1)
            for k in range(n):
                mirrored[k + 1] = mirrored[k] + row[backwards[k]]
            by_value_m = np.empty(n + 1, dtype=np.int64)
            sorted_m = np.empty(n + 1)
            for r in range(n + 1):
                k = n - by_value[n - r]
                by_value_m[r], sorted_m[r] = k, mirrored[k]
            for r in range(1, n + 1):
                value, k = sorted_m[r], by_value_m[r]
                q = r
                while q > 0 and sorted_m[q - 1] > value:
                    sorted_m[q], by_value_m[q] = sorted_m[q - 1], by_value_m[q - 1]
                    q -= 1
                sorted_m[q], by_value_m[q] = value, k
            for r in range(n + 1):
                rank[by_value_m[r]] = r
            _sweep(row, backwards, rank, sorted_m, out[1, t])
    return out


def _threads() -> None:
    """numba's threads = torch's (what the round set for this process), at most numba's pool."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _checked(order, n: int) -> np.ndarray:
    """`order` as contiguous int64, refused unless it is a permutation of 0 … n − 1 (the compiled loops
    index with it unchecked)."""
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ValueError(f"order must be a permutation of 0..{n - 1}")
    return order


def position_marginals(numer_t: np.ndarray, order: np.ndarray, *, antithetic: bool = False) -> np.ndarray:
    """φ̂_i(order) = (1/n) Σ_k Δ_i(Q_k) of preference_accuracy for every owner, shape (n,); with
    `antithetic`, shape (2, n): the order's and its reverse's.

    `numer_t` is the (T, n) C-contiguous transpose of the margin numerators (the score matrix under
    `sum`), `order` a permutation of 0 … n − 1.
    """
    T, n = numer_t.shape
    _threads()
    doubled = _doubled_counts(numer_t, _checked(order, n), antithetic)
    marginals = doubled.sum(axis=1, dtype=np.int64) / (2.0 * n * T)
    return marginals if antithetic else marginals[0]


@numba.njit(parallel=True, cache=True)
def _location_terms(numer_t, order, weights):
    """(3, T, n) float64: for pair t and owner i (at position p, term d, others' mean x̄ and population
    variance σ², N = n − 1 others) the sums over the sizes k of

        d·G″_k·(Q_k − k·x̄),   d²/2·G‴_k·(Q_k − k·x̄),   d/2·G‴_k·((Q_k − k·x̄)² − k(N − k)/(N − 1)·σ²)

    with G″ = weights[0] and G‴ = weights[1] ((T, n) each, by size k). Each term has mean exactly 0
    (module doc). The sums over k split at p into running sums over the order's prefixes."""
    T, n = numer_t.shape
    out = np.zeros((3, T, n))
    others = max(n - 1, 1)
    for t in numba.prange(T):
        row = numer_t[t]
        prefix = np.zeros(n + 1)
        squares = 0.0
        for k in range(n):
            prefix[k + 1] = prefix[k] + row[order[k]]
            squares += row[k] * row[k]
        total = prefix[n]
        for w in range(2):
            weight = weights[w, t]
            # Over k ≤ p: Σ w·P_k, Σ w·P_k², Σ w·k·P_k. Over p < k < n: Σ w·P_{k+1}, Σ w·P_{k+1}²,
            # Σ w·k·P_{k+1}, Σ w, Σ w·k. Over all k: Σ w·k, Σ w·k², Σ w·k(N − k)/(N − 1).
            before, before_sq, before_k = np.empty(n), np.empty(n), np.empty(n)
            a = b = c = 0.0
            for k in range(n):
                a += weight[k] * prefix[k]
                b += weight[k] * prefix[k] * prefix[k]
                c += weight[k] * k * prefix[k]
                before[k], before_sq[k], before_k[k] = a, b, c
            after, after_sq, after_k = np.empty(n), np.empty(n), np.empty(n)
            tail, tail_k = np.empty(n), np.empty(n)
            a = b = c = e = f = 0.0
            for k in range(n - 1, -1, -1):
                after[k], after_sq[k], after_k[k], tail[k], tail_k[k] = a, b, c, e, f
                nxt = prefix[k + 1]
                a += weight[k] * nxt
                b += weight[k] * nxt * nxt
                c += weight[k] * k * nxt
                e += weight[k]
                f += weight[k] * k
            sized = sized_sq = spread = 0.0
            for k in range(n):
                sized += weight[k] * k
                sized_sq += weight[k] * k * k
                if n > 2:
                    spread += weight[k] * k * (others - k) / (others - 1)
            for p in range(n):
                i = order[p]
                d = row[i]
                mean = (total - d) / others
                linear = before[p] + after[p] - d * tail[p] - mean * sized
                if w == 0:
                    out[0, t, i] = d * linear
                    continue
                out[1, t, i] = 0.5 * d * d * linear
                variance = max((squares - d * d) / others - mean * mean, 0.0)
                square = (before_sq[p] - 2.0 * mean * before_k[p]
                          + after_sq[p] - 2.0 * d * after[p] - 2.0 * mean * after_k[p]
                          + d * d * tail[p] + 2.0 * d * mean * tail_k[p] + mean * mean * sized_sq)
                out[2, t, i] = 0.5 * d * (square - spread * variance)
    return out


def location_terms(numer_t: np.ndarray, order: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The control variate's three mean-zero terms for every owner along `order`, shape (n, 3)
    (module doc); `weights` is (2, T, n): G″ and G‴ at each pair and size."""
    T, n = numer_t.shape
    if weights.shape != (2, T, n):
        raise ValueError(f"weights must have shape (2, {T}, {n}), got {weights.shape}")
    _threads()
    terms = _location_terms(numer_t, _checked(order, n), weights)
    return terms.sum(axis=1).T / (n * T)
