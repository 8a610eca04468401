"""Shapley values: exact over a 2^n utility table, or sampled with error bars (docs/design.md §2).

Shapley (1953), for a game v on owners N = {0..n−1}:

    φ_i = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · (v(S ∪ {i}) − v(S)).

Every semivalue has this shape with another weight w(k) by coalition size |S| = k:
Shapley w(k) = 1/(n·C(n−1, k)), Banzhaf (1965) w(k) = 1/2^{n−1}, Beta(α, β) in
`semivalues`. Leave-one-out is the single term v(N) − v(N∖{i}).

Exact. The table v has length 2^n with v[mask] = v(S), bit i of mask ⇔ owner i ∈ S
(`utility.all_coalition_utilities` builds it). Regrouping the sum by coalition U,

    φ_i = Σ_{U ∋ i} v(U)·(w(|U|−1) + w(|U|)) − Σ_U v(U)·w(|U|)      (w(−1) = w(n) = 0),

so one pass weights every entry by its size and then, per owner, sums the entries
whose bit i is set — a strided half-sum of the weighted table. Subtracting v(∅) first
changes nothing (a semivalue ignores constants) and keeps the sums well conditioned.
Blocks of `chunk` entries bound memory. Measured n = 20: ≈ 25 ms (was 85 ms as n
strided differences).

Sampled. `estimate_shapley(utility, n, *, method, budget, seed)` takes a set function
on (k × n) boolean coalition matrices and returns a ShapleyResult with per-owner
standard errors, 95% intervals, the evaluations spent, the seed and why it stopped:
    permutation        antithetic permutation sampling (Castro et al. 2009)   estimators.py
    plain_permutation  the same without antithetic pairs (the baseline)       estimators.py
    stratified         stratified SVARM (Kolpaczki et al. 2024)               svarm.py
    kernel             paired KernelSHAP (Lundberg & Lee 2017; Covert & Lee 2021)  kernelshap.py
    structured         an exactly solved lattice twin (≤ 50 owners) or an analytic
                       prior, corrected by control-variate permutations; for the
                       arithmetic utilities of cached scores only        structured.py, lattice.py
    exact              the 2^n table (needs budget ≥ 2^n)
    auto               exact when 2^n ≤ budget, else `structured` for a score
                       utility (ScoreUtility) and AUTO_SAMPLED for any other
Sampling stops when the estimated misallocated share of the pool is below `target`
or the budget is spent (sampling.py explains the rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from valuation.engine.estimators import PermutationSampler
from valuation.engine.kernelshap import TARGET_HORIZON, KernelSampler
from valuation.engine.sampling import (  # Z_95 stays importable from here, as before
    DEFAULT_TARGET,
    Z_95,  # noqa: F401
    Evaluator,
    Utility,
    confidence_interval,
    resolve_seed,
    run_sampler,
)
from valuation.engine.structured import StructuredSampler
from valuation.engine.svarm import StratifiedSampler

# Entries per block of the weighted table: 2^20 float64 = 8 MB per temporary.
DEFAULT_CHUNK = 1 << 20
METHODS: tuple[str, ...] = ("auto", "exact", "permutation", "stratified", "kernel", "plain_permutation",
                            "structured")
# What `auto` samples with when 2^n does not fit the budget and the utility is a black box: the
# lowest misallocation of the generic estimators in bench/estimators.py (see README). A utility
# over cached scores gets `structured`, which beats every generic one (bench/scale.py).
AUTO_SAMPLED = "kernel"
# Generic utilities are tabulated for exact values up to this many owners (2^24 entries).
MAX_EXACT_OWNERS = 24


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class ShapleyResult:
    """Values of one utility with their uncertainty and provenance."""

    values: np.ndarray  # (n,) φ_i, in utility units
    stderr: np.ndarray  # (n,) standard error of each φ_i; zeros when exact
    ci_low: np.ndarray  # (n,) lower end of the 95% interval
    ci_high: np.ndarray  # (n,) upper end of the 95% interval
    n_evaluations: int  # utility evaluations spent (2^n for the exact table)
    method: str  # the method that produced the values ("exact", "kernel", …)
    seed: int | None = None  # RNG seed of a sampled estimate, None when exact
    stopped_because: str = "exact"  # "exact" | "target" (bound ≤ target) | "budget"
    misallocation_bound: float = 0.0  # estimated share of the pool possibly misallocated (95%)
    target: float | None = None  # the misallocation target the stopping rule aimed for
    budget: int | None = None  # the evaluation budget given
    requested_method: str | None = None  # what was asked for; "auto" resolves to `method`

    def __post_init__(self) -> None:
        shape = np.shape(self.values)
        for name in ("stderr", "ci_low", "ci_high"):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"{name} must have the shape of values {shape}")

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def sampled(self) -> bool:
        return self.method != "exact"

    def to_dict(self) -> dict:
        """Plain lists and numbers, for JSON fields on the round row."""
        return {
            "values": [float(x) for x in self.values],
            "stderr": [float(x) for x in self.stderr],
            "ci_low": [float(x) for x in self.ci_low],
            "ci_high": [float(x) for x in self.ci_high],
            "n_evaluations": int(self.n_evaluations),
            "method": self.method,
            "seed": self.seed,
            "stopped_because": self.stopped_because,
            "misallocation_bound": float(self.misallocation_bound),
            "target": self.target,
            "budget": self.budget,
            "requested_method": self.requested_method,
        }


def n_players(v: ArrayLike) -> int:
    """n for a table of length 2^n; ValueError for any other length or non-finite entries."""
    table = np.asarray(v)
    size = table.size
    if table.ndim != 1 or size < 1 or size & (size - 1):
        raise ValueError(
            f"utility table must be 1-D with length 2^n (one entry per coalition bitmask), "
            f"got shape {table.shape}"
        )
    if not np.all(np.isfinite(table)):
        raise ValueError("utility table contains NaN or inf")
    return size.bit_length() - 1


def shapley_weights(n: int) -> np.ndarray:
    """w(k) = k!(n−k−1)!/n! = 1/(n·C(n−1, k)) for k = 0..n−1, correctly rounded."""
    # Exact integers, one float division each: no factorial overflow, no lgamma drift.
    return np.array([1.0 / (n * math.comb(n - 1, k)) for k in range(n)], dtype=np.float64)


def banzhaf_weights(n: int) -> np.ndarray:
    """w(k) = 1/2^{n−1}: every coalition without i counts equally."""
    return np.full(n, 0.5 ** (n - 1), dtype=np.float64)


def semivalue(v: ArrayLike, *, weights: np.ndarray, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """φ_i = Σ_{S∌i} weights[|S|]·(v(S∪i) − v(S)) for every i, shape (n,) float64."""
    n = n_players(v)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(f"need one weight per coalition size 0..{n - 1}, got shape {weights.shape}")
    table = np.asarray(v, dtype=np.float64)
    with_i = np.zeros(n + 1)  # w(|U|−1) + w(|U|) by |U| = 0..n, for U ∋ i
    with_i[1:] += weights
    with_i[:n] += weights
    without = np.append(weights, 0.0)  # w(|U|) by |U|, subtracted from every owner
    block = 1 << min(n, max(0, int(math.log2(max(1, chunk)))))
    phi = np.zeros(n)
    for start in range(0, table.size, block):
        u = table[start : start + block] - table[0]
        sizes = np.bitwise_count(np.arange(start, start + u.size, dtype=np.int64))
        phi -= float(np.dot(u, without[sizes]))
        phi += _bit_sums(u * with_i[sizes], start, n)
    return phi


def _bit_sums(y: np.ndarray, start: int, n: int) -> np.ndarray:
    """Σ of y[m] over the masks m = start + offset whose bit i is set, for every i.

    The block is a power of two aligned at `start`, so low bits vary inside it (a strided
    half of the block) and high bits are constant (all of it or none).
    """
    sums = np.empty(n)
    low_bits = y.size.bit_length() - 1
    total = float(y.sum())
    for i in range(n):
        if i < low_bits:
            sums[i] = y.reshape(-1, 2, 1 << i)[:, 1, :].sum()
        else:
            sums[i] = total if start >> i & 1 else 0.0
    return sums


def exact_shapley(v: ArrayLike, *, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Exact Shapley values φ (n,) from a utility table of length 2^n."""
    return semivalue(v, weights=shapley_weights(n_players(v)), chunk=chunk)


def exact_banzhaf(v: ArrayLike, *, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Exact Banzhaf values: the mean marginal contribution over all S ⊆ N∖{i}."""
    return semivalue(v, weights=banzhaf_weights(n_players(v)), chunk=chunk)


def leave_one_out(v: ArrayLike) -> np.ndarray:
    """v(N) − v(N∖{i}) for every owner i, shape (n,)."""
    n = n_players(v)
    table = np.asarray(v, dtype=np.float64)
    grand = (1 << n) - 1
    without = grand ^ (1 << np.arange(n, dtype=np.int64))
    return table[grand] - table[without]


def exact_shapley_result(v: ArrayLike, *, chunk: int = DEFAULT_CHUNK, budget: int | None = None,
                         requested_method: str | None = None) -> ShapleyResult:
    """Exact Shapley values packaged for the round: zero error, 2^n evaluations, no seed."""
    values = exact_shapley(v, chunk=chunk)
    return ShapleyResult(
        values=values, stderr=np.zeros_like(values), ci_low=values.copy(), ci_high=values.copy(),
        n_evaluations=int(np.asarray(v).size), method="exact", seed=None, stopped_because="exact",
        misallocation_bound=0.0, budget=budget, requested_method=requested_method,
    )


def estimate_shapley(utility: Utility, n: int, *, method: str = "auto", budget: int,
                     seed: int | None = None, target: float | None = DEFAULT_TARGET,
                     precision: str = "float64") -> ShapleyResult:
    """Shapley values of `utility` ((k, n) bool → (k,) float) within `budget` evaluations.

    `target` is the misallocated share of the pool at which sampling may stop (None: spend
    the budget). `seed` (None: a fresh one, recorded in the result) fixes every random
    draw, so the same seed gives the same result. `precision` is passed to a utility's
    fast `table()` on the exact path (see `utility.all_coalition_utilities`).
    """
    resolved = _check_request(utility, n, method=method, budget=budget, target=target)
    if resolved == "exact":
        return exact_shapley_result(_exact_table(utility, n, precision=precision), budget=budget,
                                    requested_method=method)
    seed = resolve_seed(seed)
    sampler = _sampler(resolved, n, budget=budget, target=target, utility=utility, seed=seed)
    outcome = run_sampler(sampler, Evaluator(utility, n, budget), target=target,
                          rng=np.random.default_rng(seed), bound_seed=seed)
    low, high = confidence_interval(outcome.estimate)
    return ShapleyResult(
        values=outcome.estimate.values, stderr=outcome.estimate.stderr, ci_low=low, ci_high=high,
        n_evaluations=outcome.n_evaluations, method=resolved, seed=seed,
        stopped_because=outcome.stopped_because, misallocation_bound=outcome.misallocation_bound,
        target=target, budget=budget, requested_method=method,
    )


def _check_request(utility: Utility, n: int, *, method: str, budget: int, target: float | None) -> str:
    """The method to run, after refusing requests that cannot be honoured."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods are {', '.join(METHODS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the number of owners) must be a positive integer, got {n!r}")
    if getattr(utility, "n", n) != n:
        raise ValueError(f"the utility is over {utility.n} owners but n = {n}")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ValueError(f"budget (utility evaluations) must be a positive integer, got {budget!r}")
    if target is not None and not 0 < target < 1:
        raise ValueError(f"target is a share of the pool in (0, 1), got {target!r}")
    exact_fits = (1 << int(n)) <= budget and n <= MAX_EXACT_OWNERS
    structured = is_structured(utility)
    if method == "auto":
        resolved = "exact" if exact_fits else "structured" if structured else AUTO_SAMPLED
    else:
        resolved = method
    if resolved == "structured" and not structured:
        raise ValueError("method 'structured' needs a utility over cached scores (utility.coalition_utility_fn) "
                         "with preference_accuracy or bt_loglik; use 'kernel' for any other set function")
    if resolved == "exact" and not exact_fits:
        raise ValueError(
            f"exact Shapley values of {n} owners need 2^{n} = {1 << int(n)} evaluations "
            f"(at most {MAX_EXACT_OWNERS} owners) but the budget is {budget}; use a sampled method"
        )
    if resolved != "exact" and budget < _minimum_budget(resolved, n):
        raise ValueError(f"method {resolved!r} needs a budget of at least {_minimum_budget(resolved, n)} "
                         f"evaluations for {n} owners, got {budget}")
    return resolved


def is_structured(utility) -> bool:
    """Whether the utility exposes the score structure the `structured` estimator exploits."""
    return all(hasattr(utility, name) for name in ("scores", "chain", "composition", "beta")) and \
        getattr(utility, "utility", None) in ("preference_accuracy", "bt_loglik")


def _sampler(method: str, n: int, *, budget: int, target: float | None, utility, seed: int):
    if method == "structured":
        return StructuredSampler(utility, n, seed=seed)
    if method == "kernel":
        # With a target, enumerate size classes as if ≈ 25·n evaluations were to be spent.
        return KernelSampler(n, horizon=None if target is None else min(budget, TARGET_HORIZON * n))
    if method == "stratified":
        return StratifiedSampler(n)
    return PermutationSampler(n, antithetic=method == "permutation")


def _minimum_budget(method: str, n: int) -> int:
    """Warm-up evaluations plus one step of the smallest batch."""
    if method == "stratified":
        return 2 * n + 2 + 1
    if method == "kernel":
        return 2 + 2
    if method == "structured":
        return 2 + 2 * max(n - 1, 1)
    return 2 + PermutationSampler(n, antithetic=method == "permutation").min_batch


def _exact_table(utility: Utility, n: int, *, precision: str) -> np.ndarray:
    """All 2^n utilities: the utility's own fast table when it has one, else batched calls."""
    if hasattr(utility, "table"):
        return np.asarray(utility.table(precision=precision), dtype=np.float64)
    evaluate = Evaluator(utility, n, 1 << n)
    table = np.empty(1 << n)
    block = 1 << min(n, 16)
    bits = np.arange(n)
    for start in range(0, 1 << n, block):
        masks = np.arange(start, start + block, dtype=np.int64)
        table[start : start + block] = evaluate(((masks[:, None] >> bits) & 1).astype(np.bool_))
    return table
