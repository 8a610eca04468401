"""The structured prior's size quadrature above 64 owners: its error against the exact prior mean.

Ā_i = (1/n) Σ_k A_i(k) needs A at every coalition size k; above `full_sizes` owners the prior evaluates
A at a few sizes only (`StructuredSampler._prior_mean`). This computes A at all n sizes once (the exact
Ā, ≈ 30 s per utility at n = 1,000) and compares, per utility, summed over owners and divided by the
positive pool Σ max(Ā_i, 0):

  * `equal strata (old)`: two random sizes in each of 16 equal strata, the design before commit 0231ec4
    (rebuilt here from the all-size table: expected standard error, and the realised error of --seeds
    draws against the standard error each draw reported);
  * `intervals S`: the current design (trapezoid on quadratically spaced nodes + two random sizes per
    interval for what bends away from the line) with S intervals: expected standard error from the
    table, and the sampler's own realised error and reported standard error over --seeds prior seeds.

    .venv/bin/python bench/prior_quadrature.py [--n 1000] [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from games import BETA, realistic_score_matrix  # noqa: E402

from valuation.engine.structured import StructuredConfig, StructuredSampler  # noqa: E402
from valuation.engine.utility import coalition_utility_fn  # noqa: E402

UTILITIES = ("preference_accuracy", "bt_loglik")


def all_sizes(sampler: StructuredSampler, n: int) -> np.ndarray:
    """A_i(k) for every size k and owner i, shape (n, n)."""
    table = np.zeros((n, n))
    for chunk in sampler.owner_chunks():
        table[:, chunk.owners] = sampler.game.prior(chunk, np.arange(n), entries=sampler.config.chunk_entries)
    return table


def equal_strata(table: np.ndarray, seeds: int, strata: int = 16) -> dict:
    """The old design on the exact table: expected sd, and realised |error| vs reported sd per draw."""
    n = table.shape[0]
    truth = table.mean(axis=0)
    edges = np.linspace(1, n, strata + 1).round().astype(int)
    widths = np.diff(edges)
    expected = np.sqrt(sum(w**2 * table[lo:hi].var(axis=0) / 2 for lo, hi, w in zip(edges[:-1], edges[1:], widths))) / n
    realised, reported = [], []
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 0xA11])
        draws = np.stack([rng.integers(lo, hi, size=2) for lo, hi in zip(edges[:-1], edges[1:])])
        first, second = table[draws[:, 0]], table[draws[:, 1]]
        estimate = (table[0] + widths @ (0.5 * (first + second))) / n
        realised.append(np.abs(estimate - truth).sum())
        reported.append(np.sqrt(((widths[:, None] * 0.5 * (first - second)) ** 2).sum(axis=0)).sum() / n)
    return dict(expected_sd=float(expected.sum()), realised=realised, reported_sd=reported)


def intervals(table: np.ndarray, utility, n: int, strata: int, seeds: int) -> dict:
    """The current design: expected sd from the table, and the sampler's own draws."""
    config = StructuredConfig(strata=strata)
    nodes = config.prior_nodes(n, utility.utility)
    variance = np.zeros(n)
    for a, b in zip(nodes[:-1], nodes[1:]):
        if b - a > 1:
            k = np.arange(a + 1, b)
            line = ((b - k)[:, None] * table[a] + (k - a)[:, None] * table[b]) / (b - a)
            variance += (b - a - 1) ** 2 * (table[a + 1 : b] - line).var(axis=0) / 2
    truth = table.mean(axis=0)
    realised, reported = [], []
    for seed in range(seeds):
        sampler = StructuredSampler(utility, n, seed=seed, config=config)
        values, var = sampler._prior_mean()
        realised.append(float(np.abs(values - truth).sum()))
        reported.append(float(np.sqrt(var).sum()))
    return dict(sizes=config.prior_sizes(n, utility.utility), expected_sd=float(np.sqrt(variance).sum() / n),
                realised=realised, reported_sd=reported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="prior_quadrature.json", help="file name under bench/results/")
    args = parser.parse_args()
    n = args.n
    D = realistic_score_matrix(n, 1000, seed=0)
    report = dict(n=n, T=1000, seeds=args.seeds, rows=[])
    print(f"n = {n}, T = 1000: summed over owners ÷ positive pool; realised |error| and reported sd are means over "
          f"{args.seeds} seeds")
    print(f"{'utility':19s} {'design':22s} {'sizes':>5s} {'expected sd':>11s} {'realised':>9s} {'reported sd':>11s}")
    for name in UTILITIES:
        utility = coalition_utility_fn(D, utility=name, composition="sum", beta=BETA)
        table = all_sizes(StructuredSampler(utility, n, seed=0), n)
        pool = np.clip(table.mean(axis=0), 0.0, None).sum()
        designs = {"equal strata (old)": dict(sizes=33, **equal_strata(table, args.seeds))}
        for strata in (16, 32):
            designs[f"intervals {strata}"] = intervals(table, utility, n, strata, args.seeds)
        for design, row in designs.items():
            print(f"{name:19s} {design:22s} {row['sizes']:5d} {100 * row['expected_sd'] / pool:10.2f}% "
                  f"{100 * np.mean(row['realised']) / pool:8.2f}% {100 * np.mean(row['reported_sd']) / pool:10.2f}%")
            report["rows"].append(dict(utility=name, design=design, positive_pool=float(pool), **row))
        sys.stdout.flush()
    (ROOT / "bench" / "results" / args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
