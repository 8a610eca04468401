"""All 2^n coalition utilities at once: the hot loop of exact Shapley (docs/design.md §2).

Split the owners into b low bits and n − b high bits. Every coalition margin is then one
addition, M[h·2^b + a] = low[a] + high[h], of a subset-sum table `low` (2^b × T) and a
subset sum of the high rows: no per-coalition matrix product and no bit matrix. (A
Gray-code walk also updates each margin by one ±D_i row; the table does the same O(1)
work per entry without a sequential dependence, so it tiles and threads.)

preference_accuracy  sign(low + high) = sign(low − (−high)) exactly in IEEE arithmetic,
                     so comparisons and a popcount per entry, in float64; ties stay exact.
                     Where no low entry equals −high exactly (checked per high row by
                     binary search in the sorted low columns), #lt = T − #gt and one
                     comparison per entry suffices.
bt_loglik            v = −mean_t log1p(e^{c·z}) with z = −β·(margin before 1/Σn_j) and
                     c = 1 (`sum`) or 1/Σ_{j∈S} n_j (`mean`). For `sum`,
                     e^{z_low + z_high} = e^{z_low}·e^{z_high}: both exponentials are
                     tabulated once, so an entry costs one multiply and one log1p instead
                     of an add, an exp and a log1p. Blocks whose largest z could overflow
                     e^z take the stable float64 form. (Grouping logs as log Π(1 + y)
                     was measured too: the extra passes cost more than the saved logs.)
  numpy's float64 log1p costs ≈ 0.6–0.9 ns/entry on this VM against ≈ 0.27 ns in
  float32, so precision="float32" keeps exponentials and logs in float32 (relative error
  a few ulp per entry, ≈ 1e-7 of a utility); "float64" matches the definition to ≈ 1e-14.

Tiles of low rows (≈ tile_bytes, sized for L2) stay in cache while the high rows of a
chunk stream past them; threads take tiles (numpy releases the GIL in every operation).
Memory beyond the (2^n,) result: the low table and one high chunk (≤ chunk_bytes each,
plus float32 copies) and one tile buffer per thread.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

PRECISIONS: tuple[str, ...] = ("float64", "float32")
DEFAULT_TILE_BYTES = 2**20  # measured best of 256 KB … 4 MB (1 MB L2 per core)
# Largest exponent whose e^z stays finite, with a margin, per precision.
_LOG_MAX = {np.dtype(np.float64): 700.0, np.dtype(np.float32): 85.0}
_WORD = 8  # accuracy rows are padded to whole 8-byte words of booleans
_LN2 = math.log(2.0)


def tabulate(D: np.ndarray, *, accuracy: bool, mean: bool, beta: float, sizes: np.ndarray | None,
             precision: str, chunk_bytes: int, tile_bytes: int, n_jobs: int) -> np.ndarray:
    """v(S) for every bitmask S from a validated (n, T) score matrix, shape (2^n,) float64."""
    plan = _Plan(D, accuracy=accuracy, mean=mean, beta=beta, sizes=sizes, precision=precision,
                 chunk_bytes=chunk_bytes, tile_bytes=tile_bytes)
    out = np.empty(1 << D.shape[0], dtype=np.float64)
    tiles = list(range(0, 1 << plan.b, plan.tile_rows))
    jobs = max(1, min(n_jobs, len(tiles)))
    workers = [_Buffers(plan) for _ in range(jobs)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for h0 in range(0, plan.n_high, plan.high_chunk):
            block = plan.high_block(h0, min(h0 + plan.high_chunk, plan.n_high))
            if jobs == 1:
                plan.fill_tiles(out, block, tiles, workers[0])
                continue
            done = [pool.submit(plan.fill_tiles, out, block, tiles[j::jobs], workers[j])
                    for j in range(jobs)]
            for future in done:
                future.result()
    if not accuracy:
        out[0] = -_LN2  # π₀: z = 0 everywhere (`mean` divides 0 by 0 there)
    return out


def subset_sums(rows: np.ndarray) -> np.ndarray:
    """table[m] = Σ_{bit j of m} rows[j] for every m < 2^b, built by doubling."""
    b = rows.shape[0]
    table = np.zeros((1 << b,) + rows.shape[1:], dtype=np.float64)
    for j in range(b):
        np.add(table[: 1 << j], rows[j], out=table[1 << j : 2 << j])
    return table


@dataclass(frozen=True)
class _HighBlock:
    """Subset sums of the high rows for high indices h0 … h0 + len − 1."""

    h0: int
    z: np.ndarray  # (H, Tp) float64: margins (accuracy) or z rows (bt_loglik)
    size: np.ndarray  # (H,) Σ n_j of the high members (`mean`), else zeros
    fast: np.ndarray | None  # (H, Tp) e^z (`sum`) or z (`mean`) in the working precision
    z_max: np.ndarray  # (H,) upper bound of z_low + z_high over the block's eval pairs
    factorable: np.ndarray  # (H,) e^{z_high} is finite, so `sum` may multiply exponentials
    ties: np.ndarray  # (H,) some coalition of the row has a margin exactly 0 (accuracy)


class _Buffers:
    """One worker's scratch space, reused across tiles and high rows."""

    def __init__(self, plan: _Plan) -> None:
        shape = (plan.tile_rows, plan.width)
        if plan.accuracy:
            self.gt, self.lt = np.empty(shape, np.bool_), np.empty(shape, np.bool_)
        else:
            self.work = np.empty(shape, plan.dtype)
            self.ones = np.ones(plan.width, plan.dtype)
        self.wide: np.ndarray | None = None  # float64 rows for the rare stable path

    def float64(self, rows: int, width: int) -> np.ndarray:
        if self.wide is None:
            self.wide = np.empty((rows, width), np.float64)
        return self.wide


class _Plan:
    """Low tables, tiling and the per-tile kernels of `tabulate`."""

    def __init__(self, D: np.ndarray, *, accuracy: bool, mean: bool, beta: float,
                 sizes: np.ndarray | None, precision: str, chunk_bytes: int, tile_bytes: int) -> None:
        n, self.T = D.shape
        self.accuracy, self.mean = accuracy, mean
        self.dtype = np.dtype(np.float64 if accuracy else precision)
        self.width = -(-self.T // _WORD) * _WORD if accuracy else self.T
        self.b = min(n, max(0, int(math.log2(max(1, chunk_bytes // (8 * self.width))))))
        self.n_high = 1 << (n - self.b)
        self.high_chunk = max(1, min(self.n_high, chunk_bytes // (8 * self.width)))
        self.tile_rows = max(1, min(1 << self.b, tile_bytes // (self.dtype.itemsize * self.width)))
        rows = np.zeros((n, self.width), np.float64)
        # Accuracy only needs signs: no β, no division by Σ n_j.
        rows[:, : self.T] = D * (1.0 if accuracy else -beta)
        self.sizes = np.zeros(n) if sizes is None else sizes
        if mean:
            rows *= self.sizes[:, None]
        self.low = subset_sums(rows[: self.b])
        self.low_size = subset_sums(self.sizes[: self.b])
        self.high_rows, self.high_sizes = rows[self.b :], self.sizes[self.b :]
        self.log_max = _LOG_MAX[self.dtype]
        if accuracy:
            self.sorted_low = np.sort(self.low[:, : self.T].T, axis=1)  # (T, 2^b) for tie search
        else:
            self._prepare_bt()

    def _prepare_bt(self) -> None:
        real = self.low[:, : self.T]
        self.low_col_max = real.max(axis=0)
        # `sum` multiplies tabulated exponentials; `mean` adds z in the working precision.
        self.factorable = not self.mean and float(self.low_col_max.max()) < self.log_max
        self.low_fast = (np.exp(self.low) if self.factorable else self.low).astype(self.dtype)

    def high_block(self, h0: int, h1: int) -> _HighBlock:
        h = np.arange(h0, h1, dtype=np.int64)
        bits = ((h[:, None] >> np.arange(self.high_rows.shape[0])) & 1).astype(np.float64)
        z = bits @ self.high_rows
        size = bits @ self.high_sizes
        if self.accuracy:
            return _HighBlock(h0, z, size, None, np.zeros(0), np.zeros(0, bool), self._ties(z))
        z_max = (self.low_col_max + z).max(axis=1)
        factorable = np.full(h.size, self.factorable) & (z.max(axis=1) < self.log_max)
        if self.factorable:
            with np.errstate(over="ignore"):
                fast = np.exp(np.minimum(z, self.log_max)).astype(self.dtype)
        else:
            fast = z.astype(self.dtype)
        return _HighBlock(h0, z, size, fast, z_max, factorable, np.zeros(0, bool))

    def _ties(self, high: np.ndarray) -> np.ndarray:
        """Per high row: does low[a, t] == −high[t] for any coalition a and pair t?"""
        ties = np.zeros(high.shape[0], bool)
        last = self.sorted_low.shape[1] - 1
        for t, column in enumerate(self.sorted_low):
            target = -high[:, t]
            at = np.minimum(np.searchsorted(column, target), last)
            ties |= column[at] == target
        return ties

    def fill_tiles(self, out: np.ndarray, block: _HighBlock, tiles: list[int], buf: _Buffers) -> None:
        for a0 in tiles:
            a1 = min(a0 + self.tile_rows, 1 << self.b)
            for j in range(block.z.shape[0]):
                start = (block.h0 + j) << self.b
                dest = out[start + a0 : start + a1]
                if self.accuracy:
                    self._accuracy(dest, a0, a1, block.z[j], bool(block.ties[j]), buf)
                else:
                    self._bt_loglik(dest, a0, a1, block, j, buf)

    def _accuracy(self, out: np.ndarray, a0: int, a1: int, high: np.ndarray, ties: bool,
                  buf: _Buffers) -> None:
        # Zero padding is neither > nor <, so padded columns count as nothing.
        low, neg = self.low[a0:a1], -high
        gt = buf.gt[: a1 - a0]
        np.greater(low, neg, out=gt)
        wins = _count_true(gt)
        if ties:  # #lt = T − #gt − #ties: count the losses
            lt = buf.lt[: a1 - a0]
            np.less(low, neg, out=lt)
            wins -= _count_true(lt)
        else:
            wins = 2 * wins - self.T
        np.multiply(wins, 0.5 / self.T, out=out)
        out += 0.5

    def _bt_loglik(self, out: np.ndarray, a0: int, a1: int, block: _HighBlock, j: int,
                   buf: _Buffers) -> None:
        c = self._inverse_sizes(a0, a1, block.size[j]) if self.mean else None
        bound = float(block.z_max[j]) * (1.0 if c is None else float(c.max()))
        if bound >= self.log_max:
            return self._bt_stable(out, a0, a1, block.z[j], c, buf)
        y = buf.work[: a1 - a0]
        if self.mean:
            np.add(self.low_fast[a0:a1], block.fast[j], out=y)
            np.multiply(y, c[:, None].astype(self.dtype), out=y)
            np.exp(y, out=y)
        elif block.factorable[j]:
            np.multiply(self.low_fast[a0:a1], block.fast[j], out=y)
        else:  # e^{z_high} alone would overflow although z_low + z_high does not
            wide = buf.float64(self.tile_rows, self.width)[: a1 - a0]
            np.add(self.low[a0:a1], block.z[j], out=wide)
            np.exp(wide, out=wide)
            y[...] = wide
        np.log1p(y, out=y)
        # One BLAS matrix-vector product per tile sums the rows (float32 rows accumulate
        # in vector registers: ≈ 1e-7 relative, within the float32 contract).
        np.multiply(y @ buf.ones, -1.0 / self.T, out=out)

    def _bt_stable(self, out: np.ndarray, a0: int, a1: int, z_high: np.ndarray,
                   c: np.ndarray | None, buf: _Buffers) -> None:
        # Σ_t log σ(x) = Σ_t min(x, 0) − Σ_t log1p(e^{−|x|}), x = −c·z; min(x, 0) = (x − |x|)/2.
        wide = buf.float64(self.tile_rows, self.width)[: a1 - a0]
        np.add(self.low[a0:a1], z_high, out=wide)
        if c is not None:
            wide *= c[:, None]
        total = -wide.sum(axis=1)
        np.abs(wide, out=wide)
        total -= wide.sum(axis=1)
        np.negative(wide, out=wide)
        np.exp(wide, out=wide)
        np.log1p(wide, out=wide)
        np.subtract(0.5 * total, wide.sum(axis=1), out=out)
        out /= self.T

    def _inverse_sizes(self, a0: int, a1: int, high_size: float) -> np.ndarray:
        """1 / Σ_{j∈S} n_j for a tile's coalitions; 0 for the empty one (its z is 0)."""
        total = self.low_size[a0:a1] + high_size
        return np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)


def _count_true(mask: np.ndarray) -> np.ndarray:
    """Row counts of a C-contiguous bool matrix whose rows are whole 8-byte words."""
    return np.bitwise_count(mask.view(np.uint64)).sum(axis=1, dtype=np.int64)
