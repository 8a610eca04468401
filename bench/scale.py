"""Valuation at marketplace scale: the structured estimator against the generic ones.

Part 1, exact truth (n = 16, 20, 24). Games: `synthetic` — games.realistic_score_matrix(n, 1000)
(good / noisy / adversarial / duplicate owners); `demo` — the real (5 × 200) score matrix of the
demo round (bench/results/demo_scores.npz, five owners trained by `manage.py demo`), each row
replicated with noise (σ = 0.3 × the row's spread) to reach n. Utilities preference_accuracy and
bt_loglik, composition sum, β = 0.1. For each estimator and budget n·{5, 10, 20, 50} (no stopping
rule): mean misallocated share ½Σ|s(φ̂) − s(φ)| over --seeds seeds, 95% CI coverage and wall time.
"Equal wall time": every generic estimator is given the evaluations it can make in the time the
structured estimator took at that budget (its time per evaluation is calibrated first; structured runs
once untimed first, so its compiled loops are loaded).

Part 2, scale (n = 100, 1000, 5000; T = 1000 synthetic): wall time and peak RSS (each n in its own
process) to values with CIs at a 1% misallocation target, and the realised misallocation against a
reference from the same unbiased estimator with --reference-factor × the evaluations; at each of
--coverage-sizes (default n = 100) the 95% CI coverage of such a reference over --coverage-seeds seeds.

    .venv/bin/python bench/scale.py [--seeds 10] [--part 1|2|both] [--sizes 16 20 24]
        [--utilities preference_accuracy] [--structured-config '{"all_positions": false}']

Prints the tables and writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from games import BETA, realistic_score_matrix  # noqa: E402

import valuation.engine.shapley as shapley_module  # noqa: E402
from valuation.engine.sampling import misallocation  # noqa: E402
from valuation.engine.shapley import estimate_shapley, exact_shapley  # noqa: E402
from valuation.engine.structured import StructuredConfig, StructuredSampler  # noqa: E402
from valuation.engine.utility import coalition_utility_fn  # noqa: E402

GENERIC = ("kernel", "permutation", "stratified", "plain_permutation")
METHODS = ("structured",) + GENERIC
MULTIPLIERS = (5, 10, 20, 50)
UTILITIES = ("preference_accuracy", "bt_loglik")
RESULTS = ROOT / "bench" / "results"
DEMO_SCORES = RESULTS / "demo_scores.npz"


def demo_matrix(n: int, seed: int) -> np.ndarray:
    """The demo round's real score rows, replicated with noise to n owners."""
    real = np.load(DEMO_SCORES)["D"]
    rng = np.random.default_rng(seed)
    rows = [real[i % len(real)] for i in range(n)]
    noise = [0.3 * row.std() * rng.standard_normal(row.size) if i >= len(real) else 0.0 for i, row in enumerate(rows)]
    return np.array([row + e for row, e in zip(rows, noise)])


def run(utility, n: int, method: str, budget: int, seed: int, target=None):
    start = time.perf_counter()
    result = estimate_shapley(utility, n, method=method, budget=budget, seed=seed, target=target)
    return result, time.perf_counter() - start


def cell(utility, truth, method: str, budget: int, seeds: int) -> dict:
    n = truth.size
    mis, cover, seconds, spent = [], [], [], []
    for seed in range(seeds):
        r, dt = run(utility, n, method, budget, seed)
        mis.append(misallocation(r.values, truth))
        cover.append(np.mean((r.ci_low <= truth) & (truth <= r.ci_high)))
        seconds.append(dt)
        spent.append(r.n_evaluations)
    return dict(method=method, budget=budget, evaluations=float(np.mean(spent)), mis=float(np.mean(mis)),
                coverage=float(np.mean(cover)), seconds=float(np.mean(seconds)))


def seconds_per_evaluation(utility, n: int, method: str) -> tuple[float, float]:
    """Fixed cost and cost per evaluation of a generic estimator (two budgets, three seeds each)."""
    low, high = 10 * n, 200 * n
    t_low = np.median([run(utility, n, method, low, s)[1] for s in range(3)])
    t_high = np.median([run(utility, n, method, high, s)[1] for s in range(3)])
    per = max((t_high - t_low) / (high - low), 1e-9)
    return max(t_low - per * low, 0.0), per


def part_one(args) -> list[dict]:
    rows = []
    if args.structured_config:
        # Another variant of the estimator in every cell (e.g. '{"all_positions": false}': accuracy at the
        # single sampled position with the normal prior; '{"twin_owners": 0}': no lattice twin).
        config = StructuredConfig(**json.loads(args.structured_config))
        shapley_module.StructuredSampler = functools.partial(StructuredSampler, config=config)
    for game_name in args.games:
        for n in args.sizes:
            D = realistic_score_matrix(n, 1000, seed=0) if game_name == "synthetic" else demo_matrix(n, seed=0)
            for name in args.utilities:
                utility = coalition_utility_fn(D, utility=name, composition="sum", beta=BETA)
                start = time.perf_counter()
                truth = exact_shapley(utility.table())
                table_seconds = time.perf_counter() - start
                rates = {m: seconds_per_evaluation(utility, n, m) for m in GENERIC}
                # The process's first structured call loads its compiled loops (numba, from the on-disk
                # cache: ≈ 0.1–0.3 s; compiling them on a new machine takes ≈ 40 s, once): not per estimate.
                run(utility, n, "structured", 5 * n, seed=10**6)
                for mult in MULTIPLIERS:
                    budget = mult * n
                    cells = {m: cell(utility, truth, m, budget, args.seeds) for m in METHODS}
                    wall = cells["structured"]["seconds"]
                    equal_time = {}
                    for m in GENERIC:
                        fixed, per = rates[m]
                        affordable = int(max(4 * n, (wall - fixed) / per))
                        equal_time[m] = cell(utility, truth, m, affordable, args.seeds)
                    row = dict(game=game_name, n=n, T=D.shape[1], utility=name, multiplier=mult,
                               exact_seconds=table_seconds, cells=cells, equal_time=equal_time)
                    rows.append(row)
                    print_row(row)
                    sys.stdout.flush()
    return rows


def print_row(row: dict) -> None:
    c, e = row["cells"], row["equal_time"]
    s = c["structured"]
    best_budget = min(GENERIC, key=lambda m: c[m]["mis"])
    best_time = min(GENERIC, key=lambda m: e[m]["mis"])
    print(f"{row['game']:9s} n={row['n']:2d} {row['utility']:19s} {row['multiplier']:2d}·n  "
          f"structured {100 * s['mis']:6.3f}% (cov {s['coverage']:.2f}, {s['seconds']:.2f} s) | "
          + " ".join(f"{m} {100 * c[m]['mis']:6.2f}%" for m in GENERIC)
          + f" | same evals: best {best_budget} ÷ structured = {c[best_budget]['mis'] / max(s['mis'], 1e-12):5.1f}×"
          + f" | same time: best {best_time} ({e[best_time]['evaluations']:.0f} evals) "
          f"{100 * e[best_time]['mis']:.3f}% = {e[best_time]['mis'] / max(s['mis'], 1e-12):5.1f}×")


def show(paths: list[str]) -> None:
    """The docs/measurements.md tables from saved results: misallocation of `structured` against the best generic
    estimator at the same evaluations and at the same wall time, per game, n and utility."""
    rows = [r for path in paths for r in json.loads((RESULTS / path).read_text()).get("exact_truth", [])]
    print("misallocated share of the pool, mean over seeds (structured 95% CI coverage); best generic estimator "
          "at the same evaluations / at the same wall time, and how many times structured's error it has")
    print(f"{'game':9s} {'n':>3s} {'utility':19s} {'evals':>6s} {'structured':>17s} {'same evals: best':>29s} "
          f"{'same time: best (evals)':>38s}")
    for r in rows:
        c, e = r["cells"], r["equal_time"]
        s_ = c["structured"]
        b = min(GENERIC, key=lambda m: c[m]["mis"])
        t = min(GENERIC, key=lambda m: e[m]["mis"])
        ratio = lambda x: f"{x / s_['mis']:.1f}×" if s_["mis"] > 0 else "—"  # noqa: E731
        print(f"{r['game']:9s} {r['n']:3d} {r['utility']:19s} {r['multiplier']:3d}·n {100 * s_['mis']:7.3f}% ({s_['coverage']:.2f}) "
              f"{b:>12s} {100 * c[b]['mis']:6.2f}% {ratio(c[b]['mis']):>6s} "
              f"{t:>12s} ({e[t]['evaluations']:>7.0f}) {100 * e[t]['mis']:6.3f}% {ratio(e[t]['mis']):>6s}")


def one_scale_run(n: int, utility_name: str, budget: int, seed: int, reference_factor: int) -> dict:
    """Part 2 for one n, in this process (the parent reads peak RSS of a fresh process)."""
    D = realistic_score_matrix(n, 1000, seed=0)
    utility = coalition_utility_fn(D, utility=utility_name, composition="sum", beta=BETA)
    r, seconds = run(utility, n, "structured", budget, seed, target=0.01)
    out = dict(n=n, utility=utility_name, seconds=seconds, stopped_because=r.stopped_because,
               evaluations=r.n_evaluations, bound=r.misallocation_bound,
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if reference_factor:
        ref, ref_seconds = run(utility, n, "structured", reference_factor * r.n_evaluations, 10**6 + seed)
        out.update(reference_factor=reference_factor, reference_seconds=ref_seconds,
                   realised=float(misallocation(r.values, ref.values)),
                   reference_bound=ref.misallocation_bound, values=r.values.tolist(),
                   ci=[r.ci_low.tolist(), r.ci_high.tolist()], reference=ref.values.tolist())
    return out


def part_two(args) -> list[dict]:
    rows = []
    for n in args.scale_sizes:
        for name in UTILITIES:
            factor = args.reference_factor if n <= 100 else args.large_reference_factor
            command = [sys.executable, __file__, "--one", str(n), name, str(args.scale_budget * n), "0", str(factor)]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                rows.append(dict(n=n, utility=name, error=f"no result within --timeout {args.timeout} s"))
                print(f"n={n} {name}: no result within {args.timeout} s")
                continue
            if done.returncode != 0:
                rows.append(dict(n=n, utility=name, error=done.stderr[-500:]))
                print(f"n={n} {name}: failed: {done.stderr[-300:]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"n={n:5d} {name:19s} {row['seconds']:8.2f} s  stopped: {row['stopped_because']:6s} "
                  f"evals {row['evaluations']:>9,}  bound {100 * row['bound']:.2f}%  peak RSS {row['peak_rss_mb']:.0f} MB"
                  + (f"  realised vs reference (×{row['reference_factor']}) {100 * row['realised']:.2f}%"
                     if "realised" in row else ""))
            sys.stdout.flush()
    return rows


def coverage_at(args, n: int) -> dict:
    """95% CI coverage of a long-run reference over seeds, n owners, both utilities, at a fixed budget
    (--coverage-budget × n evaluations per run; the reference: --coverage-reference-factor × that)."""
    out = {}
    D = realistic_score_matrix(n, 1000, seed=0)
    budget = args.coverage_budget * n
    for name in UTILITIES:
        utility = coalition_utility_fn(D, utility=name, composition="sum", beta=BETA)
        runs = [run(utility, n, "structured", budget, seed)[0] for seed in range(args.coverage_seeds)]
        spent = int(np.mean([r.n_evaluations for r in runs]))
        reference = run(utility, n, "structured", args.coverage_reference_factor * spent, 10**6)[0].values
        covered = [np.mean((r.ci_low <= reference) & (reference <= r.ci_high)) for r in runs]
        realised = [misallocation(r.values, reference) for r in runs]
        out[name] = dict(n=n, coverage=float(np.mean(covered)), seeds=args.coverage_seeds, mean_evaluations=spent,
                         realised_mean=float(np.mean(realised)), bound_held=float(np.mean(
                             [m <= r.misallocation_bound for m, r in zip(realised, runs)])))
        print(f"n={n} {name:19s} {spent} evaluations per run: CI coverage of the ×{args.coverage_reference_factor} reference "
              f"over {args.coverage_seeds} seeds {100 * out[name]['coverage']:.1f}%  realised misallocation "
              f"{100 * out[name]['realised_mean']:.2f}% (≤ reported bound in {100 * out[name]['bound_held']:.0f}%)")
        sys.stdout.flush()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("1", "2", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 20, 24])
    parser.add_argument("--games", nargs="+", default=["synthetic", "demo"], choices=("synthetic", "demo"))
    parser.add_argument("--utilities", nargs="+", default=list(UTILITIES), choices=UTILITIES,
                        help="utilities of part 1")
    parser.add_argument("--structured-config", metavar="JSON",
                        help="part 1: StructuredConfig fields for the structured estimator, e.g. "
                             "'{\"all_positions\": false}'")
    parser.add_argument("--scale-sizes", type=int, nargs="*", default=[100, 1000, 5000])
    parser.add_argument("--coverage-sizes", type=int, nargs="*", default=[100],
                        help="owner counts of the CI coverage check (none: skip it)")
    parser.add_argument("--scale-budget", type=int, default=2000, help="evaluation budget per owner in part 2")
    parser.add_argument("--reference-factor", type=int, default=100)
    parser.add_argument("--large-reference-factor", type=int, default=0, help="0: no reference above n = 100")
    parser.add_argument("--coverage-seeds", type=int, default=100)
    parser.add_argument("--coverage-reference-factor", type=int, default=100)
    parser.add_argument("--coverage-budget", type=int, default=20,
                        help="evaluations per owner of each coverage run (a fixed budget, no stopping)")
    parser.add_argument("--out", default="scale.json", help="file name under bench/results/")
    parser.add_argument("--timeout", type=int, default=3600)
    parser.add_argument("--one", nargs=5, metavar=("N", "UTILITY", "BUDGET", "SEED", "REFERENCE"))
    parser.add_argument("--show", nargs="+", metavar="FILE", help="print the tables of saved results and stop")
    args = parser.parse_args()
    if args.show:
        show(args.show)
        return
    if args.one:
        n, name, budget, seed, factor = args.one
        print(json.dumps(one_scale_run(int(n), name, int(budget), int(seed), int(factor))))
        return
    report = dict(meta=dict(seeds=args.seeds, beta=BETA, date=time.strftime("%Y-%m-%d"), games=args.games,
                            sizes=args.sizes, utilities=args.utilities, structured_config=args.structured_config,
                            threads=os.environ.get("OMP_NUM_THREADS", "default"),
                            loadavg=os.getloadavg()))
    if args.part in ("1", "both"):
        report["exact_truth"] = part_one(args)
    if args.part in ("2", "both"):
        if args.scale_sizes:
            report["scale"] = part_two(args)
        for n in args.coverage_sizes:
            report[f"coverage_n{n}"] = coverage_at(args, n)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
