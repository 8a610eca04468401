"""Coalition utilities v(S) from the cached score matrix (docs/design.md §2, "Utilities").

Both utilities are exact functions of the coalition margins M_S(t) of `arithmetic`
(log Z_S cancels in a pairwise margin), so every coalition is array arithmetic on the
(n × T) score matrix D and no model is touched again:

    preference_accuracy ∈ [0, 1]   v(S) = mean_t( 1[M_S(t) > 0] + ½·1[M_S(t) = 0] )
    bt_loglik           ∈ (−∞, 0]  v(S) = mean_t log σ(β·M_S(t))   (the negative held-out
                                   DPO / Bradley–Terry loss)

The empty coalition is π₀: M = 0 everywhere, so v(∅) = ½ and log ½ respectively.

Two ways in: `coalition_utility_fn` is the set function the sampled estimators call on
a batch of coalitions (k × n booleans → k utilities); `all_coalition_utilities` (also
`ScoreUtility.table`) tabulates v over all 2^n bitmasks (bit i ⇔ owner i ∈ S) with the
tiled kernels of `coalition_tables`.

Measured wall time of one table, T = 1000, n = 20, 2-core AMD EPYC VM, numpy 2.4
(min over repeats; the second core was often busy with other work — see
bench/shapley_speed.py for the current numbers):
    preference_accuracy ≈ 0.3 s;  bt_loglik float64 ≈ 1 s (`sum`) / 1.6 s (`mean`),
    float32 ≈ 0.3 s / 0.8 s.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from numpy.typing import ArrayLike

from valuation.engine.arithmetic import (
    DEFAULT_CHUNK_BYTES,
    check_composition,
    check_members,
    check_scores,
    check_sizes,
    coalition_weights,
)
from valuation.engine.coalition_tables import DEFAULT_TILE_BYTES, PRECISIONS, tabulate

UTILITIES: tuple[str, ...] = ("preference_accuracy", "bt_loglik")
UTILITY_RANGES: dict[str, tuple[float, float]] = {
    "preference_accuracy": (0.0, 1.0),
    "bt_loglik": (-math.inf, 0.0),
}
# 2^24 coalitions is a 128 MB table and minutes of work; beyond that use a sampled estimator.
MAX_EXACT_OWNERS = 24


def check_utility(utility: str) -> str:
    if utility not in UTILITIES:
        raise ValueError(f"unknown utility {utility!r}; valid utilities are {', '.join(UTILITIES)}")
    return utility


def check_beta(beta: float) -> float:
    if not isinstance(beta, (int, float, np.floating, np.integer)) or not (0 < beta < math.inf):
        raise ValueError(f"beta (the DPO temperature) must be a positive finite number, got {beta!r}")
    return float(beta)


def utility_from_margins(margins: ArrayLike, *, utility: str, beta: float) -> np.ndarray:
    """v for each row of a (k, T) margin matrix, shape (k,) — the reference definition."""
    check_utility(utility)
    beta = check_beta(beta)
    M = np.asarray(margins, dtype=np.float64)
    if M.ndim != 2 or M.shape[1] == 0:
        raise ValueError(f"margins must have shape (k, T) with T > 0, got {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError("margins contain NaN or inf")
    if utility == "preference_accuracy":
        # mean(1[M>0] + ½·1[M=0]) = ½ + ½·mean(sign M), ties included exactly.
        return 0.5 + 0.5 * np.sign(M).mean(axis=1)
    # log σ(z), stable for either sign of z; torch's kernel runs on every core, ≈ 4× numpy's
    # logaddexp at a thousand owners (within 2e-15 of it).
    return torch.nn.functional.logsigmoid(torch.from_numpy(beta * M)).mean(dim=1).numpy()


class ScoreUtility:
    """v(S) of one (utility, composition, β) over a cached score matrix, as a set function.

    Calling it maps a (k, n) boolean coalition matrix to k utilities (what the sampled
    estimators batch); `table()` gives all 2^n at once through the fast kernels, which
    `valuation.engine.shapley.estimate_shapley` uses for its exact path.
    """

    def __init__(self, scores: ArrayLike, *, utility: str, composition: str, beta: float,
                 sizes: ArrayLike | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        # Everything is validated now, so a bad round fails before sampling starts.
        self.scores = check_scores(scores)
        self.utility = check_utility(utility)
        self.composition = check_composition(composition)
        self.beta = check_beta(beta)
        self.sizes = check_sizes(sizes, n=self.scores.shape[0], composition=composition)
        self.chunk_bytes = chunk_bytes

    @property
    def n(self) -> int:
        return self.scores.shape[0]

    def __call__(self, members: ArrayLike) -> np.ndarray:
        m = check_members(members, n=self.n)
        out = np.empty(m.shape[0], dtype=np.float64)
        rows = max(1, self.chunk_bytes // (8 * self.scores.shape[1]))
        for start in range(0, m.shape[0], rows):
            w = coalition_weights(m[start : start + rows], sizes=self.sizes,
                                  composition=self.composition)
            out[start : start + rows] = utility_from_margins(
                w @ self.scores, utility=self.utility, beta=self.beta)
        return out

    def chain(self, order: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Every prefix of one arrival order at once: the margin numerators Σ_{j∈P} n_j·D[j]
        (D[j] under `sum`), shape (n + 1, T), and v(P) for P = the first 0..n owners, shape (n + 1,).

        Cumulative sums make this O(n·T) for n + 1 coalitions (the batched call would be O(n²·T));
        the margins can differ from the batched call's in the last bits of rounding.
        """
        order = np.asarray(order, dtype=np.int64)
        if order.shape != (self.n,) or not np.array_equal(np.sort(order), np.arange(self.n)):
            raise ValueError(f"order must be a permutation of 0..{self.n - 1}")
        numer = self.scores[order] if self.sizes is None or self.composition == "sum" \
            else self.scores[order] * self.sizes[order, None]
        prefix = np.zeros((self.n + 1, self.scores.shape[1]))
        torch.cumsum(torch.from_numpy(numer), dim=0, out=torch.from_numpy(prefix[1:]))  # ≈ 2× np.cumsum here
        margins = prefix
        if self.composition == "mean":
            total = np.concatenate([[1.0], np.cumsum(self.sizes[order])])  # ∅'s margin is 0 whatever it is divided by
            margins = prefix / total[:, None]
        return prefix, utility_from_margins(margins, utility=self.utility, beta=self.beta)

    def table(self, *, precision: str = "float64", n_jobs: int | None = None) -> np.ndarray:
        """All 2^n utilities, index = bitmask (see `all_coalition_utilities`)."""
        return all_coalition_utilities(
            self.scores, utility=self.utility, composition=self.composition, beta=self.beta,
            sizes=self.sizes, chunk_bytes=self.chunk_bytes, precision=precision, n_jobs=n_jobs)


def coalition_utility_fn(scores: ArrayLike, *, utility: str, composition: str, beta: float,
                         sizes: ArrayLike | None = None,
                         chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> ScoreUtility:
    """A set function for sampled estimators: (k, n) boolean coalitions -> (k,) utilities."""
    return ScoreUtility(scores, utility=utility, composition=composition, beta=beta, sizes=sizes,
                        chunk_bytes=chunk_bytes)


def all_coalition_utilities(
    scores: ArrayLike,
    *,
    utility: str,
    composition: str,
    beta: float,
    sizes: ArrayLike | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    n_jobs: int | None = None,
    precision: str = "float64",
    tile_bytes: int = DEFAULT_TILE_BYTES,
) -> np.ndarray:
    """v(S) for every bitmask S, shape (2^n,) float64 (index = mask, bit i ⇔ owner i).

    `precision` ("float64" | "float32") is the working precision of bt_loglik's
    exponentials and logs (accuracy is always float64, so its ties stay exact); the
    result is float64 either way. Memory is a few chunk_bytes beyond D and the result.
    `n_jobs` threads (default: the usable cores, at most 8) split the work; the result
    does not depend on n_jobs, chunk_bytes or tile_bytes beyond rounding.
    """
    D = check_scores(scores)
    check_utility(utility)
    check_composition(composition)
    beta = check_beta(beta)
    s = check_sizes(sizes, n=D.shape[0], composition=composition)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid are {', '.join(PRECISIONS)}")
    if D.shape[0] > MAX_EXACT_OWNERS:
        raise ValueError(
            f"{D.shape[0]} owners means 2^{D.shape[0]} coalitions; exact utilities stop at "
            f"{MAX_EXACT_OWNERS} owners, use a sampled Shapley estimator instead"
        )
    jobs = _usable_cores() if n_jobs is None else max(1, n_jobs)
    return tabulate(D, accuracy=utility == "preference_accuracy", mean=composition == "mean",
                    beta=beta, sizes=s, precision=precision, chunk_bytes=chunk_bytes,
                    tile_bytes=tile_bytes, n_jobs=jobs)


def _usable_cores() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has affinity masks
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))
