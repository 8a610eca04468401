"""Stratified SVARM: Shapley values without marginal contributions (docs/design.md §2).

Stratified SVARM (Kolpaczki, Bengs, Muschalik & Hüllermeier 2024, "Approximating the
Shapley value without marginal contributions"): write
    φ_i = (1/n) Σ_ℓ ( E[v(S ∪ {i}) : |S| = ℓ, i ∉ S] − E[v(S) : |S| = ℓ, i ∉ S] )
and estimate each stratum mean separately. One evaluated coalition A of size s updates
the "plus" stratum ℓ = s − 1 of every member and the "minus" stratum ℓ = s of every
non-member, so every evaluation informs all n owners. As in the paper, a warm-up of
2n + 2 evaluations (∅, N, all singletons and all (n−1)-sets) makes strata ℓ = 0 and
ℓ = n − 1 (and minus ℓ = 1, plus ℓ = n − 2) exact, and sizes s ∈ [2, n − 2] are drawn
with P(s) ∝ 1/min(s, n − s), which evens out the scarcer side's sample counts. Per
stratum variances (shrunk towards the pooled variance of that stratum over owners)
give the standard errors; because one coalition updates every owner's strata, the
owners' errors are correlated, and a sandwich over the samples estimates that
correlation (used by the stopping rule). The final estimate is projected onto
efficiency, φ̃ = φ̂ + σ²/Σσ² · (v(N) − v(∅) − Σφ̂) (the minimum-variance correction for
independent errors), and the covariance with it.
"""

from __future__ import annotations

import math

import numpy as np

from valuation.engine.estimators import anchors
from valuation.engine.sampling import (
    Estimate,
    Evaluator,
    correlation_from_covariance,
    random_subsets,
)

_BLOCK_ENTRIES = 1 << 22
# Samples kept for the error correlation (a correlation needs no more; memory stays bounded).
_CORRELATION_ENTRIES = 1 << 24


class StratifiedSampler:
    """Stratified SVARM: per-size strata means of v(S ∪ {i}) and v(S) for every owner."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.min_batch = 1
        shape = (n, n)  # [owner, stratum ℓ]
        self.count = {sign: np.zeros(shape) for sign in "+-"}
        self.total = {sign: np.zeros(shape) for sign in "+-"}
        self.squares = {sign: np.zeros(shape) for sign in "+-"}
        self.exact = {sign: np.full(shape, np.nan) for sign in "+-"}
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # for the error correlation
        sizes = np.arange(2, n - 1)
        weights = 1.0 / np.minimum(sizes, n - sizes) if sizes.size else np.zeros(0)
        self.sizes, self.size_p = sizes, weights / weights.sum() if sizes.size else weights

    @property
    def exhausted(self) -> bool:
        return self.sizes.size == 0  # n ≤ 3: the warm-up strata are all there is

    def start(self, evaluate: Evaluator) -> None:
        """The 2n + 2 warm-up evaluations that make the outer strata exact."""
        n, eye = self.n, np.eye(self.n, dtype=np.bool_)
        self.empty, self.full = anchors(evaluate, n)
        single, all_but = evaluate(np.concatenate([eye, ~eye])).reshape(2, n)
        self.shift = 0.5 * (self.empty + self.full)  # centre sums of squares near the data
        plus, minus = self.exact["+"], self.exact["-"]
        plus[:, 0], minus[:, 0] = single, self.empty
        plus[:, n - 1], minus[:, n - 1] = self.full, all_but
        if n > 1:
            minus[:, 1] = (single.sum() - single) / (n - 1)
            plus[:, n - 2] = (all_but.sum() - all_but) / (n - 1)

    def step(self, evaluate: Evaluator, evaluations: int, rng: np.random.Generator) -> None:
        if self.sizes.size == 0:
            return
        per_call = max(1, _BLOCK_ENTRIES // self.n)
        for start in range(0, evaluations, per_call):
            k = min(per_call, evaluations - start)
            sizes = rng.choice(self.sizes, size=k, p=self.size_p)
            members = random_subsets(rng, sizes, self.n)
            values = evaluate(members) - self.shift
            self._accumulate(members, sizes, values)
            if sum(batch[0].size for batch in self.batches) < _CORRELATION_ENTRIES:
                self.batches.append((members, sizes, values))

    def _accumulate(self, members: np.ndarray, sizes: np.ndarray, values: np.ndarray) -> None:
        n = self.n
        owner = np.broadcast_to(np.arange(n), members.shape)
        for sign, mask, stratum in (("+", members, sizes[:, None] - 1), ("-", ~members, sizes[:, None])):
            index = (owner * n + np.broadcast_to(stratum, members.shape))[mask]
            weight = np.broadcast_to(values[:, None], members.shape)[mask]
            self.count[sign] += np.bincount(index, minlength=n * n).reshape(n, n)
            self.total[sign] += np.bincount(index, weight, minlength=n * n).reshape(n, n)
            self.squares[sign] += np.bincount(index, weight**2, minlength=n * n).reshape(n, n)

    def estimate(self) -> Estimate:
        parts = [self._stratum_means(sign) for sign in "+-"]
        (plus, var_plus, dof_plus, ok_plus), (minus, var_minus, dof_minus, ok_minus) = parts
        values = (plus - minus).sum(axis=1) / self.n
        variance = (var_plus + var_minus).sum(axis=1) / self.n**2
        terms = np.concatenate([var_plus, var_minus], axis=1) / self.n**2
        dofs = np.concatenate([dof_plus, dof_minus], axis=1)
        sd = np.sqrt(variance)
        covariance = self._sample_correlation(plus, minus) * np.outer(sd, sd)
        values, covariance = self._efficient(values, variance, covariance)
        return Estimate(values, np.sqrt(np.clip(np.diag(covariance), 0.0, None)),
                        _satterthwaite(terms, dofs), ok_plus and ok_minus,
                        correlation_from_covariance(covariance))

    def _sample_correlation(self, plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
        """Error correlation between owners: one coalition updates every owner's strata.

        φ̂ is linear in the sampled values given the stratum counts, each sample r adding
        x_ri = ±(v_r − mean of i's stratum)/(n·count of i's stratum) to owner i; the
        sandwich Σ_r x_r x_rᵀ estimates the covariance, of which only the correlation is
        kept (the variances are the shrunk per-stratum ones).
        """
        n, owners = self.n, np.arange(self.n)
        covariance = np.zeros((n, n))
        for members, sizes, values in self.batches:
            up, down = sizes[:, None] - 1, sizes[:, None]
            residual_up = values[:, None] - (plus[owners, up] - self.shift)
            residual_down = values[:, None] - (minus[owners, down] - self.shift)
            x = np.where(members, residual_up / np.maximum(self.count["+"][owners, up], 1.0),
                         -residual_down / np.maximum(self.count["-"][owners, down], 1.0))
            covariance += x.T @ x
        return correlation_from_covariance(covariance)

    def _stratum_means(self, sign: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Per (owner, stratum): mean, variance of the mean, its dof; exact strata have 0 variance."""
        count, total, squares = self.count[sign], self.total[sign], self.squares[sign]
        exact = ~np.isnan(self.exact[sign])
        sampled = ~exact & (np.arange(self.n) >= 1) & (np.arange(self.n) <= self.n - 2)
        pooled_count = count.sum(axis=0)
        pooled_mean = np.divide(total.sum(axis=0), pooled_count, out=np.zeros(self.n),
                                where=pooled_count > 0)
        pooled_var = np.divide(squares.sum(axis=0) - pooled_count * pooled_mean**2, pooled_count - 1,
                               out=np.zeros(self.n), where=pooled_count > 1)
        mean = np.divide(total, count, out=np.broadcast_to(pooled_mean, count.shape).copy(),
                         where=count > 0)
        own_ss = np.maximum(squares - count * mean**2, 0.0)
        # Shrink each stratum's variance towards the owners' pooled one (2 pseudo-samples),
        # so a stratum seen once or twice neither claims zero variance nor explodes.
        var = (own_ss + 2.0 * pooled_var) / (np.maximum(count - 1.0, 0.0) + 2.0)
        var_of_mean = var / np.maximum(count, 1.0)
        mean = np.where(exact, self.exact[sign], mean) + np.where(exact, 0.0, self.shift)
        var_of_mean = np.where(sampled, var_of_mean, 0.0)
        dof = np.where(sampled, count + 1.0, np.inf)
        ready = bool(np.all(count[sampled] >= 2)) if sampled.any() else True
        return mean, var_of_mean, dof, ready

    def _efficient(self, values: np.ndarray, variance: np.ndarray,
                   covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project onto Σφ = v(N) − v(∅); the covariance of the projected errors."""
        total_var = variance.sum()
        if total_var <= 0:
            return values, covariance
        weights = variance / total_var
        gap = (self.full - self.empty) - values.sum()
        project = np.eye(self.n) - np.outer(weights, np.ones(self.n))
        return values + weights * gap, project @ covariance @ project.T


def _satterthwaite(terms: np.ndarray, dofs: np.ndarray) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of variance terms (worst owner)."""
    finite = np.isfinite(dofs) & (terms > 0)
    if not finite.any():
        return math.inf
    numerator = np.where(finite, terms, 0.0).sum(axis=1) ** 2
    denominator = np.where(finite, terms**2 / np.where(finite, dofs, 1.0), 0.0).sum(axis=1)
    per_owner = np.divide(numerator, denominator, out=np.full(terms.shape[0], np.inf),
                          where=denominator > 0)
    return float(max(1.0, per_owner.min()))
