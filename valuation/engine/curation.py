"""Shapley-guided dataset curation by SHED (He et al. 2024, "SHED: Shapley-Based Automated
Dataset Refinement for Instruction Fine-Tuning").

1. k-means (k-means++ seeding, Lloyd iterations, best of a few restarts) on the pair
   features z = f(x, y_w) − f(x, y_l);
2. the pair nearest each centroid is its cluster's *proxy*;
3. Shapley values of the k proxies under the same cheap utility as the pair values
   (pair_classifier.py), by TMC permutation sampling over the proxies (pair_values.py:
   one chain holding all of them), with standard errors over the permutations;
4. a curated subset of a target size:
   * QOCS (quality-ordered cluster sampling): whole clusters in descending proxy value;
     the last cluster that does not fit whole gives a random part of itself;
   * QWCS (quality-weighted cluster sampling): repeatedly pick a cluster with probability
     ∝ exp(ẑ_c / τ), ẑ_c the cluster's value standardised over the clusters, and take one
     random pair from it (a cluster leaves the draw once empty). τ → 0 is greedy (QOCS's
     cluster order), τ → ∞ uniform over clusters. Standardising makes τ scale-free: τ = 1
     means a cluster one standard deviation better is e times as likely.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .pair_values import PairValueConfig, chain_values

METHODS = ("qocs", "qwcs")


@dataclass(frozen=True)
class CurationConfig:
    clusters: int = 0  # k; 0 = ⌈√N⌉ capped at `max_clusters`: ~√N pairs per cluster, the usual k-means rule of thumb
    max_clusters: int = 100  # SHED's proxies are Shapley players: beyond ~100 the proxy values get noisy
    kmeans_restarts: int = 4  # k-means++ starts; the lowest-inertia clustering is kept
    kmeans_iterations: int = 100  # Lloyd steps per start (stops earlier when no label changes)
    proxy_permutations: int = 200  # TMC orders over the proxies: k is small, so many orders are cheap
    tau: float = 1.0  # QWCS temperature, in standard deviations of the cluster values
    seed: int | None = None  # None = drawn and recorded on the result

    def __post_init__(self) -> None:
        for name in ("max_clusters", "kmeans_restarts", "kmeans_iterations", "proxy_permutations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.clusters < 0:
            raise ValueError(f"clusters must be >= 0 (0 = automatic), got {self.clusters}")
        check_tau(self.tau)


@dataclass(frozen=True)
class ClusterResult:
    labels: np.ndarray  # (N,) cluster of each pair
    centroids: np.ndarray  # (k, d)
    proxies: np.ndarray  # (k,) index of the pair nearest each centroid
    values: np.ndarray  # (k,) Shapley value of each cluster's proxy
    stderr: np.ndarray  # (k,) over the proxy permutations
    sizes: np.ndarray  # (k,) pairs per cluster
    gain: float  # v(all proxies) − v(∅): the values add up to it
    seed: int
    seconds: float


def check_tau(tau: float) -> float:
    if not (isinstance(tau, (int, float)) and tau > 0):
        raise ValueError(f"tau must be a positive number (inf = uniform over clusters), got {tau!r}")
    return float(tau)


def n_clusters(n: int, config: CurationConfig) -> int:
    k = config.clusters or min(config.max_clusters, math.ceil(math.sqrt(n)))
    if k > n:
        raise ValueError(f"{k} clusters for {n} pairs: use at most {n}")
    return max(1, k)


def squared_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(n × k) squared Euclidean distances without an (n × k × d) temporary."""
    d = (x**2).sum(axis=1)[:, None] - 2.0 * x @ c.T + (c**2).sum(axis=1)[None, :]
    return np.maximum(d, 0.0)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centers = [int(rng.integers(len(x)))]
    closest = squared_distances(x, x[centers])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        pick = int(rng.choice(len(x), p=closest / total)) if total > 0 else int(rng.integers(len(x)))
        centers.append(pick)
        closest = np.minimum(closest, squared_distances(x, x[[pick]])[:, 0])
    return x[centers].copy()


def _lloyd(x: np.ndarray, centroids: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray, float]:
    labels = np.full(len(x), -1)
    for _ in range(iterations):
        distances = squared_distances(x, centroids)
        new = distances.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for c in range(len(centroids)):
            members = labels == c
            if members.any():
                centroids[c] = x[members].mean(axis=0)
            else:  # an empty cluster restarts at the pair worst served by its centroid
                far = int(distances[np.arange(len(x)), labels].argmax())
                centroids[c], labels[far] = x[far], c
    inertia = float(squared_distances(x, centroids)[np.arange(len(x)), labels].sum())
    return labels, centroids, inertia


def kmeans(x: np.ndarray, k: int, *, rng: np.random.Generator, restarts: int = 4,
           iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(labels, centroids) of the lowest-inertia of ``restarts`` k-means++ runs."""
    x = np.asarray(x, dtype=np.float64)
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be in 1..{len(x)}, got {k}")
    best = None
    for _ in range(restarts):
        labels, centroids, inertia = _lloyd(x, _kmeans_pp(x, k, rng), iterations)
        if best is None or inertia < best[2]:
            best = (labels, centroids, inertia)
    return best[0], best[1]


def nearest_to_centroids(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the member nearest each centroid (its proxy)."""
    distances = squared_distances(np.asarray(x, dtype=np.float64), centroids)
    proxies = np.empty(len(centroids), dtype=np.int64)
    for c in range(len(centroids)):
        members = np.flatnonzero(labels == c)
        proxies[c] = members[distances[members, c].argmin()]
    return proxies


def cluster_values(x: np.ndarray, x_eval: np.ndarray, config: CurationConfig = CurationConfig(), *,
                   utility: PairValueConfig = PairValueConfig()) -> ClusterResult:
    """Cluster the pairs and value each cluster by its proxy's Shapley value (SHED steps 1–3).

    ``utility`` gives the classifier, truncation tolerance and patience: the pair values' own.
    """
    started = time.perf_counter()
    x = np.asarray(x, dtype=np.float64)
    seed = int(np.random.SeedSequence().entropy % (2**32)) if config.seed is None else int(config.seed)
    rng = np.random.default_rng(seed)
    labels, centroids = kmeans(x, n_clusters(len(x), config), rng=rng, restarts=config.kmeans_restarts,
                               iterations=config.kmeans_iterations)
    proxies = nearest_to_centroids(x, labels, centroids)
    tmc = PairValueConfig(permutations=config.proxy_permutations, tolerance=utility.tolerance,
                          patience=utility.patience, classifier=utility.classifier)
    values, marginals, gain, _ = chain_values(x, x_eval, proxies, tmc, rng)
    stderr = marginals.std(axis=0, ddof=1) / math.sqrt(len(marginals)) if len(marginals) > 1 else np.zeros(len(proxies))
    return ClusterResult(labels=labels, centroids=centroids, proxies=proxies, values=values, stderr=stderr,
                         sizes=np.bincount(labels, minlength=len(centroids)), gain=float(gain), seed=seed,
                         seconds=time.perf_counter() - started)


def _check_size(size: int, n: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= n:
        raise ValueError(f"the curated size must be a whole number of pairs in 1..{n}, got {size!r}")
    return int(size)


def qocs(labels: np.ndarray, values: np.ndarray, size: int, *, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` pairs: whole clusters in descending value (ties: lower cluster index first)."""
    labels = np.asarray(labels)
    size = _check_size(size, len(labels))
    chosen: list[np.ndarray] = []
    left = size
    for c in sorted(range(len(values)), key=lambda c: (-values[c], c)):
        members = np.flatnonzero(labels == c)
        if len(members) >= left:
            chosen.append(rng.choice(members, size=left, replace=False) if len(members) > left else members)
            break
        chosen.append(members)
        left -= len(members)
    return np.sort(np.concatenate(chosen))


def _logits(values: np.ndarray, tau: float) -> np.ndarray:
    """ẑ / τ, ẑ the values standardised over the clusters (all equal: all zero)."""
    tau = check_tau(tau)
    v = np.asarray(values, dtype=np.float64)
    spread = v.std()
    z = (v - v.mean()) / spread if spread > 0 else np.zeros_like(v)
    return z / tau


def _softmax(logits: np.ndarray) -> np.ndarray:
    weights = np.exp(logits - logits.max())  # the best cluster has weight 1: never an all-zero draw
    return weights / weights.sum()


def cluster_probabilities(values: np.ndarray, tau: float) -> np.ndarray:
    """QWCS's draw while every cluster is open: softmax(ẑ / τ) over the clusters."""
    return _softmax(_logits(values, tau))


def qwcs(labels: np.ndarray, values: np.ndarray, size: int, *, tau: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` pairs: draw an open cluster ∝ exp(ẑ/τ), take one random pair of it; repeat."""
    labels = np.asarray(labels)
    size = _check_size(size, len(labels))
    logits = _logits(values, tau)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in range(len(values))]
    open_ = np.flatnonzero([len(p) > 0 for p in pools])
    chosen = []
    while len(chosen) < size:
        # Renormalised over the clusters that still have pairs, from the logits: at τ → 0 this stays greedy
        # (an exhausted best cluster hands over to the next best), never an underflowed all-zero draw.
        c = int(open_[rng.choice(len(open_), p=_softmax(logits[open_]))])
        chosen.append(pools[c].pop())
        if not pools[c]:
            open_ = open_[open_ != c]
    return np.sort(np.asarray(chosen, dtype=np.int64))


def curate(labels: np.ndarray, values: np.ndarray, size: int, *, method: str, tau: float = 1.0,
           seed: int = 0) -> np.ndarray:
    """The curated subset (sorted pair indices) by QOCS or QWCS; same inputs and seed, same subset."""
    rng = np.random.default_rng(seed)
    if method == "qocs":
        return qocs(labels, values, size, rng=rng)
    if method == "qwcs":
        return qwcs(labels, values, size, tau=tau, rng=rng)
    raise ValueError(f"unknown curation method {method!r}; valid are {', '.join(METHODS)}")
