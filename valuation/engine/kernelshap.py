"""Paired KernelSHAP: Shapley values as a weighted least-squares fit (docs/design.md §2).

Lundberg & Lee (2017) showed that the Shapley values solve

    min_φ Σ_{∅≠S≠N} μ(S)·(v(S) − v(∅) − Σ_{i∈S} φ_i)²   subject to Σ_i φ_i = v(N) − v(∅),

with the Shapley kernel μ(S) = (n − 1)/(C(n, |S|)·|S|·(n − |S|)). Estimating the normal
equations A φ = b − λ1 (A = Σ μ z zᵀ, b = Σ μ z (v(z) − v(∅)), z the membership vector)
from sampled coalitions gives the estimator; for a game that is additive up to noise
the fit is exact however few coalitions were drawn, which is why it beats averaging
marginal contributions on the near-additive utilities of data valuation.

Two refinements:
  * paired sampling (Covert & Lee 2021, "Improving KernelSHAP"): every sampled S is
    evaluated with its complement N∖S (same kernel weight), which cancels the even-order
    interaction terms of the error and halves the variance in practice;
  * size classes whose kernel share of the budget would exceed their size are
    enumerated outright, as in the reference KernelExplainer; with n = 20 and 20·n
    evaluations that is the 40 coalitions of sizes 1 and 19 (≈ 30% of the kernel mass).
    When a misallocation target may stop sampling early, the plan assumes at most
    25·n evaluations (`TARGET_HORIZON`), so the budget is not sunk into enumeration.
The remaining sizes are drawn with probability ∝ their kernel mass, so each sampled
pair carries equal weight.

Standard errors are a grouped jackknife (Quenouille–Tukey): sampled pairs are dealt
round-robin into G = 20 groups, the fit is redone leaving each group out, and
Var = (G−1)/G·Σ_g (φ_(g) − φ̄)², with G − 1 degrees of freedom. The fit is a smooth
function of two sample means, so the jackknife is consistent (and, for ratio-type
estimators, errs on the conservative side).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from valuation.engine.estimators import anchors
from valuation.engine.sampling import Estimate, Evaluator, correlation_from_covariance, random_subsets

GROUPS = 20  # jackknife groups: G − 1 = 19 degrees of freedom for the interval
TARGET_HORIZON = 25  # × n evaluations planned for enumeration when a target may stop early
_BLOCK_ENTRIES = 1 << 22


def size_masses(n: int) -> np.ndarray:
    """Total Shapley-kernel mass of all coalitions of each size 0..n (0 at ∅ and N)."""
    masses = np.zeros(n + 1)
    sizes = np.arange(1, n)
    masses[1:n] = (n - 1) / (sizes * (n - sizes))
    return masses


class KernelSampler:
    """Paired KernelSHAP with enumerated small classes and a grouped jackknife."""

    def __init__(self, n: int, *, horizon: int | None = None) -> None:
        # Evaluations the enumeration plans for: the budget, or less when a target may stop
        # sampling early (enumerating for a budget that is never spent wastes it).
        self.horizon = horizon
        self.n, self.min_batch, self.pairs = n, 2, 0
        self.masses = size_masses(n)
        self.A_fixed, self.b_fixed = np.zeros((n, n)), np.zeros(n)
        self.A_groups, self.b_groups = np.zeros((GROUPS, n, n)), np.zeros((GROUPS, n))
        self.group_pairs = np.zeros(GROUPS, np.int64)

    def start(self, evaluate: Evaluator) -> None:
        self.empty, self.full = anchors(evaluate, self.n)
        open_sizes = set(range(1, self.n))
        plan = evaluate.remaining if self.horizon is None else min(self.horizon, evaluate.remaining)
        for s in range(1, self.n // 2 + 1):
            members = {s, self.n - s}
            count = sum(math.comb(self.n, k) for k in members)
            share = sum(self.masses[k] for k in members) / sum(self.masses[k] for k in open_sizes)
            if count > plan or plan * share < count:
                break  # KernelExplainer's rule: sample from here on
            for k in members:
                self._enumerate(evaluate, k)
            open_sizes -= members
            plan -= count
        self.sizes = np.array(sorted(open_sizes), dtype=np.int64)
        self.sampled_mass = float(self.masses[self.sizes].sum()) if self.sizes.size else 0.0
        self.size_p = self.masses[self.sizes] / self.sampled_mass if self.sizes.size else self.sizes

    @property
    def exhausted(self) -> bool:
        return self.sizes.size == 0

    def _enumerate(self, evaluate: Evaluator, size: int) -> None:
        weight = self.masses[size] / math.comb(self.n, size)
        combos = itertools.combinations(range(self.n), size)
        per_call = max(1, _BLOCK_ENTRIES // self.n)
        while chunk := list(itertools.islice(combos, per_call)):
            z = np.zeros((len(chunk), self.n))
            np.put_along_axis(z, np.array(chunk, dtype=np.int64).reshape(len(chunk), size), 1.0, axis=1)
            gain = evaluate(z.astype(np.bool_)) - self.empty
            self.A_fixed += weight * (z.T @ z)
            self.b_fixed += weight * (z.T @ gain)

    def step(self, evaluate: Evaluator, evaluations: int, rng: np.random.Generator) -> None:
        if self.sizes.size == 0:
            return
        per_call = max(1, _BLOCK_ENTRIES // (2 * self.n))
        pairs = evaluations // 2
        for start in range(0, pairs, per_call):
            k = min(per_call, pairs - start)
            z = random_subsets(rng, rng.choice(self.sizes, size=k, p=self.size_p), self.n)
            gains = evaluate(np.concatenate([z, ~z])) - self.empty
            self._accumulate(z.astype(np.float64), gains[:k], gains[k:])

    def _accumulate(self, z: np.ndarray, gain: np.ndarray, gain_complement: np.ndarray) -> None:
        groups = (self.pairs + np.arange(z.shape[0])) % GROUPS
        complement = 1.0 - z
        for g in range(GROUPS):
            rows = groups == g
            zg, cg = z[rows], complement[rows]
            self.A_groups[g] += 0.5 * (zg.T @ zg + cg.T @ cg)
            self.b_groups[g] += 0.5 * (zg.T @ gain[rows] + cg.T @ gain_complement[rows])
            self.group_pairs[g] += int(rows.sum())
        self.pairs += z.shape[0]

    def estimate(self) -> Estimate:
        if self.sizes.size == 0:  # every coalition enumerated: the fit is exact
            values = self._solve(self.A_fixed[None], self.b_fixed[None])[0]
            return Estimate(values, np.zeros(self.n), math.inf, True)
        if self.pairs == 0:
            return Estimate(np.full(self.n, (self.full - self.empty) / self.n),
                            np.full(self.n, np.inf), 1.0, False)
        A_all, b_all = self.A_groups.sum(axis=0), self.b_groups.sum(axis=0)
        used = np.flatnonzero(self.group_pairs > 0)
        kept = (self.pairs - self.group_pairs[used]).astype(np.float64)
        scale = np.concatenate([[self.pairs], np.where(kept > 0, kept, 1.0)])
        A = np.concatenate([A_all[None], A_all - self.A_groups[used]])
        b = np.concatenate([b_all[None], b_all - self.b_groups[used]])
        factor = self.sampled_mass / scale
        fits = self._solve(self.A_fixed + factor[:, None, None] * A, self.b_fixed + factor[:, None] * b)
        values, leave_outs = fits[0], fits[1:]
        g = leave_outs.shape[0]
        if g < 2:
            return Estimate(values, np.full(self.n, np.inf), 1.0, False)
        spread = leave_outs - leave_outs.mean(axis=0)
        covariance = (g - 1) / g * (spread.T @ spread)
        ready = self.pairs >= max(2 * GROUPS, self.n) and g == GROUPS
        return Estimate(values, np.sqrt(np.diag(covariance)), float(g - 1), ready,
                        correlation_from_covariance(covariance))

    def _solve(self, A: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Constrained least squares for a stack of (A, b): the KKT system with Σφ = Δ."""
        k, n = b.shape
        kkt = np.zeros((k, n + 1, n + 1))
        kkt[:, :n, :n], kkt[:, :n, n], kkt[:, n, :n] = A, 1.0, 1.0
        rhs = np.concatenate([b, np.full((k, 1), self.full - self.empty)], axis=1)
        try:
            return np.linalg.solve(kkt, rhs[..., None])[:, :n, 0]
        except np.linalg.LinAlgError:  # too few pairs yet: the minimum-norm fit
            return np.stack([np.linalg.lstsq(m, r, rcond=None)[0][:n] for m, r in zip(kkt, rhs)])
