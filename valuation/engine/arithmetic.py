"""Coalition composition by language-model arithmetic (docs/design.md §2).

A coalition S of owners is the policy

    log π_S(y|x) = log π₀(y|x) + Σ_{i∈S} w_i(S) · δ_i(x, y) − log Z_S(x),

with δ_i = log π_i − log π₀ cached per eval response. On an eval pair the normaliser
log Z_S(x) cancels, so the coalition's preference margin is a weighted row sum of the
cached score matrix D (n owners × T pairs, D[i, t] = δ_i(x_t, y_w) − δ_i(x_t, y_l)):

    M_S(t) = Σ_i w_i(S) · D[i, t].

Compositions:
    sum   w_i(S) = 1                  — the DPO optimum for the summed rewards (the seed
                                        paper's arithmetic; sequential DPO converges here)
    mean  w_i(S) = n_i / Σ_{j∈S} n_j  — the size-weighted reward average, closer to one
                                        DPO run on the pooled data

The empty coalition is π₀ itself: zero weights, zero margins. This module also owns
the input checks shared by `utility` (score matrix, sizes, coalition matrices).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

COMPOSITIONS: tuple[str, ...] = ("sum", "mean")

# Margins are produced in row blocks of at most this many bytes, so a caller asking for
# many coalitions at once never doubles its memory inside this module.
DEFAULT_CHUNK_BYTES = 8 * 2**20


def check_composition(composition: str) -> str:
    """Return `composition` if it is known, else raise naming the valid ones."""
    if composition not in COMPOSITIONS:
        raise ValueError(
            f"unknown composition {composition!r}; valid compositions are {', '.join(COMPOSITIONS)}"
        )
    return composition


def check_scores(scores: ArrayLike) -> np.ndarray:
    """The (n, T) float64 score matrix, refusing NaN/inf and an empty eval set."""
    D = np.asarray(scores, dtype=np.float64)
    if D.ndim != 2:
        raise ValueError(f"score matrix must be 2-D (owners × eval pairs), got shape {D.shape}")
    if D.shape[1] == 0:
        raise ValueError("score matrix has no eval pairs (T = 0): the eval set is empty")
    if not np.all(np.isfinite(D)):
        rows, cols = np.nonzero(~np.isfinite(D))
        raise ValueError(
            f"score matrix has {rows.size} non-finite entries (NaN or inf), first at "
            f"owner row {rows[0]}, eval pair {cols[0]}; rescore that owner's model"
        )
    return D


def check_sizes(sizes: ArrayLike | None, *, n: int, composition: str) -> np.ndarray | None:
    """Owner dataset sizes as float64 (n,), or None when `sum` was given no sizes."""
    if sizes is None:
        if composition == "mean":
            raise ValueError("composition 'mean' needs the owners' dataset sizes")
        return None
    s = np.asarray(sizes)
    if s.shape != (n,):
        raise ValueError(f"sizes must have shape ({n},) (one per owner), got {s.shape}")
    if s.dtype.kind not in "iuf" or not np.all(np.isfinite(s)):
        raise ValueError("sizes must be finite numbers (pair counts per owner)")
    if np.any(s <= 0):
        bad = int(np.flatnonzero(s <= 0)[0])
        raise ValueError(f"sizes must be positive; owner {bad} has size {s[bad]}")
    return s.astype(np.float64)


def check_members(members: ArrayLike, *, n: int | None) -> np.ndarray:
    """A (k, n) boolean coalition matrix (any n when None); 0/1 numbers are accepted too."""
    m = np.asarray(members)
    if m.ndim != 2 or (n is not None and m.shape[1] != n):
        expected = f"(k, {n})" if n is not None else "(k, n)"
        raise ValueError(f"coalition matrix must have shape {expected}, got {m.shape}")
    if m.dtype != np.bool_:
        if m.dtype.kind not in "iuf" or not np.all((m == 0) | (m == 1)):
            raise ValueError("coalition matrix must be boolean (or 0/1): True means 'owner is in S'")
        m = m.astype(np.bool_)
    return m


def coalition_weights(
    members: ArrayLike, *, sizes: ArrayLike | None = None, composition: str
) -> np.ndarray:
    """Arithmetic weights w_i(S), shape (k, n) float64; all-zero rows for the empty coalition.

    `sizes` (n,) positive pair counts are required for `mean` and ignored by `sum`.
    """
    check_composition(composition)
    m = check_members(members, n=None)
    s = check_sizes(sizes, n=m.shape[1], composition=composition)
    weights = m.astype(np.float64)
    if composition == "mean":
        weights *= s
        totals = weights.sum(axis=1, keepdims=True)
        # Empty coalitions keep their zero row instead of dividing 0 by 0.
        np.divide(weights, totals, out=weights, where=totals > 0)
    return weights


def coalition_margins(
    scores: ArrayLike,
    members: ArrayLike,
    *,
    sizes: ArrayLike | None = None,
    composition: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> np.ndarray:
    """Coalition margins M_S(t) = Σ_i w_i(S) D[i, t], shape (k, T) float64.

    Row blocks are one BLAS product each; the (k, T) result itself is what was asked for.
    """
    D = check_scores(scores)
    m = check_members(members, n=D.shape[0])
    weights = coalition_weights(m, sizes=sizes, composition=composition)
    out = np.empty((m.shape[0], D.shape[1]), dtype=np.float64)
    rows = max(1, chunk_bytes // (8 * D.shape[1]))
    for start in range(0, m.shape[0], rows):
        np.matmul(weights[start : start + rows], D, out=out[start : start + rows])
    return out
