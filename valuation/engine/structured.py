"""Structured Shapley estimator for the arithmetic game: an analytic prior or an exactly solved twin game,
made unbiased by a control-variate correction from antithetic permutation sampling (docs/design.md §2).

Structure. With cached scores a coalition's margin on eval pair t is a sum of owner terms,
M_S(t) = Σ_{j∈S} D[j, t] (composition `sum`), and v(S) = mean_t g(M_S(t)). Grouping Shapley's
formula by coalition size, φ_i = (1/n) Σ_{k=0}^{n−1} E[Δ_i(P) | |P| = k], where P is a uniform
k-subset of the N = n − 1 other owners and Δ_i(P) = v(P ∪ {i}) − v(P).

Prior A_i(k) ≈ E[Δ_i(P) | |P| = k]. On each pair the m others with the largest |D[j, t]| ("big")
are treated exactly: a pattern B of them lies in P with the hypergeometric probability
C(N−m, k−|B|)/C(N, k). The other ("small") owners in P are a uniform r-subset, r = k − |B|, of the
N − m small values, so their sum X has exact finite-population moments μ_r = r·x̄ and
s_r² = r·σ²·(N−m−r)/(N−m−1), and X is taken as normal (Hájek's finite-population CLT):

    A_i(k) = mean_t Σ_B p(B | k)·[G(a_B + d_i + μ_r, s_r) − G(a_B + μ_r, s_r)]

with a_B the big owners' sum, d_i = D[i, t] and G = `smoothed.smoothed_utility`. This is Owen's
(1972) multilinear-extension approximation with the exact size distribution in place of the
inclusion-probability integral, plus exact big terms. On the 20-owner bench game it misallocates
≈0.1% of the pool (accuracy) and ≈0.02% (log-likelihood) with no utility evaluation at all.

Control variate. For owner i with predecessors P in a sampled order, the surrogate uses what P holds:

    c_i(P) = mean_t [H(a_P, r_P) + b₁·H′·D + b₂·H″/2·(D² − s_r²) + b₃·H‴/6·(D³ − κ₃(r_P))]

with H(a, r) = G(a+d+μ_r, s_r) − G(a+μ_r, s_r), its derivatives H′, H″, H‴ in μ, a_P and X_P the
realized big and small sums, D = X_P − μ_{r_P}, and κ₃(r) = r(N−r)(N−2r)/((N−1)(N−2))·μ₃ the exact
third central moment of a uniform r-subset sum of the N small terms (population third moment μ₃).
Given k, P's big pattern has exactly the probabilities above, and given the pattern the small terms in
P are a uniform r-subset, so E[D] = 0, E[D²] = s_r² and E[D³] = κ₃ exactly: E[c_i(P) | k] = A_i(k)
whatever the b's, and

    φ̂_i = Ā_i + mean over sampled orders of (Δ_i(P) − c_i(P)),      Ā_i = (1/n) Σ_k A_i(k),

is unbiased however good the normal approximation is; its quality only sets the variance. The Taylor
terms are the next Hermite terms of the step's expansion in the small sum: on the 20-owner bench game
the quadratic one removes a quarter of what the linear one leaves (accuracy), and the log-likelihood's
misallocation at 20·n falls from 0.13% to 0.04% (0.02% with 8 big owners). b starts at (1, 1, 0) (the Gaussian projection:
Stein's lemma) and is refitted by least squares, over all owners, after every antithetic pair — from
earlier pairs only, so each residual keeps its exact mean (a martingale difference) and the estimate
stays exactly unbiased. Orders come in antithetic pairs (an order and its reverse). Ā_i is summed over
every size up to `full_sizes` owners; above that A_i(k) is evaluated on quadratically spaced nodes
(trapezoid rule) and two uniform sizes inside each interval estimate what A differs from the straight
line there: unbiased, and its variance estimate enters the standard error (`_prior_mean`).

The lattice twin, up to `twin_owners` (50) owners (`lattice`). Both utilities on rounded terms
q_j = round(D[j, t]/h_t) form a twin game u whose Shapley values a subset-sum count gives exactly, and

    φ̂_i = φ_i(u) + mean over sampled orders of (Δ_i v − Δ_i u)

is unbiased whatever the lattice; the difference is non-zero only where rounding moved a coalition's sum
across 0 (accuracy) or moved it a little (log-likelihood). It replaces the normal prior there, except for
bt_loglik under `mean` (the twin cannot carry the divisor). Its correction is mostly 0 with rare jumps, so
each owner's variance is pooled with the owners' mean variance (`TWIN_POOLED_PAIRS` pseudo-pairs): a few
orders cannot claim zero error. The lattice's resolution comes from `twin_work`
(`StructuredConfig.resolution_for`).

preference_accuracy: every position (`StructuredConfig.all_positions`). The residual Δ_i(P) − c_i(P)
of an accuracy marginal is a step of X_P that no smooth surrogate removes, so at n = 1,000 the bound fell
only as 1/√orders (1% after 454 s). Each sampled order is therefore used at every insertion position of
every owner (`positions`: the mean of Δ_i(Q_k) over the others' prefixes Q_k, counted exactly per pair
with a Fenwick tree, O(T·n·log n) per order), and the control variate works at the same positions:
  * up to `twin_owners` owners, the twin's marginals at every Q_k (the same counts on its terms);
  * above, no prior: three location terms with exactly zero mean (`positions.location_terms`), and the
    every-position mean is unbiased by itself. 1% at n = 1,000 takes 45 antithetic pairs, 6–8 s (README).

Efficiency. Σφ̂ = v(N) − v(∅) holds only up to sampling error; the reported values are projected
onto it with weights ∝ each owner's variance (as SVARM). The weights are estimated, which leaves a
bias of order 1/samples; `raw` keeps the exactly unbiased estimate.

Composition `mean` (w_i = n_i/Σ_{j∈S} n_j). preference_accuracy only sees the margin's sign, which
the positive divisor does not change: it is the `sum` game on n_i·D[i], and all of the above holds.
bt_loglik under `mean` divides by Σ_{j∈S} n_j; the surrogate divides by its expectation for the
coalition size instead, so it stays unbiased (its mean is computed for the surrogate as defined) but
the divisor's randomness is left to sampling and the variance is larger.

Cost: memory O(n·T·m) (+ the twin's O(n·resolution) per thread), never a 2^n or n² × T array; time O(n·T·2^m)
per prior size or O(n²·T·resolution) for the twin, and O(n·T·m) per sampled order (the prefix margins are
cumulative sums), O(n·T·log n) per order with every position. G and its derivatives are float32 torch
kernels (`smoothed`), float64 only when the prior is exact.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from valuation.engine.estimators import anchors
from valuation.engine.lattice import (
    MAX_LATTICE_OWNERS,
    RESOLUTIONS,
    lattice_shapley,
    lattice_steps,
    lattice_terms,
    loglik_lattice_shapley,
)
from valuation.engine.positions import location_terms, position_marginals
from valuation.engine.sampling import Estimate, Evaluator, Moments, correlation_from_covariance
from valuation.engine.smoothed import smoothed_derivatives, smoothed_gain_terms, smoothed_utility, taylor_parts
from valuation.engine.utility import coalition_utility_fn

TWIN_POOLED_PAIRS = 2  # pseudo-pairs of the owners' mean variance in each twin-corrected owner's
LOGLIK_TWIN_COST = 8  # the log-likelihood twin's work per lattice point, against accuracy's
MIN_PAIRS = 8  # antithetic pairs before a standard error is trusted by the stopping rule
CORRELATION_LIMIT = 60  # owners up to which the error correlation is tracked (n² memory above is waste)
TERMS = 3  # Taylor terms of the control variate beyond H: linear, quadratic, cubic in the small sum
# Their coefficients before any order is seen: the Gaussian (Stein) projection of the linear and
# quadratic terms, no cubic term.
DEFAULT_COEFFICIENTS = np.array([1.0, 1.0, 0.0])
# The location terms' (`positions`): their Taylor value.
POSITION_COEFFICIENTS = np.array([1.0, 1.0, 1.0])
RIDGE_ORDERS = 4  # orders' worth of pull towards the defaults in the coefficient fit
# The location terms' Taylor values are close to their least-squares ones (1,000-owner bench game: residual
# sd 0.217 against 0.213 of the pool), and a fit from a few dozen heavy-tailed orders cost more than it
# gained (seeds 0–5 stopped after 45–102 antithetic pairs with a 4-order pull, all after 45 with 200).
POSITION_RIDGE_ORDERS = 200
# Intervals of the size quadrature above `full_sizes` owners. Accuracy's A_i(k) bends more: with 16 its
# prior alone left a standard error of 2.3% of the positive pool at n = 1,000, a floor under the
# misallocation bound close to the 1% target. 32 intervals leave 0.8%, and reaching 1% there took 7.9 M
# evaluations instead of 11.8 M. The log-likelihood's 16 leave 0.6% (bench/prior_quadrature.py).
STRATA = {"preference_accuracy": 32, "bt_loglik": 16}


@dataclass(frozen=True)
class StructuredConfig:
    """How the prior is built; none of it changes what the estimate converges to."""

    # Owners per pair treated exactly in the prior (2^m patterns). None: the most, up to 8, whose prior
    # fits `prior_work` pattern × size × owner × pair terms — the more exact terms, the smaller what is
    # left to sampling (measured: accuracy on the demo's replicated scores, 1.3% misallocation from the
    # prior alone at m = 4, 0.1% at m = 8; on the 20-owner bench game at 20·n evaluations, 1.10% at
    # m = 6 and 0.93% at m = 8).
    big_owners: int | None = None
    # Terms the prior may cost when choosing m: 2^27 is ≈ 1.5 s on this 2-core machine (n = 20, m = 8).
    prior_work: int = 1 << 27
    # Above `full_sizes` owners each is a small part of a pair's margin and every sampled order costs
    # more, so the prior gets less: 2^25 keeps n = 1,000 at m = 0 and n = 100 at m = 2.
    large_prior_work: int = 1 << 25
    # Up to this many owners Ā sums all n sizes; above, a quadrature over sizes keeps the prior O(n·T).
    full_sizes: int = 64
    # Intervals of that quadrature (nodes at 1 + (n − 2)·(j/strata)², two random sizes inside each).
    # None: `STRATA` for the utility.
    strata: int | None = None
    # Owners × pairs handled at once: bounds the temporaries to a few tens of MB.
    chunk_entries: int = 1 << 20
    # preference_accuracy from every insertion position of each sampled order (`positions`) instead of
    # the sampled position only.
    all_positions: bool = True
    # Up to this many owners (at most `lattice.MAX_LATTICE_OWNERS`) the every-position mean is corrected
    # by the lattice twin (`lattice`: its exact value plus the two games' difference); above, by the
    # location terms, and no prior is computed.
    twin_owners: int = MAX_LATTICE_OWNERS
    # The twin's lattice points per pair (`lattice.lattice_scores`). None: as many as `twin_work` lattice
    # points × owners² × pairs allow, within `lattice.RESOLUTIONS`. The twin costs O(n²·T·G) once; what
    # it leaves to sampling falls about as 1/√G (a finer lattice moves fewer sums across 0): on the
    # 16-owner bench game the correction's sd per antithetic pair halves from G = 2,048 to 8,192.
    twin_resolution: int | None = None
    # 2^31: accuracy's G ≈ 8,400 at n = 16 and 3,700 at n = 24 with T = 1,000 pairs, 45 and 37 ms on one
    # core (an ad-hoc timing). The log-likelihood's twin works half the count rows for every owner, ≈ 6× more per lattice
    # point (`LOGLIK_TWIN_COST`): G ≈ 1,000 and 470 there.
    twin_work: int = 1 << 31

    def resolution_for(self, n: int, T: int, utility: str = "preference_accuracy") -> int:
        if self.twin_resolution is not None:
            return self.twin_resolution
        work = self.twin_work if utility == "preference_accuracy" else self.twin_work // LOGLIK_TWIN_COST
        lowest, highest = RESOLUTIONS
        return int(np.clip(work // (n * n * T), lowest, highest))

    def uses_twin(self, n: int, utility: str, *, divided: bool = False) -> bool:
        """The lattice twin: accuracy with every position (its correction is counted there), the
        log-likelihood at one position when its margins are not divided (`mean`: the twin would need
        the divisor's distribution too); up to `twin_owners`."""
        if n < 2 or n > min(self.twin_owners, MAX_LATTICE_OWNERS):
            return False
        return self.uses_all_positions(n, utility) if utility == "preference_accuracy" else not divided

    def uses_all_positions(self, n: int, utility: str) -> bool:
        if utility != "preference_accuracy" or n < 2:
            # A smooth g has no window to count (Σ_k g(Q_k + d) − g(Q_k) is O(n) per owner); one owner's
            # value is v(N) − v(∅), which the prior gives exactly.
            return False
        return self.all_positions

    def prior_nodes(self, n: int, utility: str) -> np.ndarray:
        """The sizes 1 … n − 1 where the quadrature above `full_sizes` evaluates A exactly."""
        strata = self.strata or STRATA[utility]
        return np.unique(np.round(1 + (n - 2) * np.linspace(0.0, 1.0, strata + 1) ** 2).astype(np.int64))

    def prior_sizes(self, n: int, utility: str) -> int:
        """Sizes at which the prior evaluates A: all n, or ∅ + the nodes + two draws per interval."""
        if n <= self.full_sizes:
            return n
        nodes = self.prior_nodes(n, utility)
        return 1 + len(nodes) + 2 * int(np.count_nonzero(np.diff(nodes) > 1))

    def big_for(self, n: int, T: int, utility: str) -> int:
        if self.big_owners is not None:
            return max(0, min(self.big_owners, n - 1))
        work = self.prior_work if n <= self.full_sizes else self.large_prior_work
        m = 0
        while m < min(8, n - 1) and (2 ** (m + 1)) * n * self.prior_sizes(n, utility) * T <= work:
            m += 1
        return m


class ArithmeticGame:
    """The score structure of a `ScoreUtility`: numerators, divisors, per-pair big owners."""

    def __init__(self, utility, m: int) -> None:
        self.utility, self.name, self.beta = utility, utility.utility, utility.beta
        D, sizes = utility.scores, utility.sizes
        self.n, self.T = D.shape
        weighted = utility.composition == "mean"
        self.numer = D * sizes[:, None] if weighted else D
        # Only the log-likelihood sees the divisor; the sign of a margin does not.
        self.divided = weighted and self.name == "bt_loglik"
        self.sizes = sizes if self.divided else None
        self.m = m
        # Every other owner exact (nothing left to the normal): the prior is the Shapley value, in float64.
        self.dtype = np.float64 if m >= self.n - 1 else np.float32
        self.total, self.total_sq = self.numer.sum(axis=0), (self.numer**2).sum(axis=0)
        self.total_cube = (self.numer**3).sum(axis=0)
        order = np.argsort(-np.abs(self.numer), axis=0, kind="stable")
        self.top = order[: m + 1]  # (m+1, T): the largest terms, one spare for when owner i is among them
        self.patterns = np.array(list(itertools.product((False, True), repeat=m)), dtype=bool).reshape(2**m, m)

    def chunk(self, owners: np.ndarray) -> "OwnerChunk":
        """What the prior and the surrogate need about these owners' other terms, pair by pair."""
        hit = self.top[None, :, :] == owners[:, None, None]  # (c, m+1, T): is owner i itself a top term?
        drop = np.where(hit.any(axis=1), hit.argmax(axis=1), self.m)  # the slot to skip
        slots = np.arange(self.m)[None, :, None]
        source = slots + (slots >= drop[:, None, :])
        index = np.take_along_axis(np.broadcast_to(self.top, (len(owners),) + self.top.shape), source, axis=1)
        values = self.numer[index, np.arange(self.T)]
        own = self.numer[owners]
        pool = self.n - 1 - self.m
        rest_mean = (self.total - own - values.sum(axis=1)) / max(pool, 1)
        rest_sq = (self.total_sq - own**2 - (values**2).sum(axis=1)) / max(pool, 1)
        rest_cube = (self.total_cube - own**3 - (values**3).sum(axis=1)) / max(pool, 1)
        skew = rest_cube - 3.0 * rest_mean * rest_sq + 2.0 * rest_mean**3  # third central moment
        # The spread and skew only feed the kernels: their precision (the mean stays float64, X − μ needs it).
        spread = np.clip(rest_sq - rest_mean**2, 0.0, None).astype(self.dtype)
        return OwnerChunk(owners, index, values, own, rest_mean, spread, skew.astype(self.dtype))

    def small_moments(self, chunk: "OwnerChunk", r) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of the sum of a uniform r-subset of the small terms (finite population)."""
        pool = self.n - 1 - self.m
        r = np.asarray(r, np.float64)
        mean = r * chunk.rest_mean
        if pool <= 1:
            return mean, np.zeros_like(mean)
        # The factor first: r is often one number per owner, the spread one per owner and pair.
        factor = np.clip(r * (pool - r) / (pool - 1), 0.0, None).astype(chunk.rest_spread.dtype)
        return mean, np.sqrt(factor * chunk.rest_spread)

    def small_third(self, chunk: "OwnerChunk", r) -> np.ndarray:
        """E[(X − μ_r)³] of that sum: r(N−r)(N−2r)/((N−1)(N−2))·μ₃ without replacement (N = pool)."""
        pool = self.n - 1 - self.m
        if pool <= 2:
            return np.zeros(np.broadcast_shapes(np.shape(r), chunk.rest_skew.shape))
        r = np.asarray(r, np.float64)
        factor = r * (pool - r) * (pool - 2 * r) / ((pool - 1) * (pool - 2))
        return factor.astype(chunk.rest_skew.dtype) * chunk.rest_skew

    def divisors(self, chunk: "OwnerChunk", k) -> tuple[np.ndarray, np.ndarray]:
        """Expected Σ_{j∈P} n_j without and with owner i for sizes k (shape (..., c, 1)); ones when
        the game is undivided."""
        k = np.asarray(k, np.float64)
        if not self.divided:
            return np.ones(k.shape), np.ones(k.shape)
        own = self.sizes[chunk.owners].reshape(-1, 1)
        without = k * (self.sizes.sum() - own) / (self.n - 1)
        return without, without + own

    def gain(self, chunk: "OwnerChunk", big_sum, mean, sd, k, *, order: int = 0):
        """H, the expected change of g when owner i joins with the small terms' sum normal, and its
        first `order` derivatives in μ (a tuple when order > 0). Arrays broadcast over leading axes;
        k has the owners' axis shape."""
        kw = dict(utility=self.name, beta=self.beta, dtype=self.dtype)
        z_out = big_sum + mean
        z_in = z_out + chunk.own
        if not self.divided:
            if not order:
                return smoothed_utility(z_in, sd, **kw) - smoothed_utility(z_out, sd, **kw)
            inside, outside = smoothed_derivatives(z_in, sd, **kw), smoothed_derivatives(z_out, sd, **kw)
            return tuple(a - b for a, b in zip(inside[: order + 1], outside[: order + 1]))
        without, with_i = self.divisors(chunk, k)
        zero = np.zeros(np.broadcast_shapes(np.shape(mean), np.shape(without)))
        z_out = np.divide(z_out, without, out=zero.copy(), where=without > 0)  # ∅: margin 0, not 0/0
        s_out = np.divide(sd, without, out=zero.copy(), where=without > 0)
        z_in, s_in = z_in / with_i, sd / with_i
        if not order:
            return smoothed_utility(z_in, s_in, **kw) - smoothed_utility(z_out, s_out, **kw)
        inside, outside = smoothed_derivatives(z_in, s_in, **kw), smoothed_derivatives(z_out, s_out, **kw)
        per_out = np.divide(1.0, without, out=zero.copy(), where=without > 0)  # d/dμ G(μ/w) = G'(μ/w)/w
        return tuple(a / with_i**p - b * per_out**p
                     for p, (a, b) in enumerate(zip(inside[: order + 1], outside[: order + 1])))

    def prior(self, chunk: "OwnerChunk", sizes: np.ndarray, *, entries: int = 1 << 20) -> np.ndarray:
        """A_i(k) for the chunk's owners at each size k, shape (len(sizes), c) (module doc); sizes
        are taken in blocks of ≈ `entries` (size × owner × pair) values."""
        sizes = np.asarray(sizes, dtype=np.int64)
        block = max(1, entries // chunk.values[:, 0].size) if self.m else max(1, entries // chunk.own.size)
        return np.concatenate([self._prior_block(chunk, sizes[i : i + block])
                               for i in range(0, len(sizes), block)])

    def _prior_block(self, chunk: "OwnerChunk", sizes: np.ndarray) -> np.ndarray:
        pool, others = self.n - 1 - self.m, self.n - 1
        out = np.zeros((len(sizes), len(chunk.owners)))
        for pattern in self.patterns:
            r = sizes - int(pattern.sum())
            fits = (r >= 0) & (r <= pool)
            if not fits.any():
                continue
            k, r = sizes[fits], r[fits]
            weight = np.exp(_log_comb(pool, r) - _log_comb(others, k))
            big_sum = (chunk.values * pattern[None, :, None]).sum(axis=1)
            mean, sd = self.small_moments(chunk, r[:, None, None])
            h = self.gain(chunk, big_sum, mean, sd, k[:, None, None] * np.ones((1, len(chunk.owners), 1)))
            out[fits] += weight[:, None] * h.mean(axis=2)
        return out

    def surrogate(self, chunk: "OwnerChunk", rank: np.ndarray, prefix_numer: np.ndarray) -> np.ndarray:
        """The control variate's parts for the chunk's owners along one order (rank[j] = j's position,
        P = j ranked before i), shape (c, 4): pair means of H(a_P, r_P) and of the three mean-zero
        Taylor terms H′·(X−μ), H″/2·((X−μ)² − s²) and H‴/6·((X−μ)³ − κ₃) (module doc)."""
        positions = rank[chunk.owners]
        if self.m:
            held = rank[chunk.index] < positions[:, None, None]  # the big terms P holds, (c, m, T)
            big_sum = (chunk.values * held).sum(axis=1)
            r = positions[:, None] - held.sum(axis=1)
        else:  # no big terms: P's sum is all small, r is the position
            big_sum, r = 0.0, positions[:, None]
        mean, sd = self.small_moments(chunk, r)
        z = big_sum + mean
        dev = prefix_numer[positions] - z  # X_P − μ, in float64 before the kernels' precision
        if not self.divided:
            return smoothed_gain_terms(z, chunk.own, sd, dev, self.small_third(chunk, r),
                                       utility=self.name, beta=self.beta, dtype=self.dtype)
        return taylor_parts(self.gain(chunk, big_sum, mean, sd, positions.reshape(-1, 1), order=3),
                            dev, sd, self.small_third(chunk, r))


@dataclass(frozen=True, eq=False)
class OwnerChunk:
    """Per owner (rows) and pair (columns): the big other terms and the small ones' mean and spread."""

    owners: np.ndarray  # (c,) owner indices
    index: np.ndarray  # (c, m, T) which owners are the big terms
    values: np.ndarray  # (c, m, T) their numerators
    own: np.ndarray  # (c, T) the owner's own numerator d_i
    rest_mean: np.ndarray  # (c, T) mean of the small terms
    rest_spread: np.ndarray  # (c, T) population variance of the small terms
    rest_skew: np.ndarray  # (c, T) their population third central moment


def _positions_in(order: np.ndarray) -> np.ndarray:
    """rank[j] = owner j's position in `order`."""
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _log_comb(a, b) -> np.ndarray:
    return gammaln(np.add(a, 1)) - gammaln(np.add(b, 1)) - gammaln(np.subtract(a, b) + 1)


class StructuredSampler:
    """Prior + control-variate permutation sampling (the Sampler protocol of `sampling`)."""

    def __init__(self, utility, n: int, *, seed: int, config: StructuredConfig = StructuredConfig()) -> None:
        self.n, self.config = n, config
        self.all_positions = config.uses_all_positions(n, utility.utility)
        T = utility.scores.shape[1]
        # The normal prior (`ArithmeticGame`) serves the single-position estimator and, with every other
        # owner exact, gives the Shapley value outright; with every position, the lattice twin or, above
        # `twin_owners`, nothing.
        m = config.big_for(n, T, utility.utility)
        # Every other owner exact on every pair and every size summed: the prior is the Shapley value.
        self.exhausted = m == n - 1 and n <= config.full_sizes
        divided = utility.composition == "mean" and utility.utility == "bt_loglik"
        self.twin = config.uses_twin(n, utility.utility, divided=divided) and not self.exhausted
        self.with_prior = not (self.all_positions or self.twin) or self.exhausted
        self.game = ArithmeticGame(utility, m if self.with_prior else 0)
        self.min_batch = 2 * max(n - 1, 1)  # one antithetic pair of orders
        self.moments = Moments(n, comoment=n <= CORRELATION_LIMIT)
        self.prior_seed = seed
        self._chunks: list[OwnerChunk] | None = None
        # Normal equations of the control variate's coefficients over the orders seen so far (module doc).
        # The twin's difference needs none: its coefficient is 1.
        location = self.all_positions and not self.with_prior and not self.twin
        if self.twin:
            self.defaults = np.zeros(0)
        else:
            self.defaults = POSITION_COEFFICIENTS if location else DEFAULT_COEFFICIENTS
        terms = len(self.defaults)
        self._gram, self._cross = np.zeros((terms, terms)), np.zeros(terms)
        self.coefficients = self.defaults.copy()
        self.ridge_orders = POSITION_RIDGE_ORDERS if location else RIDGE_ORDERS

    def owner_chunks(self):
        """The game's owners in blocks, with their per-pair statistics (computed once, reused)."""
        if self._chunks is None:
            size = max(1, self.config.chunk_entries // (self.game.T * (self.game.m + 4)))
            self._chunks = [self.game.chunk(np.arange(start, min(self.n, start + size)))
                            for start in range(0, self.n, size)]
        return self._chunks

    def start(self, evaluate: Evaluator) -> None:
        self.empty, self.full = anchors(evaluate, self.n)
        if self.with_prior:
            self.prior_values, self.prior_variance = self._prior_mean()
        elif self.twin:
            self.prior_values, self.prior_variance = self._twin(), np.zeros(self.n)
        else:
            self.prior_values, self.prior_variance = np.zeros(self.n), np.zeros(self.n)
            self._location_weights = self._slopes()
        if self.all_positions:
            self._numer_t = np.ascontiguousarray(self.game.numer.T)

    def _twin(self) -> np.ndarray:
        """The lattice twin (`lattice`): its exact Shapley values, and what sampling needs of it."""
        numer, name = self.game.numer, self.game.name
        steps = lattice_steps(numer, self.config.resolution_for(self.n, self.game.T, name))
        lattice = lattice_terms(numer, steps)
        if name == "preference_accuracy":
            self._lattice_t = lattice.astype(np.float64)  # integer sums: the counting loop's margins are exact
            return lattice_shapley(lattice)
        # The twin as a score utility: its chain gives the twin's marginals along a sampled order.
        self._twin_utility = coalition_utility_fn(lattice.T * steps, utility=name, composition="sum",
                                                  beta=self.game.beta)
        return loglik_lattice_shapley(lattice, steps, self.game.beta)

    def _slopes(self) -> np.ndarray:
        """(2, T, n): G″ and G‴ of the normal approximation of a size-k coalition's margin on each
        pair (mean k·x̄, finite-population sd over all owners), the weights of `positions.location_terms`.
        Any weights keep the estimate unbiased; these make the terms the slope of E[Δ_i(Q_k)]."""
        numer, n = self.game.numer, self.n
        mean, spread = numer.mean(axis=0), numer.var(axis=0)
        k = np.arange(n, dtype=np.float64)[:, None]
        factor = np.clip(k * (n - 1 - k) / max(n - 2, 1), 0.0, None)
        _, _, second, third = smoothed_derivatives(k * mean, np.sqrt(factor * spread), utility=self.game.name,
                                                   beta=self.game.beta, dtype=np.float64)
        return np.ascontiguousarray(np.stack([second.T, third.T]))

    def _prior_mean(self) -> tuple[np.ndarray, np.ndarray]:
        """Ā_i = (1/n) Σ_k A_i(k): every size up to `full_sizes` owners; above, the trapezoid rule on
        the nodes `config.prior_nodes(n, utility)` plus, on each interval between two nodes, the sum of
        what A differs from the straight line there, estimated from two uniform sizes inside it
        (unbiased: the line's sum is exact, the draws' mean is unbiased for the rest; two draws give its
        variance). A_i(k) bends most at small k, so the nodes are spaced quadratically. On the
        1,000-owner bench game, 16 intervals (50 sizes) leave 1/57 (log-likelihood) and 1/27 (accuracy)
        of the standard error of the earlier design, two random sizes in each of 16 equal strata (33
        sizes); accuracy's 32 intervals leave 1/73 (bench/prior_quadrature.py)."""
        n = self.n
        total, variance = np.zeros(n), np.zeros(n)
        if n <= self.config.full_sizes:
            for chunk in self.owner_chunks():
                total[chunk.owners] = self.game.prior(chunk, np.arange(n), entries=self.config.chunk_entries).sum(axis=0)
            return total / n, variance
        nodes = self.config.prior_nodes(n, self.game.name)
        left, right = nodes[:-1], nodes[1:]
        inner = right - left - 1  # sizes strictly between two nodes
        gaps = np.flatnonzero(inner > 0)
        rng = np.random.default_rng([self.prior_seed, 0xA11])
        draws = np.array([rng.integers(left[j] + 1, right[j], size=2) for j in gaps], dtype=np.int64).reshape(len(gaps), 2)
        for chunk in self.owner_chunks():
            at = self.game.prior(chunk, np.concatenate([[0], nodes, draws.ravel()]), entries=self.config.chunk_entries)
            on_nodes, drawn = at[1 : 1 + len(nodes)], at[1 + len(nodes) :].reshape(len(gaps), 2, len(chunk.owners))
            # The line through the interval's nodes at the drawn sizes, (gaps, 2, c).
            share = ((draws - left[gaps, None]) / (right[gaps] - left[gaps])[:, None])[:, :, None]
            line = (1.0 - share) * on_nodes[gaps][:, None, :] + share * on_nodes[gaps + 1][:, None, :]
            bend = (drawn - line) * inner[gaps][:, None, None]  # each draw × the interval's sizes
            trapezoid = on_nodes.sum(axis=0) + (0.5 * inner[:, None] * (on_nodes[:-1] + on_nodes[1:])).sum(axis=0)
            total[chunk.owners] = at[0] + trapezoid + bend.mean(axis=1).sum(axis=0)
            variance[chunk.owners] = ((0.5 * (bend[:, 0] - bend[:, 1])) ** 2).sum(axis=0)
        return total / n, variance / n**2

    def step(self, evaluate: Evaluator, evaluations: int, rng: np.random.Generator) -> None:
        if self.exhausted:
            return  # the prior is already exact
        for _ in range(evaluations // self.min_batch):
            order = rng.permutation(self.n)
            if self.all_positions:
                parts = self._position_parts(evaluate, order)
            else:
                parts = [self._parts(evaluate, order), self._parts(evaluate, order[::-1])]
            # The coefficients come from earlier orders only, so each residual keeps its exact mean.
            residual = sum(gap - terms @ self.coefficients for gap, terms in parts) / 2
            self.moments.add(residual[None, :])
            for gap, terms in parts:
                self._gram += terms.T @ terms
                self._cross += terms.T @ gap
            self.coefficients = self._fit()

    def _parts(self, evaluate: Evaluator, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Along one order: Δ_i(P) − H_i(P) for every owner, shape (n,), and the Taylor terms, (n, 3);
        with the twin, Δ_i(P) minus the twin's, and no terms."""
        evaluate.charge(self.n - 1)  # the interior prefixes; ∅ and N are the anchors
        prefix_numer, values = self.game.utility.chain(order)
        values[0], values[-1] = self.empty, self.full
        rank = _positions_in(order)
        marginals = values[rank + 1] - values[rank]
        if self.twin:
            _, twin = self._twin_utility.chain(order)
            return marginals - (twin[rank + 1] - twin[rank]), np.zeros((self.n, 0))
        parts = np.empty((self.n, 1 + TERMS))
        for chunk in self.owner_chunks():
            parts[chunk.owners] = self.game.surrogate(chunk, rank, prefix_numer)
        return marginals - parts[:, 0], parts[:, 1:]

    def _position_parts(self, evaluate: Evaluator, order: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Along an order and its reverse: the mean marginal over every insertion position, shape (n,),
        and the three location terms, (n, 3) (`positions`); with the twin, that mean minus the twin's at
        the same positions, and no terms. The prefix margins are the chain's, so each order costs the
        chain's n − 1 evaluations; the other coalitions' per-pair signs (and the twin's) are counted
        from them."""
        evaluate.charge(2 * (self.n - 1))
        marginals = position_marginals(self._numer_t, order, antithetic=True)
        if self.twin:
            twin = position_marginals(self._lattice_t, order, antithetic=True)
            return [(mean - mean_twin, np.zeros((self.n, 0))) for mean, mean_twin in zip(marginals, twin)]
        return [(mean, location_terms(self._numer_t, along, self._location_weights))
                for mean, along in zip(marginals, (order, order[::-1]))]

    def _fit(self) -> np.ndarray:
        """Least-squares coefficients of the Taylor terms, pulled towards the defaults by a ridge of
        `ridge_orders` orders' worth of their scale (so a few orders cannot swing them)."""
        scale = np.diag(self._gram).copy()
        if not scale.size or not np.all(scale > 0):
            return self.defaults.copy()
        ridge = np.diag(scale) * (self.ridge_orders / max(self.moments.count * 2, 1))
        try:
            return np.linalg.solve(self._gram + ridge, self._cross + ridge @ self.defaults)
        except np.linalg.LinAlgError:
            return self.defaults.copy()

    def estimate(self) -> Estimate:
        count = self.moments.count
        if self.exhausted:
            self.raw = self.prior_values
            return Estimate(self.prior_values.copy(), np.zeros(self.n), float("inf"), True)
        if count < 2:
            return Estimate(self.prior_values.copy(), np.full(self.n, np.inf), 1.0, False)
        raw = self.prior_values + self.moments.mean
        # The twin's correction is mostly 0 with rare jumps (where rounding moved a sum across 0): from a
        # few orders an owner's sample variance is often exactly 0. It is pooled with the owners' mean
        # variance, worth TWIN_POOLED_PAIRS antithetic pairs (without it, at 5·n evaluations 95% intervals
        # covered 66% of the 16-owner demo game's values, 27% with no width at all; 30 seeds, exploratory).
        pooled = TWIN_POOLED_PAIRS if self.twin else 0
        shrink = pooled * (self.moments.m2 / (count - 1)).mean()
        divisor = count * (count - 1 + pooled)
        variance = np.clip((self.moments.m2 + shrink) / divisor + self.prior_variance, 0.0, None)
        weights = variance / variance.sum() if variance.sum() > 0 else np.full(self.n, 1.0 / self.n)
        values = raw + weights * ((self.full - self.empty) - raw.sum())
        correlation = None
        if self.moments.comoment is not None:  # small n: the projected covariance, correlations included
            projection = np.eye(self.n) - np.outer(weights, np.ones(self.n))
            covariance = (self.moments.comoment + shrink * np.eye(self.n)) / divisor + np.diag(self.prior_variance)
            covariance = projection @ covariance @ projection.T
            stderr = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
            correlation = correlation_from_covariance(covariance)
        else:  # Var(φ̃_i) = σ_i²(1 − w_i)² + w_i²·Σ_{j≠i} σ_j² for independent errors
            stderr = np.sqrt(variance * (1 - weights) ** 2 + weights**2 * (variance.sum() - variance))
        self.raw = raw
        return Estimate(values, stderr, count - 1, count >= MIN_PAIRS, correlation)
