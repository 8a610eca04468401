"""Sampled estimators on a 20-owner game: misallocated share of the pool vs evaluations.

Estimators: `structured` (at n = 20 an exactly solved lattice twin + control-variate permutations over
the cached scores; the twin is computed from the scores and costs wall time, not evaluations — the
seconds per run are in the JSON), KernelSHAP, antithetic permutation, stratified (SVARM) and plain permutation Monte Carlo.
The game is v(S) for preference_accuracy and bt_loglik (composition sum, β = 0.1) over a
(20 × 1000) score matrix — `games.realistic_score_matrix` until real cached scores
exist, or --scores D.npy. Exact Shapley values (2^20 table) are the truth. For each
estimator and budget n·{5, 10, 20, 50}, over --seeds seeds at a fixed budget (no
stopping rule), it reports the mean misallocated share ½Σ|s(φ̂) − s(φ)| with clip
shares (and the 90% quantile), the mean reported bound, and the 95% CI coverage.
A second table runs the stopping rule (target 1%, budget 50·n) and checks what it says.

Counting convention: an evaluation is one coalition handed to the utility. Every method,
plain permutation Monte Carlo included, evaluates v(∅) and v(N) once and reuses them,
so one order costs n − 1 evaluations; coalitions drawn twice are paid twice.

    .venv/bin/python bench/estimators.py [--seeds 50] [--scores D.npy] [--game-seed 0]

Prints the tables and writes bench/results/estimators.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from games import BETA, load_scores, realistic_score_matrix, table_utility  # noqa: E402

from valuation.engine.sampling import misallocation  # noqa: E402
from valuation.engine.shapley import estimate_shapley, exact_shapley  # noqa: E402
from valuation.engine.utility import all_coalition_utilities, coalition_utility_fn  # noqa: E402

# `structured` (the score-structure estimator, structured.py) beside the generic ones and the baseline.
METHODS = ("structured", "kernel", "permutation", "stratified", "plain_permutation")
MULTIPLIERS = (5, 10, 20, 50)
UTILITIES = ("preference_accuracy", "bt_loglik")
RESULTS = ROOT / "bench" / "results"


def one_cell(utility, truth: np.ndarray, method: str, budget: int, seeds: int) -> dict:
    """Misallocation, bound and coverage of one (method, budget) over `seeds` seeds."""
    n = truth.size
    mis, bounds, covered, spent = [], [], [], []
    start = time.perf_counter()
    for seed in range(seeds):
        r = estimate_shapley(utility, n, method=method, budget=budget, seed=seed, target=None)
        mis.append(misallocation(r.values, truth))
        bounds.append(r.misallocation_bound)
        covered.append(np.mean((r.ci_low <= truth) & (truth <= r.ci_high)))
        spent.append(r.n_evaluations)
    held = float(np.mean(np.array(mis) <= np.array(bounds)))
    return dict(method=method, budget=budget, mean=float(np.mean(mis)), q90=float(np.quantile(mis, 0.9)),
                bound=float(np.mean(bounds)), bound_held=held, coverage=float(np.mean(covered)),
                evaluations=float(np.mean(spent)), seconds_per_run=(time.perf_counter() - start) / seeds)


def stopping_rule(utility, truth: np.ndarray, method: str, seeds: int, target: float = 0.01) -> dict:
    """Run to the target (budget 2000·n): how often it stops, after how much, and honestly?"""
    n = truth.size
    runs = [estimate_shapley(utility, n, method=method, budget=2000 * n, seed=s, target=target)
            for s in range(seeds)]
    stopped = [r for r in runs if r.stopped_because == "target"]
    realised = np.array([misallocation(r.values, truth) for r in stopped])
    return dict(method=method, target=target, budget=2000 * n, stopped_on_target=len(stopped) / seeds,
                median_evaluations=float(np.median([r.n_evaluations for r in stopped])) if stopped else None,
                realised_within_target=float(np.mean(realised <= target)) if stopped else None,
                realised_max=float(realised.max()) if stopped else None)


def run(D: np.ndarray, seeds: int) -> dict:
    n = D.shape[0]
    out = {}
    for utility in UTILITIES:
        table = all_coalition_utilities(D, utility=utility, composition="sum", beta=BETA)
        truth, lookup = exact_shapley(table), table_utility(table)
        # The generic estimators see a black box (a table lookup: fast, same values); `structured`
        # needs the score structure itself.
        scores = coalition_utility_fn(D, utility=utility, composition="sum", beta=BETA)
        fns = {m: scores if m == "structured" else lookup for m in METHODS}
        cells = [one_cell(fns[m], truth, m, k * n, seeds) for m in METHODS for k in MULTIPLIERS]
        stops = [stopping_rule(fns[m], truth, m, seeds) for m in METHODS]
        out[utility] = dict(truth=truth.tolist(), paid_owners=int((truth > 0).sum()), cells=cells,
                            stopping=stops)
    return out


def print_tables(results: dict, n: int, seeds: int) -> None:
    for utility, res in results.items():
        print(f"\n{utility} (sum), n = {n}, {res['paid_owners']} owners with φ > 0; mean misallocated "
              f"share of the pool over {seeds} seeds [90% quantile] (mean reported bound)")
        print(f"{'estimator':<18}" + "".join(f"{f'{k}·n = {k * n}':>26}" for k in MULTIPLIERS))
        for method in METHODS:
            cells = [c for c in res["cells"] if c["method"] == method]
            print(f"{method:<18}" + "".join(f"{c['mean']:>9.2%} [{c['q90']:.2%}] ({c['bound']:.2%})"
                                            for c in cells))
        plain = {c["budget"]: c["mean"] for c in res["cells"] if c["method"] == "plain_permutation"}
        print("plain permutation's misallocation ÷ each estimator's (higher is better):")
        for method in METHODS[:-1]:
            print(f"  {method:<16}" + "".join(f"{plain[k * n] / _mean(res, method, k * n):>25.1f}×"
                                            for k in MULTIPLIERS))
        cover = "  ".join(f"{m} {np.mean([c['coverage'] for c in res['cells'] if c['method'] == m]):.0%}"
                          for m in METHODS)
        held = "  ".join(f"{m} {np.mean([c['bound_held'] for c in res['cells'] if c['method'] == m]):.0%}"
                         for m in METHODS)
        print(f"95% CI coverage (all budgets): {cover}")
        print(f"realised misallocation ≤ reported bound (all budgets): {held}")
        print("stopping rule, target 1% of the pool, budget 2000·n:")
        for stop in res["stopping"]:
            line = f"  {stop['method']:<18} stopped on target in {stop['stopped_on_target']:.0%} of seeds"
            if stop["median_evaluations"] is not None:
                line += (f", median {stop['median_evaluations']:.0f} evaluations; realised misallocation"
                         f" ≤ 1% in {stop['realised_within_target']:.0%} (max {stop['realised_max']:.2%})")
            print(line)


def _mean(res: dict, method: str, budget: int) -> float:
    return next(c["mean"] for c in res["cells"] if c["method"] == method and c["budget"] == budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--scores", help="an (n × T) .npy score matrix saved by the round's scoring")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--game-seed", type=int, default=0)
    args = parser.parse_args()
    D = load_scores(args.scores) if args.scores else realistic_score_matrix(args.n, args.T, args.game_seed)
    started = time.perf_counter()
    results = run(D, args.seeds)
    print_tables(results, D.shape[0], args.seeds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = dict(scores=args.scores or f"realistic_score_matrix({args.n}, {args.T}, seed={args.game_seed})",
                beta=BETA, seeds=args.seeds, seconds=time.perf_counter() - started,
                counting="coalitions handed to the utility; v(∅), v(N) once per estimate for every method")
    (RESULTS / "estimators.json").write_text(json.dumps(dict(meta=meta, results=results), indent=1))
    print(f"\nwrote {RESULTS / 'estimators.json'}")


if __name__ == "__main__":
    main()
