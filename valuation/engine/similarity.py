"""Semantic screening of a round's pairs: how much of each owner's data is near-identical to the eval set
or to another owner's data, by the base model's pair representations (representations.py).

Shingle near-duplicate detection at upload catches copies that keep the words; a paraphrase (swapped words,
synonyms, reordered sentences, another template) changes the shingles but barely moves the base model's
mean-pooled hidden states. Each pair becomes one unit vector

    u(x, y_w, y_l) = [ĉ ; r̂] / √2,   ĉ = (f(x, y_w) − μ_c) / ‖·‖,   r̂ = (f(x, y_l) − μ_r) / ‖·‖

where μ_c, μ_r are the means of the *eval set's* chosen and rejected vectors. Centering matters: mean-pooled
states share a large common component, so uncentered cosines of unrelated pairs are all close to 1. The
centre comes from the eval set, which owners do not control, so an owner cannot move it with their uploads.
The concatenation keeps which response was chosen (a copy has both halves close); the pair difference
z = f(x, y_w) − f(x, y_l) that the data-quality stage uses was measured worse (bench/similarity_screen.py):
two unrelated pairs with the same kind of preference have similar differences, so at any recall it flags
far more distinct pairs.

What the tiny base model's vectors can and cannot do (bench/similarity_screen.py, 200 eval pairs): a copy
with words swapped is found every time at cosine 0.95 while 4% of distinct pairs reach it; synonyms (words
the tiny tokenizer splits into bytes), reordered sentences and a changed template move a pair as far as a
different question in the same template does, so they are NOT caught by it. A real base model separates
these better; the thresholds are settings, and the bench measures them for whichever model a round uses.

Per pair: the cosine of its nearest eval pair and of its nearest pair of *another* owner (and whose). Per
owner: the share of pairs above `pair_threshold` for either, and the owner is flagged when a share exceeds
`share_threshold`. The N × (N + T) similarities are never held at once: rows and columns are taken
`chunk` at a time, so memory is O(chunk²) and 100k pairs fit in a few hundred MB.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ProgressFn = Callable[[int, int], None]
REPRESENTATIONS = ("concat", "diff")


@dataclass(frozen=True)
class ScreenConfig:
    pair_threshold: float = 0.95  # cosine of u above which two pairs count as near-identical: 4% of distinct pairs
    # Flagged above this share near-identical to eval or another owner. Honest synthetic owners (the demo's,
    # the browser test's) reach up to 0.10 under the tiny model, whose vectors see a shared template as a copy.
    share_threshold: float = 0.15
    representation: str = "concat"  # "concat" ([ĉ; r̂], the default) or "diff" (z, measured for comparison)
    chunk: int = 2048  # rows × columns of similarities computed at once

    def __post_init__(self) -> None:
        if not -1.0 <= self.pair_threshold <= 1.0:
            raise ValueError(f"pair_threshold must be a cosine in [-1, 1], got {self.pair_threshold}")
        if not 0.0 <= self.share_threshold < 1.0:
            raise ValueError(f"share_threshold must be a share in [0, 1), got {self.share_threshold}")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {', '.join(REPRESENTATIONS)}, got {self.representation!r}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"chunk must be a positive integer, got {self.chunk!r}")


def config_to_dict(config: ScreenConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(data: dict) -> ScreenConfig:
    return ScreenConfig(**data)


@dataclass(frozen=True)
class OwnerScreen:
    owner: int  # the owner label given for the owner's pairs
    n_pairs: int
    n_eval: int  # pairs whose nearest eval pair is above the threshold
    n_owner: int  # pairs whose nearest other-owner pair is above the threshold
    matched_owners: dict  # {other owner: pairs of this owner whose nearest other-owner pair is theirs, above threshold}
    max_eval: float  # highest cosine to an eval pair (−1 when there is no eval pair)
    max_owner: float  # highest cosine to another owner's pair (−1 when there is no other owner)
    flagged: bool

    @property
    def share_eval(self) -> float:
        return self.n_eval / self.n_pairs if self.n_pairs else 0.0

    @property
    def share_owner(self) -> float:
        return self.n_owner / self.n_pairs if self.n_pairs else 0.0


@dataclass(frozen=True)
class ScreenResult:
    eval_similarity: np.ndarray  # (N,) cosine of each pair's nearest eval pair
    eval_nearest: np.ndarray  # (N,) its index in the eval set (−1: none)
    owner_similarity: np.ndarray  # (N,) cosine of each pair's nearest pair of another owner
    owner_nearest: np.ndarray  # (N,) that pair's index in the pool (−1: none)
    owners: list  # [OwnerScreen], in order of first appearance


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def pair_vectors(chosen: np.ndarray, rejected: np.ndarray, *, eval_chosen: np.ndarray, eval_rejected: np.ndarray,
                 representation: str = "concat") -> np.ndarray:
    """Unit vectors (float64, one row per pair) of pairs given f(x, y_w) and f(x, y_l), centred on the eval set."""
    chosen, rejected = np.asarray(chosen, np.float64), np.asarray(rejected, np.float64)
    eval_chosen, eval_rejected = np.asarray(eval_chosen, np.float64), np.asarray(eval_rejected, np.float64)
    if chosen.shape != rejected.shape or chosen.ndim != 2:
        raise ValueError("chosen and rejected must be matching (N, d) arrays")
    if eval_chosen.ndim != 2 or eval_chosen.shape[0] == 0 or eval_chosen.shape[1] != chosen.shape[1]:
        raise ValueError("the eval set's vectors must be a non-empty (T, d) array of the same width")
    if representation == "diff":
        z, z_eval = chosen - rejected, eval_chosen - eval_rejected
        return _unit_rows(z - z_eval.mean(axis=0))
    if representation != "concat":
        raise ValueError(f"unknown representation {representation!r}")
    c = _unit_rows(chosen - eval_chosen.mean(axis=0))
    r = _unit_rows(rejected - eval_rejected.mean(axis=0))
    return np.concatenate([c, r], axis=1) / np.sqrt(2.0)


def _nearest(rows: np.ndarray, cols: np.ndarray, chunk: int, *, row_labels=None, col_labels=None,
             progress=None) -> tuple[np.ndarray, np.ndarray]:
    """For every row: the highest cosine to a column (columns with the row's own label excluded) and its index."""
    best = np.full(len(rows), -np.inf)
    where = np.full(len(rows), -1, dtype=np.int64)
    for r0 in range(0, len(rows), chunk):
        block = rows[r0 : r0 + chunk]
        top, arg = best[r0 : r0 + chunk], where[r0 : r0 + chunk]  # views: updated in place
        for c0 in range(0, len(cols), chunk):
            sims = block @ cols[c0 : c0 + chunk].T
            if row_labels is not None:
                sims[row_labels[r0 : r0 + chunk, None] == col_labels[None, c0 : c0 + chunk]] = -np.inf
            j = np.argmax(sims, axis=1)
            s = sims[np.arange(len(block)), j]
            better = s > top  # strict: of equal cosines the first column wins, whatever the chunking
            top[better], arg[better] = s[better], j[better] + c0
        if progress:
            progress(min(r0 + chunk, len(rows)))
    where[~np.isfinite(best)] = -1
    return best, where


def screen(pool: np.ndarray, owners, eval_vectors: np.ndarray, config: ScreenConfig = ScreenConfig(), *,
           on_progress: ProgressFn | None = None) -> ScreenResult:
    """Screen N pool vectors (rows of `pair_vectors`, labelled by ``owners``) against T eval vectors and each other."""
    pool, eval_vectors = np.asarray(pool, np.float64), np.asarray(eval_vectors, np.float64)
    owners = np.asarray(owners)
    if pool.ndim != 2 or len(owners) != len(pool):
        raise ValueError("pool must be (N, d) with one owner label per row")
    if eval_vectors.ndim != 2 or eval_vectors.shape[0] == 0 or eval_vectors.shape[1] != pool.shape[1]:
        raise ValueError("the eval vectors must be a non-empty (T, d) array of the pool's width")
    total = 2 * len(pool)

    def progress(offset):
        return (lambda done: on_progress(offset + done, total)) if on_progress else None

    eval_sim, eval_idx = _nearest(pool, eval_vectors, config.chunk, progress=progress(0))
    owner_sim, owner_idx = _nearest(pool, pool, config.chunk, row_labels=owners, col_labels=owners,
                                    progress=progress(len(pool)))
    if on_progress:
        on_progress(total, total)
    near_eval, near_owner = eval_sim > config.pair_threshold, owner_sim > config.pair_threshold
    summaries = []
    for owner in dict.fromkeys(owners.tolist()):
        mine = owners == owner
        n = int(mine.sum())
        matched = owners[owner_idx[mine & near_owner]]
        counts = {k.item(): int(v) for k, v in zip(*np.unique(matched, return_counts=True))} if len(matched) else {}
        n_eval, n_owner = int((mine & near_eval).sum()), int((mine & near_owner).sum())
        finite = owner_sim[mine][np.isfinite(owner_sim[mine])]
        summaries.append(OwnerScreen(
            owner=owner, n_pairs=n, n_eval=n_eval, n_owner=n_owner, matched_owners=counts,
            max_eval=float(eval_sim[mine].max()) if n else -1.0,
            max_owner=float(finite.max()) if len(finite) else -1.0,
            flagged=n > 0 and max(n_eval, n_owner) / n > config.share_threshold))
    return ScreenResult(eval_similarity=eval_sim, eval_nearest=eval_idx,
                        owner_similarity=np.where(np.isfinite(owner_sim), owner_sim, -1.0), owner_nearest=owner_idx,
                        owners=summaries)
