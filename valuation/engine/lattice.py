"""Lattice twins of the score utilities: games next to the real ones whose Shapley values are exact in
O(T·n²·G) (docs/design.md §2).

On eval pair t, preference_accuracy is a weighted voting game: v_t(S) = g(Σ_{j∈S} D[j, t]) with
g(x) = 1[x > 0] + ½·1[x = 0]. Its Shapley value needs the distribution of the others' sums over
coalitions of each size, which for real weights has 2^(n−1) atoms. Round the weights to a lattice
instead, q_j = round(D[j, t] / h_t) with h_t = Σ_j |D[j, t]| / G (`resolution` G), and the twin game
u_t(S) = g(Σ_{j∈S} q_j) (the sign of h_t·Σ q_j is the sign of Σ q_j) has integer sums in a range of
about G + n/2 values. Its exact Shapley value is then a subset-sum count:

  * counts[k, x] = how many k-owner coalitions have lattice sum x, for every k and x: the textbook
    dynamic program, one owner at a time, O(n²·G) per pair. Only rows k ≤ n/2 are computed: a
    k-coalition's complement is an (n − k)-coalition with the rest of the sum. Counts are exact in
    float32 while they fit its 24-bit mantissa (n ≤ 25), in float64 up to `MAX_LATTICE_OWNERS`
    (C(n, n/2) < 2^53);
  * without owner i, the k-coalitions of the others number c_k = counts[k] − shift(c_{k−1}, q_i), so
    c_k = Σ_l (−1)^l shift(counts[k − l], l·q_i), and the count of them in owner i's flip window (the
    sums x with g(x + q_i) ≠ g(x), ends ½) is an alternating sum of window counts of `counts` rows:
    O(1) each from running sums, O(n³) per pair for all owners and sizes. All integers, so exact;
  * φ_i(u_t) = sign(q_i)·Σ_k k!(n − 1 − k)!/n! · (window count of c_k); φ(u) = mean_t φ(u_t).

bt_loglik under `sum` (`loglik_lattice_shapley`): the twin u_t(S) = log σ(β·h_t·Σ_{j∈S} q_j) needs the
whole row c_k, not a window: it is deconvolved row by row for each owner and dotted with the change of
log σ when the owner joins, O(n²·G) per pair (rows up to (n − 1)/2; the others' complements give the
rest). Tests check both against `exact_shapley` of the twin's 2^n table.

Why a twin. `structured` samples orders and corrects the twin's exact value by the difference of the two
games' marginals (accuracy: at every insertion position, `positions` counts both; log-likelihood: at
the sampled position): φ̂ = φ(u) + mean(Δv − Δu) is unbiased whatever the lattice, and Δv − Δu is
non-zero only where rounding moved a coalition's sum across 0 (or, for the log-likelihood, a little).
On the bench games (n = 16 … 24) the accuracy twin alone misallocates 0.03–0.2% of the pool at G = 512
and 0.02–0.07% at G = 2,048 (exploratory, before sampling); README has the estimator's figures.

The loops are compiled by numba (cached on disk) and run pairs in parallel on as many threads as torch
has; each pair is one thread's work and the pairs are summed in a fixed order afterwards, so the result
does not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from valuation.engine.positions import _threads

# Lattice points per pair G, the least and the most `structured` picks (StructuredConfig.resolution_for).
RESOLUTIONS = (256, 16384)
# Counts of k-subsets are exact integers in float64 while C(n, n/2) < 2^53.
MAX_LATTICE_OWNERS = 50
# And in float32 (the faster dynamic program) while they fit 24 bits: C(25, 12) = 5,200,300 < 2^24.
FLOAT32_OWNERS = 25
PAIRS_PER_TASK = 16  # pairs one thread takes at a time (its scratch arrays are reused across them)


def lattice_steps(numer: np.ndarray, resolution: int) -> np.ndarray:
    """Each pair's lattice step h_t = Σ_j |D[j, t]|/G, shape (T,) (1 on a pair nobody moves).

    `numer` is the (n, T) margin numerators (the score matrix under `sum`, n_j·D[j] under `mean`)."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    step = np.abs(np.asarray(numer, dtype=np.float64)).sum(axis=0) / resolution
    step[step == 0] = 1.0  # every term is 0 on any lattice
    return step


def lattice_terms(numer: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The twin's integer terms on given steps, shape (T, n) int64: q_j = round(D[j, t]/h_t)."""
    return np.ascontiguousarray(np.rint(np.asarray(numer, dtype=np.float64) / steps).astype(np.int64).T)


def lattice_scores(numer: np.ndarray, resolution: int) -> np.ndarray:
    """The twin's integer terms at `resolution` lattice points per pair (`lattice_steps`), (T, n)."""
    return lattice_terms(numer, lattice_steps(numer, resolution))


@numba.njit(inline="always", cache=True)
def _add_row(target, source, target_start, source_start, length):
    """target[target_start + x] += source[source_start + x] for x < length. Unsigned indices: numba
    then drops its negative-index wraparound and the loop vectorises (3× faster than a slice
    expression, 10× than signed indices, at n = 24, G = 512)."""
    for x in range(length):
        target[numba.uint64(target_start + x)] += source[numba.uint64(source_start + x)]


@numba.njit(cache=True)
def _count_rows(q, counts, low, high):
    """counts[k, x] = how many k-owner coalitions of one pair have lattice sum x (index 0 = the sum of
    the negative terms), for k ≤ n/2, and each row's occupied range [low[k], high[k]]; returns (span,
    zero): the number of lattice sums and the index of sum 0. Rows above n/2 are not needed: a
    k-coalition's complement has the other n − k owners and Σq minus its sum, so counts[n − k, x] =
    counts[k, span − 1 − x]."""
    n = q.size
    bottom = 0
    top = 0
    for j in range(n):
        if q[j] < 0:
            bottom += q[j]
        else:
            top += q[j]
    span = top - bottom + 1
    zero = -bottom
    half = n // 2
    for k in range(half + 1):
        counts[k, :span] = 0.0
        low[k], high[k] = span, -1  # empty
    counts[0, zero] = 1.0
    low[0], high[0] = zero, zero
    by_size = np.argsort(np.abs(q))  # smallest terms first keeps the occupied ranges narrow for longest
    for step in range(n):
        s = q[by_size[step]]
        # Downwards, so the owner joins each coalition once; rows up to `step` are occupied already.
        for k in range(min(step, half - 1), -1, -1):
            _add_row(counts[k + 1], counts[k], low[k] + s, low[k], high[k] - low[k] + 1)
            low[k + 1] = min(low[k + 1], low[k] + s)
            high[k + 1] = max(high[k + 1], high[k] + s)
    return span, zero


@numba.njit(cache=True)
def _pair_values(q, weight, counts, mid, low, high, out):
    """φ_i of one pair's twin game for every owner into out (module doc). Scratch: counts (≥ n/2 + 1,
    ≥ span), mid (≥ n/2 + 1, ≥ span + 2), low/high (≥ n/2 + 1,): each counts row's occupied range."""
    n = q.size
    span, zero = _count_rows(q, counts, low, high)
    half = n // 2
    # mid[k, x + 1] = Σ_{y<x} counts[k, y] + ½·counts[k, x]; column 0 stands for every x < 0 (nothing
    # below) and column span + 1 for every x ≥ span (all of them). The closed + open count of counts[k]
    # in [a, b], ends ½, is then mid[k, b + 1] − mid[k, a + 1]. For the rows above n/2, by the
    # complement: mid[n − r, j] = (row r's sum) − mid[r, span + 1 − j].
    for k in range(half + 1):
        row, source = mid[k], counts[k]
        for j in range(low[k] + 1):
            row[numba.uint64(j)] = 0.0
        acc = 0.0
        for x in range(low[k], high[k] + 1):
            value = source[numba.uint64(x)]
            row[numba.uint64(x + 1)] = acc + 0.5 * value
            acc += value
        for j in range(high[k] + 2, span + 2):
            row[numba.uint64(j)] = acc
    for i in range(n):
        s = q[i]
        # With p_l = 0 − l·s on the lattice, the others' k-coalitions in i's flip window count, signed,
        # Σ_l (−1)^l (mid_{k−l}[p_l] − mid_{k−l}[p_{l+1}]) (module doc); summed over k with the weights,
        # rows m = k − l: Σ_l (−1)^l Σ_m weight[m + l]·(mid_m[p_l] − mid_m[p_{l+1}]).
        value = 0.0
        if s != 0:
            sign = 1.0
            for l in range(n):
                here = min(max(zero - l * s + 1, 0), span + 1)
                there = min(max(zero - (l + 1) * s + 1, 0), span + 1)
                if here == there:
                    break  # both ends off the same side of the lattice: so is every further shift
                part = 0.0
                for m in range(min(n - l, half + 1)):
                    part += weight[numba.uint64(m + l)] * (mid[numba.uint64(m), numba.uint64(here)]
                                                           - mid[numba.uint64(m), numba.uint64(there)])
                for m in range(half + 1, n - l):  # mirrored rows: the row sum cancels in the difference
                    r = n - m
                    part += weight[numba.uint64(m + l)] * (mid[numba.uint64(r), numba.uint64(span + 1 - there)]
                                                           - mid[numba.uint64(r), numba.uint64(span + 1 - here)])
                value += sign * part
                sign = -sign
        out[i] = value


@numba.njit(cache=True)
def _widest_span(lattice_t):
    """The most lattice sums any pair has: 1 + Σ_j |q_j| (the scratch rows' length)."""
    span = 1
    for t in range(lattice_t.shape[0]):
        width = 1
        for j in range(lattice_t.shape[1]):
            width += abs(lattice_t[t, j])
        span = max(span, width)
    return span


@numba.njit(parallel=True, cache=True)
def _lattice_values(lattice_t, weight, scratch_dtype_probe):
    """(T, n): the twin's exact Shapley value on each pair."""
    T, n = lattice_t.shape
    span = _widest_span(lattice_t)
    out = np.zeros((T, n))
    tasks = (T + PAIRS_PER_TASK - 1) // PAIRS_PER_TASK
    for task in numba.prange(tasks):
        rows = n // 2 + 1
        counts = np.zeros((rows, span), dtype=scratch_dtype_probe.dtype)
        mid = np.zeros((rows, span + 2))
        low = np.empty(rows, dtype=np.int64)
        high = np.empty(rows, dtype=np.int64)
        for t in range(task * PAIRS_PER_TASK, min(T, (task + 1) * PAIRS_PER_TASK)):
            _pair_values(lattice_t[t], weight, counts, mid, low, high, out[t])
    return out


@numba.njit(inline="always", cache=True)
def _log_sigmoid(z):
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


@numba.njit(cache=True, fastmath={"reassoc", "nsz", "contract"})  # reassociation lets the dot products vectorise
def _smooth_pair_values(q, step, beta, weight, counts, held, previous, value_at, gain, mirrored, low, high, out):
    """bt_loglik's twin on one pair: φ_i = Σ_k weight[k]·Σ_x c_k(x)·(ℓ(h·(x + q_i)) − ℓ(h·x)) with
    ℓ(z) = log σ(β·z) and c_k the others' k-coalition counts by lattice sum x, from c_k = counts[k] −
    shift(c_{k−1}, q_i) row by row (exact integers). The others' k-coalitions are the complements of
    their (n − 1 − k)-coalitions, so rows up to (n − 1)/2 serve both sizes. O(n²·G): half the rows for
    every owner. Scratch: counts (≥ n/2 + 1, ≥ span), held/previous/value_at/gain/mirrored (≥ span,),
    low/high (≥ n/2 + 1,)."""
    n = q.size
    span, zero = _count_rows(q, counts, low, high)
    for x in range(span):
        value_at[x] = _log_sigmoid(beta * step * (x - zero))
    for i in range(n):
        s = q[i]
        value = 0.0
        if s != 0:
            # gain[x] = ℓ(h·(x + s)) − ℓ(h·x) where i can join (x + s on the lattice; c_k is 0 elsewhere).
            first, last = max(0, -s), min(span - 1, span - 1 - s)
            for x in range(first, last + 1):
                gain[numba.uint64(x)] = value_at[numba.uint64(x + s)] - value_at[numba.uint64(x)]
            # The complement of a sum at index x among the others sits at index span − 1 − s − x (the same
            # range): mirrored[x] is the gain there.
            for x in range(first, last + 1):
                mirrored[numba.uint64(x)] = gain[numba.uint64(span - 1 - s - x)]
            previous[zero] = 1.0  # c_0: the empty coalition
            for k in range((n - 1) // 2 + 1):
                if k > 0:
                    # c_k over counts[k]'s support; c_{k−1}(x − s) is read only where it was written.
                    _copy_row(held, counts[k], low[k], high[k] - low[k] + 1)
                    start, stop = max(low[k], low[k - 1] + s), min(high[k], high[k - 1] + s)
                    _subtract_row(held, previous, start, start - s, stop - start + 1)
                    current = held
                else:
                    current = previous
                a, b = max(low[k], first), min(high[k], last)
                value += weight[k] * _dot(current, gain, a, b - a + 1)
                if n - 1 - k != k:  # the complements: the others' (n − 1 − k)-coalitions
                    value += weight[n - 1 - k] * _dot(current, mirrored, a, b - a + 1)
                if k > 0:
                    held, previous = previous, held
        out[i] = value


@numba.njit(inline="always", cache=True)
def _copy_row(target, source, start, length):
    for x in range(length):
        target[numba.uint64(start + x)] = source[numba.uint64(start + x)]


@numba.njit(inline="always", cache=True)
def _subtract_row(target, source, target_start, source_start, length):
    for x in range(length):
        target[numba.uint64(target_start + x)] -= source[numba.uint64(source_start + x)]


@numba.njit(inline="always", cache=True)
def _dot(a, b, start, length):
    total = 0.0
    for x in range(length):
        total += a[numba.uint64(start + x)] * b[numba.uint64(start + x)]
    return total


@numba.njit(parallel=True, cache=True)
def _smooth_lattice_values(lattice_t, steps, beta, weight):
    """(T, n): bt_loglik's twin's exact Shapley value on each pair."""
    T, n = lattice_t.shape
    span = _widest_span(lattice_t)
    out = np.zeros((T, n))
    tasks = (T + PAIRS_PER_TASK - 1) // PAIRS_PER_TASK
    for task in numba.prange(tasks):
        rows = n // 2 + 1
        counts = np.zeros((rows, span))
        held, previous, value_at = np.zeros(span), np.zeros(span), np.zeros(span)
        gain, mirrored = np.zeros(span), np.zeros(span)
        low = np.empty(rows, dtype=np.int64)
        high = np.empty(rows, dtype=np.int64)
        for t in range(task * PAIRS_PER_TASK, min(T, (task + 1) * PAIRS_PER_TASK)):
            _smooth_pair_values(lattice_t[t], steps[t], beta, weight, counts, held, previous, value_at, gain,
                                mirrored, low, high, out[t])
    return out


def shapley_weights(n: int) -> np.ndarray:
    """k!(n − 1 − k)!/n! for k = 0 … n − 1: the weight of one k-coalition of the others."""
    return np.array([math.exp(math.lgamma(k + 1) + math.lgamma(n - k) - math.lgamma(n + 1)) for k in range(n)])


def _checked_terms(lattice_t) -> np.ndarray:
    lattice_t = np.ascontiguousarray(lattice_t)
    if lattice_t.ndim != 2 or lattice_t.shape[0] == 0 or lattice_t.shape[1] == 0:
        raise ValueError(f"lattice terms must have shape (T, n) with T, n > 0, got {lattice_t.shape}")
    if not np.issubdtype(lattice_t.dtype, np.integer):
        raise ValueError(f"lattice terms must be integers, got {lattice_t.dtype}")
    if lattice_t.shape[1] > MAX_LATTICE_OWNERS:
        raise ValueError(f"{lattice_t.shape[1]} owners: the twin's counts are exact up to {MAX_LATTICE_OWNERS} owners")
    return lattice_t.astype(np.int64, copy=False)


def lattice_shapley(lattice_t: np.ndarray) -> np.ndarray:
    """preference_accuracy's twin: its exact Shapley values, shape (n,), the mean over pairs of each
    pair's (module doc). `lattice_t` is the (T, n) integer terms of `lattice_scores`."""
    lattice_t = _checked_terms(lattice_t)
    T, n = lattice_t.shape
    probe = np.zeros(1, dtype=np.float32 if n <= FLOAT32_OWNERS else np.float64)
    _threads()
    return _lattice_values(lattice_t, shapley_weights(n), probe).sum(axis=0) / T


def loglik_lattice_shapley(lattice_t: np.ndarray, steps: np.ndarray, beta: float) -> np.ndarray:
    """bt_loglik's twin under `sum`, v_t(S) = log σ(β·h_t·Σ_{j∈S} q_j): its exact Shapley values, shape
    (n,). `steps` is `lattice_steps` (T,)."""
    lattice_t = _checked_terms(lattice_t)
    T, n = lattice_t.shape
    steps = np.ascontiguousarray(steps, dtype=np.float64)
    if steps.shape != (T,) or not np.all(np.isfinite(steps)) or not np.all(steps > 0):
        raise ValueError(f"steps must be {T} positive finite numbers, got shape {steps.shape}")
    _threads()
    return _smooth_lattice_values(lattice_t, steps, float(beta), shapley_weights(n)).sum(axis=0) / T
