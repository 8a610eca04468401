"""Sampled Shapley values by permutation sampling (docs/design.md §2).

Permutation sampling (Castro, Gómez & Tejada 2009): φ_i is the mean, over uniformly random
arrival orders π, of i's marginal contribution v(pre_π(i) ∪ {i}) − v(pre_π(i)). One order
costs its n − 1 proper prefixes (v(∅) and v(N) are evaluated once and reused) and yields
a marginal for every owner; the marginals of one order sum to v(N) − v(∅), so the
estimate is efficient by construction. Antithetic sampling pairs each order with its
reverse (Mitchell et al. 2022, "Sampling permutations for Shapley value estimation"):
an owner early in one is late in the other, and for the near-monotone utilities of
data valuation the two marginals are negatively correlated. Standard errors come from
the spread of the per-order (per-pair) marginals plus two pseudo-samples at the extremes
seen (`Moments.stderr(plus_two=True)`), so rare pivots cannot claim zero error;
intervals are Student-t.

Stratified sampling by coalition size (SVARM) lives in `svarm`.
"""

from __future__ import annotations

import numpy as np

from valuation.engine.sampling import (
    Estimate,
    Evaluator,
    Moments,
    correlation_from_covariance,
)

MIN_SAMPLES = 8  # orders (or antithetic pairs) before a stderr is trusted
# Largest boolean block handed to the utility in one call.
_BLOCK_ENTRIES = 1 << 22


def anchors(evaluate: Evaluator, n: int) -> tuple[float, float]:
    """v(∅) and v(N), evaluated once per estimate."""
    empty_full = np.zeros((2, n), np.bool_)
    empty_full[1] = True
    low, high = evaluate(empty_full)
    return float(low), float(high)


class PermutationSampler:
    """Permutation sampling, antithetic (π and reversed π) by default."""

    exhausted = False  # orders are always sampled, never enumerated

    def __init__(self, n: int, *, antithetic: bool = True) -> None:
        self.n, self.antithetic = n, antithetic
        self.min_batch = (2 if antithetic else 1) * max(n - 1, 1)
        self.moments = Moments(n)

    def start(self, evaluate: Evaluator) -> None:
        self.empty, self.full = anchors(evaluate, self.n)

    def step(self, evaluate: Evaluator, evaluations: int, rng: np.random.Generator) -> None:
        per_call = max(1, _BLOCK_ENTRIES // (self.n * self.n))
        samples = evaluations // self.min_batch
        for start in range(0, samples, per_call):
            orders = np.argsort(rng.random((min(per_call, samples - start), self.n)), axis=1)
            if self.antithetic:
                orders = np.concatenate([orders, orders[:, ::-1]])
            marginals = self._marginals(evaluate, orders)
            if self.antithetic:
                half = marginals.shape[0] // 2
                marginals = 0.5 * (marginals[:half] + marginals[half:])
            self.moments.add(marginals)

    def _marginals(self, evaluate: Evaluator, orders: np.ndarray) -> np.ndarray:
        """(m, n) marginal contributions of every owner along each order."""
        m, n = orders.shape
        chain = np.empty((m, n + 1))
        if n > 1 and hasattr(evaluate.utility, "chain"):  # cached scores: O(n·T) per order, not O(n²·T)
            evaluate.charge(m * (n - 1))
            for row, order in enumerate(orders):
                chain[row] = evaluate.utility.chain(order)[1]
        elif n > 1:
            ranks = np.argsort(orders, axis=1)  # position of each owner in its order
            prefixes = ranks[:, None, :] < np.arange(1, n)[None, :, None]  # (m, n−1, n)
            chain[:, 1:n] = evaluate(prefixes.reshape(-1, n)).reshape(m, n - 1)
        chain[:, 0], chain[:, n] = self.empty, self.full
        marginals = np.empty((m, n))
        np.put_along_axis(marginals, orders, np.diff(chain, axis=1), axis=1)
        return marginals

    def estimate(self) -> Estimate:
        count = self.moments.count
        if count == 0:
            return Estimate(np.full(self.n, (self.full - self.empty) / self.n),
                            np.full(self.n, np.inf), 1.0, False)
        return Estimate(self.moments.mean.copy(), self.moments.stderr(plus_two=True), count + 1,
                        count >= MIN_SAMPLES, correlation_from_covariance(self.moments.comoment))
