"""Exact Shapley speed: all 2^n coalition utilities + exact Shapley values, n = 12 … 24.

For each n (T = 1000 eval pairs, `games.realistic_score_matrix` or --scores) and each
(utility, composition) — preference_accuracy and bt_loglik, sum and mean — this times
`all_coalition_utilities` + `exact_shapley` (float64, and float32 for bt_loglik with the
max |Δφ| against float64), the four together, and the plain vectorised numpy path
(`coalition_utility_fn` on every coalition, i.e. one matmul + logaddexp per block) as the
baseline. Peers on the same game (bt_loglik, sum, through the same batched utility):
shapiq's ExactComputer and pyDVL's combinatorial exact Shapley, each in its own process
with a time limit; a peer that cannot run is listed with the reason. Every n runs in a
fresh subprocess, so the reported peak RSS is that n's alone.

    .venv/bin/python bench/shapley_speed.py [--sizes 12 16 20 24] [--repeats 5] [--scores D.npy]

Prints the tables and writes bench/results/shapley_speed.json. Wall times are min and
median over --repeats; this VM has 2 cores that other jobs share, so medians are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from games import BETA, load_scores, realistic_score_matrix  # noqa: E402

from valuation.engine.shapley import exact_shapley  # noqa: E402
from valuation.engine.utility import all_coalition_utilities, coalition_utility_fn  # noqa: E402

COMBOS = [("preference_accuracy", "sum"), ("preference_accuracy", "mean"),
          ("bt_loglik", "sum"), ("bt_loglik", "mean")]
PEER_COMBO = ("bt_loglik", "sum")
RESULTS = ROOT / "bench" / "results"


def score_matrix(n: int, T: int, scores: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(n × T) scores and owner sizes: the first n rows of --scores, else the synthetic game."""
    D = load_scores(scores)[:n, :T] if scores else realistic_score_matrix(n, T, seed=n)
    sizes = np.random.default_rng(n).integers(50, 500, size=D.shape[0])
    return D, sizes


def timed(fn, repeats: int) -> tuple[float, float, object]:
    """(min, median) wall seconds over `repeats` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times)), result


def exact_values(D, sizes, utility, composition, precision="float64"):
    table = all_coalition_utilities(D, utility=utility, composition=composition, beta=BETA,
                                    sizes=sizes, precision=precision)
    return exact_shapley(table)


def plain_numpy(D, sizes, utility, composition):
    """The baseline: the batched set function on every coalition, then exact Shapley."""
    n = D.shape[0]
    fn = coalition_utility_fn(D, utility=utility, composition=composition, beta=BETA, sizes=sizes)
    table = np.empty(1 << n)
    bits = np.arange(n)
    for start in range(0, 1 << n, 1 << 16):
        masks = np.arange(start, min(start + (1 << 16), 1 << n))
        table[masks] = fn(((masks[:, None] >> bits) & 1).astype(bool))
    return exact_shapley(table)


def worker(n: int, args) -> dict:
    """All measurements for one n, in this (fresh) process."""
    D, sizes = score_matrix(n, args.T, args.scores)
    repeats = 1 if n >= 24 else args.repeats
    rows = []
    for utility, composition in COMBOS:
        best, median, phi = timed(lambda: exact_values(D, sizes, utility, composition), repeats)
        row = dict(utility=utility, composition=composition, f64_min=best, f64_median=median)
        if utility == "bt_loglik":
            b32, m32, phi32 = timed(lambda: exact_values(D, sizes, utility, composition, "float32"), repeats)
            row.update(f32_min=b32, f32_median=m32, f32_max_abs_err=float(np.abs(phi32 - phi).max()),
                       phi_scale=float(np.abs(phi).max()))
        if n <= args.plain_max_n:
            row["plain_s"] = timed(lambda: plain_numpy(D, sizes, utility, composition), 1)[0]
        rows.append(row)
    together = timed(lambda: [exact_values(D, sizes, u, c) for u, c in COMBOS], repeats)
    together32 = timed(lambda: [exact_values(D, sizes, u, c, "float32") for u, c in COMBOS], repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(n=n, T=D.shape[1], rows=rows, all_four_f64=together[:2], all_four_f32=together32[:2],
                peak_rss_mb=peak_mb)


def peer_worker(peer: str, n: int, args) -> dict:
    """One peer's exact Shapley on the bt_loglik/sum game; max |Δφ| against ours."""
    D, sizes = score_matrix(n, args.T, args.scores)
    fn = coalition_utility_fn(D, utility=PEER_COMBO[0], composition=PEER_COMBO[1], beta=BETA, sizes=sizes)
    ours = exact_values(D, sizes, *PEER_COMBO)
    start = time.perf_counter()
    theirs = run_shapiq(fn, n) if peer == "shapiq" else run_pydvl(fn, n)
    seconds = time.perf_counter() - start
    return dict(peer=peer, n=n, seconds=seconds, max_abs_diff=float(np.abs(theirs - ours).max()),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_shapiq(fn, n: int) -> np.ndarray:
    import shapiq

    values = shapiq.ExactComputer(n_players=n, game=lambda coalitions: fn(np.asarray(coalitions, bool)))(
        index="SV", order=1)
    return np.array([values[(i,)] for i in range(n)])


def run_pydvl(fn, n: int) -> np.ndarray:
    # pyDVL 0.9.2 still says np.float_ (removed in NumPy 2.0) and 0.10.0 pins numpy<2:
    # restore the alias in this bench-only process so the peer can run at all.
    if "float_" not in np.__dict__:
        np.float_ = np.float64
    from pydvl.value.games import Game
    from pydvl.value.shapley.naive import combinatorial_exact_shapley

    empty = float(fn(np.zeros((1, n), bool))[0])

    class ScoreGame(Game):  # a pyDVL game whose players are the owners
        def _score(self, model, X, y) -> float:
            # pyDVL scores the empty set as 0 without calling us, so shift v(∅) to 0.
            members = np.zeros((1, n), bool)
            members[0, np.asarray(X, dtype=np.int64).ravel()] = True
            return float(fn(members)[0]) - empty

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return combinatorial_exact_shapley(ScoreGame(n).u, n_jobs=1, progress=False).values


def run_subprocess(argv: list[str], timeout: float) -> dict:
    try:
        done = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return dict(skipped=f"did not finish within {timeout:.0f} s")
    if done.returncode != 0:
        return dict(skipped="failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:200])
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_results(sizes: list[int], ours: dict[int, dict], args) -> list[dict]:
    """Run each peer where it can finish; otherwise say why it was skipped."""
    out = []
    for peer, max_n in (("shapiq", args.shapiq_max_n), ("pyDVL", args.pydvl_max_n)):
        module = "shapiq" if peer == "shapiq" else "pydvl"
        try:
            __import__(module)
        except ImportError:
            out += [dict(peer=peer, n=n, skipped="not installed: pip install -r requirements-bench.txt")
                    for n in sizes]
            continue
        last = None
        for n in sizes:
            if n > max_n:
                out.append(dict(peer=peer, n=n, skipped=_projection(peer, last, n)))
                continue
            result = run_subprocess(["--peer", peer, "--worker", str(n), *_common(args)], args.peer_timeout)
            result.update(peer=peer, n=n)
            if "seconds" in result:
                result["ratio_to_ours"] = result["seconds"] / _ours_seconds(ours.get(n))
                last = result
            out.append(result)
    return out


def _projection(peer: str, last: dict | None, n: int) -> str:
    if last is None:
        return "not attempted (no smaller run to project from)"
    # Both peers do O(n·2^n) work on the 2^n values (pyDVL: that many Python calls).
    factor = (n << n) / (last["n"] << last["n"])
    return (f"not attempted: projected from n = {last['n']} at ≈ {last['seconds'] * factor:,.0f} s"
            f" and ≈ {last['peak_rss_mb'] * (2 ** (n - last['n'])) / 1024:,.1f} GB peak RSS"
            if peer == "shapiq" else
            f"not attempted: {n}·2^{n - 1} Python-level utility calls, projected from n = {last['n']}"
            f" at ≈ {last['seconds'] * factor / 3600:,.1f} h")


def _ours_seconds(result: dict | None) -> float:
    row = next(r for r in result["rows"] if (r["utility"], r["composition"]) == PEER_COMBO)
    return row["f64_min"]


def _common(args) -> list[str]:
    extra = ["--T", str(args.T), "--repeats", str(args.repeats), "--plain-max-n", str(args.plain_max_n)]
    return extra + (["--scores", args.scores] if args.scores else [])


def print_tables(ours: dict[int, dict], peers: list[dict]) -> None:
    print("\nExact: all 2^n utilities + exact Shapley values, wall seconds min / median "
          "(T = 1000; f32 = float32 working precision for bt_loglik)")
    print(f"{'n':>3} {'utility':<20}{'comp':<5} {'float64':>15} {'float32':>15} {'f32 max|Δφ|':>12}"
          f" {'plain numpy':>12} {'speed-up':>9}")
    for n, result in ours.items():
        for r in result["rows"]:
            f32 = f"{r['f32_min']:.3f} / {r['f32_median']:.3f}" if "f32_min" in r else "—"
            err = f"{r['f32_max_abs_err']:.1e}" if "f32_max_abs_err" in r else "—"
            plain = f"{r['plain_s']:.2f}" if "plain_s" in r else "—"
            ratio = f"{r['plain_s'] / r['f64_min']:.1f}×" if "plain_s" in r else "—"
            print(f"{n:>3} {r['utility']:<20}{r['composition']:<5} {r['f64_min']:7.3f} / {r['f64_median']:.3f}"
                  f" {f32:>15} {err:>12} {plain:>12} {ratio:>9}")
        f64, f32 = result["all_four_f64"], result["all_four_f32"]
        print(f"{n:>3} {'all four together':<25} {f64[0]:7.3f} / {f64[1]:.3f} {f32[0]:7.3f} / {f32[1]:.3f}"
              f"   peak RSS {result['peak_rss_mb']:,.0f} MB")
    print(f"\nPeers on the same game ({PEER_COMBO[0]}, {PEER_COMBO[1]}; same batched utility), same run")
    print(f"{'n':>3} {'peer':<8} {'seconds':>10} {'ours (f64)':>11} {'peer/ours':>10} {'max|Δφ|':>9}  note")
    for p in peers:
        ours_s = _ours_seconds(ours[p["n"]]) if p["n"] in ours else float("nan")
        if "seconds" in p:
            print(f"{p['n']:>3} {p['peer']:<8} {p['seconds']:10.2f} {ours_s:11.3f} {p['ratio_to_ours']:9.0f}×"
                  f" {p['max_abs_diff']:9.1e}")
        else:
            print(f"{p['n']:>3} {p['peer']:<8} {'—':>10} {ours_s:11.3f} {'—':>10} {'—':>9}  {p['skipped']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 16, 20, 24])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scores", help="an (n × T) .npy score matrix saved by the round's scoring")
    parser.add_argument("--plain-max-n", type=int, default=20, help="largest n for the plain numpy baseline")
    parser.add_argument("--shapiq-max-n", type=int, default=20)
    parser.add_argument("--pydvl-max-n", type=int, default=16)
    parser.add_argument("--peer-timeout", type=float, default=1200.0)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        result = peer_worker(args.peer, args.worker, args) if args.peer else worker(args.worker, args)
        print(json.dumps(result))
        return
    ours = {n: run_subprocess(["--worker", str(n), *_common(args)], 3600) for n in args.sizes}
    peers = [] if args.no_peers else peer_results(args.sizes, ours, args)
    print_tables(ours, peers)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = dict(machine=platform.processor() or platform.machine(), cores=len(__import__("os").sched_getaffinity(0)),
                numpy=np.__version__, scores=args.scores or "bench/games.py:realistic_score_matrix(n, T, seed=n)",
                beta=BETA, time=time.strftime("%Y-%m-%d %H:%M:%S"))
    (RESULTS / "shapley_speed.json").write_text(json.dumps(dict(meta=meta, ours=ours, peers=peers), indent=1))
    print(f"\nwrote {RESULTS / 'shapley_speed.json'}")


if __name__ == "__main__":
    main()
