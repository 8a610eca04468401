"""Semivalues over the same utility: Beta Shapley, Banzhaf, leave-one-out (docs/design.md §2).

A semivalue (Dubey, Neyman & Weber 1981) weights owner i's marginal contributions by
coalition size only: φ_i = Σ_{S ⊆ N∖{i}} w(|S|)·(v(S ∪ {i}) − v(S)). The probabilistic
ones draw S by first drawing a rate t ~ p and then every other owner with chance t, so
w(k) = ∫ t^k (1 − t)^{n−1−k} p(t) dt:

  Shapley       p = Uniform(0, 1)            w(k) = k!(n−1−k)!/n!
  Beta(α, β)    Kwon & Zou 2022, "Beta Shapley: a unified and noise-reduced data
                valuation framework": p ∝ t^{β−1}(1 − t)^{α−1}, so
                w(k) = B(k + β, n − 1 − k + α) / B(α, β); Beta(1, 1) is Shapley and
                Beta(16, 1) (their recommendation) weights small coalitions most.
  Banzhaf       p = δ_{1/2}                  w(k) = 2^{−(n−1)}  (Data Banzhaf, Wang & Jia
                2023: the semivalue most robust to noisy utilities)
  Leave-one-out w puts all weight on S = N∖{i}: v(N) − v(N∖{i}) (not probabilistic).

Exact values reuse `shapley.semivalue` over the 2^n table. Sampled values use maximum
sample reuse (MSR, Wang & Jia 2023) generalised by importance weights: coalitions are
drawn from the semivalue's own distribution over all n owners (t ~ p, then each owner
with chance t), and for owner i

    φ̂_i = Σ_{S∋i} ρ⁺ v(S) / Σ_{S∋i} ρ⁺  −  Σ_{S∌i} ρ⁻ v(S) / Σ_{S∌i} ρ⁻,
    ρ⁺ = w(|S| − 1)/q(|S|),  ρ⁻ = w(|S|)/q(|S|),  q = the per-coalition draw probability.

Every evaluation serves all n owners; for Banzhaf ρ is constant and this is exactly MSR.
Standard errors are the delta-method variance of the two ratio means; the sampling
loop, budget and stopping rule are `sampling.run_sampler`'s.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from valuation.engine.sampling import (
    Estimate,
    Evaluator,
    confidence_interval,
    resolve_seed,
    run_sampler,
)
from valuation.engine.shapley import (
    DEFAULT_TARGET,
    ShapleyResult,
    banzhaf_weights,
    exact_banzhaf,
    leave_one_out,
    n_players,
    semivalue,
)

__all__ = ["beta_shapley", "beta_weights", "estimate_semivalue", "exact_banzhaf", "leave_one_out"]

KINDS: tuple[str, ...] = ("banzhaf", "beta")
_BLOCK_ENTRIES = 1 << 22


def beta_weights(n: int, alpha: float, beta: float) -> np.ndarray:
    """w(k) = B(k + β, n − 1 − k + α)/B(α, β) for k = 0..n−1 (Kwon & Zou's convention)."""
    _check_shape_parameters(alpha, beta)
    k = np.arange(n, dtype=np.float64)
    log_w = np.array([_log_beta(x + beta, n - 1 - x + alpha) for x in k]) - _log_beta(alpha, beta)
    return np.exp(log_w)


def beta_shapley(v: ArrayLike, *, alpha: float = 16.0, beta: float = 1.0) -> np.ndarray:
    """Exact Beta(α, β) Shapley values from a 2^n utility table."""
    return semivalue(v, weights=beta_weights(n_players(v), alpha, beta))


def semivalue_weights(n: int, *, kind: str, alpha: float = 1.0, beta: float = 1.0) -> np.ndarray:
    if kind not in KINDS:
        raise ValueError(f"unknown semivalue {kind!r}; valid are {', '.join(KINDS)}")
    return banzhaf_weights(n) if kind == "banzhaf" else beta_weights(n, alpha, beta)


def estimate_semivalue(utility, n: int, *, kind: str = "banzhaf", alpha: float = 1.0,
                       beta: float = 1.0, budget: int, seed: int | None = None,
                       target: float | None = DEFAULT_TARGET) -> ShapleyResult:
    """Sampled Banzhaf or Beta(α, β) values with standard errors, by weighted MSR."""
    seed = resolve_seed(seed)
    weights = semivalue_weights(n, kind=kind, alpha=alpha, beta=beta)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 4:
        raise ValueError(f"budget must be an integer of at least 4 evaluations, got {budget!r}")
    sampler = MSRSampler(n, weights, rate=(0.5, 0.5) if kind == "banzhaf" else (beta, alpha))
    outcome = run_sampler(sampler, Evaluator(utility, n, budget), target=target,
                          rng=np.random.default_rng(seed), bound_seed=seed)
    low, high = confidence_interval(outcome.estimate)
    return ShapleyResult(
        values=outcome.estimate.values, stderr=outcome.estimate.stderr, ci_low=low, ci_high=high,
        n_evaluations=outcome.n_evaluations, method=f"msr-{kind}", seed=seed,
        stopped_because=outcome.stopped_because, misallocation_bound=outcome.misallocation_bound,
        target=target, budget=budget, requested_method=f"msr-{kind}",
    )


class MSRSampler:
    """Weighted maximum sample reuse: one coalition draw informs every owner."""

    min_batch = 1

    def __init__(self, n: int, weights: np.ndarray, *, rate: tuple[float, float]) -> None:
        self.n, self.rate = n, rate
        q = _draw_probabilities(n, rate)  # per-coalition probability by size 0..n
        self.rho_plus = np.zeros(n + 1)
        self.rho_plus[1:] = weights / q[1:]
        self.rho_minus = np.zeros(n + 1)
        self.rho_minus[:n] = weights / q[:n]
        # Per owner and side: Σρ, Σρv, Σρ², Σρ²v, Σρ²v² (the ratio mean and its variance).
        self.sums = np.zeros((2, 5, n))

    def start(self, evaluate: Evaluator) -> None:
        self.shift = float(evaluate(np.zeros((1, self.n), np.bool_))[0])

    def step(self, evaluate: Evaluator, evaluations: int, rng: np.random.Generator) -> None:
        per_call = max(1, _BLOCK_ENTRIES // self.n)
        for start in range(0, evaluations, per_call):
            k = min(per_call, evaluations - start)
            t = np.full(k, 0.5) if self.rate == (0.5, 0.5) else rng.beta(*self.rate, size=k)
            members = rng.random((k, self.n)) < t[:, None]
            values = evaluate(members) - self.shift
            sizes = members.sum(axis=1)
            for side, (mask, rho) in enumerate(((members, self.rho_plus[sizes]),
                                                (~members, self.rho_minus[sizes]))):
                r = np.where(mask, rho[:, None], 0.0)
                rv, r2 = r * values[:, None], r**2
                self.sums[side] += [r.sum(0), rv.sum(0), r2.sum(0), (r2 * values[:, None]).sum(0),
                                    (rv**2).sum(0)]

    def estimate(self) -> Estimate:
        means, variances, sizes = [], [], []
        for rho, rho_v, rho2, rho2_v, rho2_v2 in self.sums:
            mean = np.divide(rho_v, rho, out=np.zeros(self.n), where=rho > 0)
            # Delta method for Σρv/Σρ: Σρ²(v − mean)² / (Σρ)², expanded in the running sums.
            spread = np.maximum(rho2_v2 - 2 * mean * rho2_v + mean**2 * rho2, 0.0)
            means.append(mean)
            variances.append(np.divide(spread, rho**2, out=np.full(self.n, np.inf), where=rho > 0))
            sizes.append(np.divide(rho**2, rho2, out=np.zeros(self.n), where=rho2 > 0))
        effective = np.minimum(*sizes)  # Kish effective sample size, the scarcer side
        values = means[0] - means[1]
        stderr = np.sqrt(variances[0] + variances[1])
        dof = float(max(1.0, effective.min() - 1.0))
        return Estimate(values, stderr, dof, bool(effective.min() >= 10))


def _draw_probabilities(n: int, rate: tuple[float, float]) -> np.ndarray:
    """q(k): the chance of drawing one given coalition of size k, for k = 0..n."""
    if rate == (0.5, 0.5):
        return np.full(n + 1, 0.5**n)
    a, b = rate  # t ~ Beta(a, b): q(k) = B(k + a, n − k + b)/B(a, b)
    return np.exp([_log_beta(k + a, n - k + b) - _log_beta(a, b) for k in range(n + 1)])


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _check_shape_parameters(alpha: float, beta: float) -> None:
    for name, x in (("alpha", alpha), ("beta", beta)):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 < x < math.inf:
            raise ValueError(f"{name} must be a positive finite number, got {x!r}")
