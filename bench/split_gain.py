"""What does splitting one owner's *fresh* data over k payees earn? (issue 24, "Integrity of the payout")

The demo's five owners (valuation/engine/synthetic.DEMO_OWNERS, the demo's tiny base model, eval set
and training config) plus one extra clean owner with 160 fresh pairs that nobody else has (the
`clean_mix` generator on an owner block no demo owner uses). That owner's pairs are cut into k = 1, 2,
3, 5 disjoint, (nearly) equal parts, each part a payee of its own. One DPO model per distinct data set
(content-addressed: the honest owners are trained once per seed and reused for every k; each part is
its own data, so its own model), every model scored on the eval set, and then for each k, each exact
utility (`preference_accuracy`, `bt_loglik`), each composition (`sum`, `mean`) and each allocation
policy (valuation/engine/payouts.POLICIES) the pool of 1,000 is paid exactly as a round pays it.

    split gain = (total payout to the k parts) / (payout to the owner at k = 1)

Printed as a markdown table (mean and range over seeds) with the honest owners' payouts; the rows
and the score matrices go to bench/results/split_gain.json, so policies can be re-measured on the
same models (`--from-json`) without training again.

    OMP_NUM_THREADS=1 .venv/bin/python bench/split_gain.py [--seeds 0 1 2] [--ks 1 2 3 5] [--work var/bench/split_gain]

`split_gain(seeds=..., ks=..., work=...)` is the importable entry point (bench/gaming.py calls it): it
trains what is not cached and returns the rows; `summary_table(rows, names)` formats them.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from valuation.engine import synthetic  # noqa: E402
from valuation.engine.base_model import build_base_model  # noqa: E402
from valuation.engine.dpo import TrainingConfig, train_owner_model  # noqa: E402
from valuation.engine.hashing import pairs_hash  # noqa: E402
from valuation.engine.allocation import payout_values  # noqa: E402
from valuation.engine.payouts import POLICIES, split_pool  # noqa: E402
from valuation.engine.scoring import delta_matrix, score_model  # noqa: E402
from valuation.engine.shapley import exact_shapley  # noqa: E402
from valuation.engine.utility import all_coalition_utilities  # noqa: E402

UTILITIES = ("preference_accuracy", "bt_loglik")
COMPOSITIONS = ("sum", "mean")
KS = (1, 2, 3, 5)
FRESH_KIND = "clean_mix"
FRESH_PAIRS = 160
POOL = Decimal("1000.00")
THRESHOLD = 1.05  # the bar: a split that earns more than 5% more is a gain to remove
DEFAULT_OUT = ROOT / "bench" / "results" / "split_gain.json"


def fresh_owner_seed(seed: int) -> int:
    """An owner block no demo owner of any demo seed in 0..16 draws from (they use 0..84)."""
    return len(synthetic.OWNER_BLOCKS) - 1 - (seed % 2)


def split_parts(pairs: list, k: int) -> list[list]:
    """k disjoint parts, sizes differing by at most one, in the upload's order."""
    bounds = np.linspace(0, len(pairs), k + 1).round().astype(int)
    return [pairs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def prepare_seed(seed: int, ks, work: Path, log=print) -> dict:
    """Train and score every distinct data set of one seed; the score rows and sizes of each k."""
    timings = {"train": 0.0, "score": 0.0, "trained_models": 0}
    started = time.perf_counter()
    corpus = work / f"corpus-{seed}.txt"
    corpus.write_text(synthetic.corpus_text(seed), encoding="utf-8")
    base = build_base_model(corpus, work / f"base-{seed}", seed=seed)
    timings["base_model"] = time.perf_counter() - started
    config = TrainingConfig(seed=seed)  # a round's seed drives every owner's training alike
    eval_set = synthetic.eval_pairs(synthetic.DEMO_EVAL_PAIRS, seed % len(synthetic.EVAL_BLOCKS))
    t0 = time.perf_counter()
    base_scores = score_model(base.path, base.path, eval_set, batch_size=32)
    timings["score"] += time.perf_counter() - t0
    rows: dict[str, np.ndarray] = {}  # data hash -> its D row: one model per distinct data set

    def row(pairs: list) -> np.ndarray:
        digest = pairs_hash(pairs)
        if digest not in rows:
            t1 = time.perf_counter()
            result = train_owner_model(base.path, pairs, work / f"models-{seed}" / digest[:16], config,
                                       base_model_hash=base.model_hash)
            t2 = time.perf_counter()
            timings["trained_models"] += not result.cached
            rows[digest] = delta_matrix(base_scores, [score_model(result.path, base.path, eval_set,
                                                                  batch_size=32)])[0]
            timings["train"] += t2 - t1
            timings["score"] += time.perf_counter() - t2
        return rows[digest]

    honest_names, honest_rows, honest_sizes = [], [], []
    for index, (name, kind, n_pairs) in enumerate(synthetic.DEMO_OWNERS):
        pairs = synthetic.owner_pairs(kind, n_pairs, synthetic.demo_owner_seed(seed, index))
        honest_names.append(name)
        honest_rows.append(row(pairs))
        honest_sizes.append(len(pairs))
        log(f"  seed {seed}: {name} ready")
    fresh = synthetic.owner_pairs(FRESH_KIND, FRESH_PAIRS, fresh_owner_seed(seed))
    games = {}
    for k in ks:
        parts = split_parts(fresh, k)
        part_rows = [row(p) for p in parts]
        games[k] = {"D": np.vstack([*honest_rows, *part_rows]),
                    "sizes": np.array([*honest_sizes, *(len(p) for p in parts)], dtype=np.float64)}
        log(f"  seed {seed}: k = {k} ready")
    timings["total"] = time.perf_counter() - started
    return {"seed": seed, "names": honest_names, "beta": config.beta, "games": games, "timings": timings}


def value_game(D: np.ndarray, sizes: np.ndarray, *, utility: str, composition: str, beta: float,
               policy: str) -> tuple[np.ndarray, list[Decimal]]:
    """The values the payout policy is applied to, and the payouts of the pool — a round's valuing stage."""
    table = all_coalition_utilities(D, utility=utility, composition=composition, beta=beta, sizes=sizes, n_jobs=1)
    values = payout_values(policy, shapley=exact_shapley(table), scores=D, sizes=sizes, utility=utility,
                           composition=composition, beta=beta)
    return values, split_pool(values, POOL, policy=policy).amounts


def measure_split_gain(prepared: list[dict], *, policies=POLICIES, utilities=UTILITIES,
                       compositions=COMPOSITIONS) -> list[dict]:
    """One row per (seed, policy, utility, composition, k): the parts' total payout, the gain and the honest payouts."""
    rows = []
    for run, policy, utility, composition in itertools.product(prepared, policies, utilities, compositions):
        names, n_honest = run["names"], len(run["names"])
        baseline = None
        for k in sorted(run["games"]):
            game = run["games"][k]
            started = time.perf_counter()
            values, amounts = value_game(game["D"], game["sizes"], utility=utility, composition=composition,
                                         beta=run["beta"], policy=policy)
            parts_paid = sum(amounts[n_honest:], Decimal(0))
            if k == min(run["games"]):
                baseline = parts_paid
            rows.append({
                "seed": run["seed"], "policy": policy, "utility": utility, "composition": composition, "k": k,
                "parts_paid": str(parts_paid), "parts_values": [float(x) for x in values[n_honest:]],
                "gain": float(parts_paid / baseline) if baseline else None,
                "honest": {name: str(a) for name, a in zip(names, amounts[:n_honest])},
                "paid": str(sum(amounts, Decimal(0))), "seconds": time.perf_counter() - started,
            })
    return rows


def split_gain(*, seeds=(0,), ks=KS, work: Path = ROOT / "var" / "bench" / "split_gain", policies=POLICIES,
               log=print) -> list[dict]:
    """Train (or reuse) every model of `seeds` under `work` and return `measure_split_gain`'s rows."""
    work.mkdir(parents=True, exist_ok=True)
    return measure_split_gain([prepare_seed(seed, ks, work, log=log) for seed in seeds], policies=policies)


def summary_table(rows: list[dict], names: list[str]) -> str:
    """Markdown: per (policy, utility, composition, k) the gain's mean [min, max] over seeds and mean payouts."""
    keyed: dict[tuple, list[dict]] = {}
    for r in rows:
        keyed.setdefault((r["policy"], r["utility"], r["composition"], r["k"]), []).append(r)
    head = ("| policy | utility | composition | k | split gain mean [min, max] | parts paid | "
            + " | ".join(names) + " | pool paid |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (policy, utility, composition, k), group in keyed.items():
        gains = [r["gain"] for r in group if r["gain"] is not None]
        gain = f"{np.mean(gains):.3f} [{min(gains):.3f}, {max(gains):.3f}]" if gains else "n/a (k=1 paid 0)"
        if gains and max(gains) > THRESHOLD:
            gain = f"**{gain}**"
        paid = np.mean([float(r["parts_paid"]) for r in group])
        honest = " | ".join(f"{np.mean([float(r['honest'][n]) for r in group]):.2f}" for n in names)
        pool = np.mean([float(r["paid"]) for r in group])
        lines.append(f"| {policy} | {utility} | {composition} | {k} | {gain} | {paid:.2f} | {honest} | {pool:.2f} |")
    return "\n".join(lines)


def _games_to_json(prepared: list[dict]) -> list[dict]:
    return [{**{key: run[key] for key in ("seed", "names", "beta", "timings")},
             "games": {str(k): {"D": g["D"].tolist(), "sizes": g["sizes"].tolist()} for k, g in run["games"].items()}}
            for run in prepared]


def _games_from_json(runs: list[dict]) -> list[dict]:
    return [{**run, "games": {int(k): {"D": np.array(g["D"]), "sizes": np.array(g["sizes"])}
                              for k, g in run["games"].items()}} for run in runs]


def _write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload) + "\n")
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS))
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "split_gain")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-value the score matrices saved by an earlier run instead of training")
    args = parser.parse_args()
    if 1 not in args.ks:
        parser.error("--ks must include 1: the gain is measured against the unsplit owner")
    started = time.perf_counter()
    if args.from_json:
        prepared = _games_from_json(json.loads(args.from_json.read_text())["games"])
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        prepared = []
        for seed in args.seeds:
            prepared.append(prepare_seed(seed, args.ks, args.work))
            # Saved after every seed: a long run stopped part way still leaves its score matrices.
            _write(args.out, {"threshold": THRESHOLD, "rows": [], "games": _games_to_json(prepared)})
    prepare_seconds = time.perf_counter() - started
    started = time.perf_counter()
    rows = measure_split_gain(prepared, policies=args.policies)
    value_seconds = time.perf_counter() - started
    names = prepared[0]["names"]
    print(f"\nSplit gain of one clean owner's {FRESH_PAIRS} fresh pairs over k payees; demo owners "
          f"{', '.join(names)}; pool {POOL}; seeds {[r['seed'] for r in prepared]}")
    print(summary_table(rows, names))
    for run in prepared:
        t = run["timings"]
        print(f"seed {run['seed']}: {t['trained_models']} models trained in {t['train']:.1f} s, scoring "
              f"{t['score']:.1f} s, total {t['total']:.1f} s (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")
    print(f"preparing {prepare_seconds:.1f} s; valuing {len(rows)} games {value_seconds:.1f} s")
    _write(args.out, {"threshold": THRESHOLD, "rows": rows, "games": _games_to_json(prepared),
                      "prepare_seconds": prepare_seconds, "value_seconds": value_seconds})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
