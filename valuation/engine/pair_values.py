"""Pair-level data values by TS-DShapley (Schoch, Mishra & Ji 2023, "Data Selection for
Fine-tuning Large Language Models Using Transferred Shapley Values").

Data Shapley over N pairs costs far too many fits, so TS-DShapley samples K *chains*:
random subsets C_1..C_K of s pairs each. Inside a chain, truncated Monte-Carlo permutation
Shapley (TMC-Shapley, Ghorbani & Zou 2019) with the cheap utility v of pair_classifier.py:
for a random order π of C,

    marginal of π_j  = u_j − u_{j−1},   u_j = v(π_1..π_j),  u_0 = v(∅) = ½,

and once `patience` consecutive prefixes are within `tolerance` of v(C), the utility is
taken as converged: u_j := v(C) from there on, so every later pair gets 0. So a pair's
marginals along any permutation add up to v(C) − v(∅) exactly (efficiency inside the
chain), truncated or not. A pair's value in a chain is the mean of its marginals over the
chain's permutations; its value is the mean over the chains it appears in, with the
standard error across those chains.

Chains are drawn so every pair is covered: each *pass* shuffles the N pairs and cuts the
shuffle into ⌈N/s⌉ chains (the last one topped up with other pairs), so K ≥ ⌈N/s⌉ chains
cover everyone and `coverage` passes put each pair in ≥ `coverage` chains. The seed is
recorded on the result: the same seed and inputs give the same values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .pair_classifier import ClassifierConfig, evaluate, fit

ProgressFn = Callable[[int, int], None]
PREFIX_BLOCK = 16  # prefixes fitted per batched Newton solve: big enough to amortise numpy, small to truncate early


@dataclass(frozen=True)
class PairValueConfig:
    chain_size: int = 64  # s: small enough that one pair moves a classifier visibly, large enough to learn from
    chains: int = 0  # K; 0 = `coverage` passes, ⌈N/s⌉ chains each (a K below ⌈N/s⌉ would leave pairs unvalued)
    coverage: int = 6  # chains per pair when chains = 0: the standard error is across these
    permutations: int = 16  # TMC orders per chain: the chain's marginals average over them
    tolerance: float = 0.01  # truncate when |v(C) − v(prefix)| ≤ this (≈ 2 eval pairs of 200 in accuracy)
    patience: int = 3  # ...for this many prefixes in a row: one lucky prefix must not zero the rest
    seed: int | None = None  # None = drawn and recorded on the result
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self) -> None:
        for name in ("chain_size", "coverage", "permutations", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.chains < 0:
            raise ValueError(f"chains must be >= 0 (0 = automatic), got {self.chains}")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")


@dataclass(frozen=True)
class PairValueResult:
    values: np.ndarray  # (N,) mean over the chains containing the pair
    stderr: np.ndarray  # (N,) standard error across those chains (within-chain when in one chain only)
    n_chains: np.ndarray  # (N,) chains each pair appeared in
    chains: list  # K index arrays
    chain_gains: np.ndarray  # (K,) v(C_k) − v(∅)
    seed: int
    n_fits: int  # classifier fits, truncation included: the cost
    seconds: float


def draw_chains(n: int, config: PairValueConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """K chains of min(s, N) distinct pairs; every pair is in one when K ≥ ⌈N/s⌉."""
    if n < 1:
        raise ValueError("no pairs to value")
    s = min(config.chain_size, n)
    per_pass = math.ceil(n / s)
    k = config.chains or config.coverage * per_pass
    if k < per_pass:
        raise ValueError(f"{k} chains of {s} pairs cannot cover {n} pairs; use chains >= {per_pass} (or 0 = automatic)")
    chains: list[np.ndarray] = []
    while len(chains) < k:
        order = rng.permutation(n)
        for start in range(0, n, s):
            chain = order[start : start + s]
            if len(chain) < s:  # top up the last chain with distinct pairs of this pass
                others = np.setdiff1d(order, chain, assume_unique=True)
                chain = np.concatenate([chain, rng.choice(others, size=s - len(chain), replace=False)])
            chains.append(chain)
            if len(chains) == k:
                break
    return chains


def permutation_marginals(x: np.ndarray, x_eval: np.ndarray, order: np.ndarray, v_full: float, v_empty: float,
                          config: PairValueConfig) -> tuple[np.ndarray, int]:
    """Marginals of order[0], order[1], ... (they sum to v_full − v_empty) and the number of fits made."""
    s = len(order)
    u = np.full(s + 1, v_full)
    u[0] = v_empty
    xs, run, fits = x[order], 0, 0
    for start in range(0, s - 1, PREFIX_BLOCK):  # the whole chain (prefix s) is v_full already
        sizes = np.arange(start + 1, min(start + PREFIX_BLOCK, s - 1) + 1)
        values = evaluate(fit(xs, np.arange(s)[None, :] < sizes[:, None], config.classifier), x_eval,
                          config.classifier.utility)
        fits += len(sizes)
        for j, value in zip(sizes, values):
            u[j] = value
            run = run + 1 if abs(v_full - value) <= config.tolerance else 0
            if run >= config.patience:
                u[j:] = v_full  # converged: the rest of the order adds nothing
                return np.diff(u), fits
    return np.diff(u), fits


def chain_values(x: np.ndarray, x_eval: np.ndarray, chain: np.ndarray, config: PairValueConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(mean marginal per chain member, (P × s) marginals, v(C) − v(∅), fits) for one chain."""
    members = np.ones((1, len(chain)), dtype=bool)
    v_full = float(evaluate(fit(x[chain], members, config.classifier), x_eval, config.classifier.utility)[0])
    v_empty = float(evaluate(np.zeros((1, x.shape[1])), x_eval, config.classifier.utility)[0])
    marginals = np.zeros((config.permutations, len(chain)))
    fits = 1
    for p in range(config.permutations):
        order = rng.permutation(len(chain))
        m, used = permutation_marginals(x[chain], x_eval, order, v_full, v_empty, config)
        marginals[p, order] = m
        fits += used
    return marginals.mean(axis=0), marginals, v_full - v_empty, fits


def pair_values(x: np.ndarray, x_eval: np.ndarray, config: PairValueConfig = PairValueConfig(), *,
                on_progress: ProgressFn | None = None) -> PairValueResult:
    """TS-DShapley values of the N pairs with features x (N × d), utility measured on x_eval (T × d)."""
    x, x_eval = np.asarray(x, dtype=np.float64), np.asarray(x_eval, dtype=np.float64)
    if x_eval.ndim != 2 or x_eval.shape[0] == 0 or x_eval.shape[1] != x.shape[1]:
        raise ValueError(f"eval features must have shape (T > 0, {x.shape[1]}), got {x_eval.shape}")
    started = time.perf_counter()
    seed = int(np.random.SeedSequence().entropy % (2**32)) if config.seed is None else int(config.seed)
    rng = np.random.default_rng(seed)
    chains = draw_chains(x.shape[0], config, rng)
    sums, squares = np.zeros(x.shape[0]), np.zeros(x.shape[0])
    counts = np.zeros(x.shape[0], dtype=np.int64)
    within = np.zeros(x.shape[0])  # within-chain variance of the mean, for pairs in a single chain
    gains, n_fits = np.zeros(len(chains)), 0
    for k, chain in enumerate(chains):
        values, marginals, gains[k], fits = chain_values(x, x_eval, chain, config, rng)
        n_fits += fits
        sums[chain] += values
        squares[chain] += values**2
        counts[chain] += 1
        within[chain] = marginals.var(axis=0, ddof=1) / len(marginals) if len(marginals) > 1 else 0.0
        if on_progress:
            on_progress(k + 1, len(chains))
    means = sums / np.maximum(counts, 1)
    stderr = np.sqrt(within)
    many = counts > 1
    spread = (squares[many] - counts[many] * means[many] ** 2) / (counts[many] - 1)
    stderr[many] = np.sqrt(np.maximum(spread, 0.0) / counts[many])
    return PairValueResult(values=means, stderr=stderr, n_chains=counts, chains=chains, chain_gains=gains, seed=seed,
                           n_fits=n_fits, seconds=time.perf_counter() - started)
