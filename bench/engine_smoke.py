"""End-to-end smoke benchmark of the valuation engine on the synthetic domain.

base model -> DPO per owner (clean, noisy, adversarial) -> score the eval set under
the base and every owner -> D = delta_matrix -> utilities of all 8 coalitions under
preference_accuracy and bt_loglik with `sum` and `mean` composition -> exact 3-player
Shapley values. The engine's promise is phi_clean > phi_noisy > 0 > phi_adversarial in
all four (utility, composition) combinations; this script checks it and prints
per-stage timings. Utilities and Shapley are computed inline with numpy so the
benchmark does not depend on the utility/shapley modules.

    .venv/bin/python bench/engine_smoke.py [--seeds 0 1 2] [--n-pairs 150] [--n-eval 200] [--demo]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from valuation.engine import synthetic  # noqa: E402
from valuation.engine.base_model import BaseModelConfig, build_base_model  # noqa: E402
from valuation.engine.dpo import TrainingConfig, train_owner_model  # noqa: E402
from valuation.engine.scoring import delta_matrix, score_model  # noqa: E402

SMOKE_OWNERS = (("clean", "clean_mix"), ("noisy", "noisy"), ("adversarial", "adversarial"))


def coalition_margins(D: np.ndarray, sizes: np.ndarray, composition: str) -> dict[int, np.ndarray]:
    """Margin M_S (T,) for every bitmask S (bit i = owner i)."""
    n = D.shape[0]
    out = {}
    for mask in range(1 << n):
        members = [i for i in range(n) if mask >> i & 1]
        if not members:
            out[mask] = np.zeros(D.shape[1])
            continue
        weights = np.ones(len(members)) if composition == "sum" else sizes[members] / sizes[members].sum()
        out[mask] = weights @ D[members]
    return out


def utility(margin: np.ndarray, name: str, beta: float) -> float:
    if name == "preference_accuracy":
        return float(np.mean(np.where(margin > 0, 1.0, np.where(margin == 0, 0.5, 0.0))))
    return float(np.mean(-np.logaddexp(0.0, -beta * margin)))  # mean log sigma(beta * M)


def exact_shapley(v: np.ndarray, n: int) -> np.ndarray:
    phi = np.zeros(n)
    for i in range(n):
        for mask in range(1 << n):
            if mask >> i & 1:
                continue
            size = bin(mask).count("1")
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            phi[i] += weight * (v[mask | 1 << i] - v[mask])
    return phi


def run_seed(seed: int, work: Path, args, timings: dict) -> dict:
    corpus = work / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(seed), encoding="utf-8")
    started = time.perf_counter()
    base = build_base_model(corpus, work / f"base-{seed}", seed=seed, config=BaseModelConfig(steps=args.base_steps))
    timings["base_model"] = time.perf_counter() - started
    config = TrainingConfig(seed=seed, use_lora=args.lora)
    owners = args.owners
    owner_dirs, sizes = [], []
    for index, (name, kind, n_pairs) in enumerate(owners):
        pairs = synthetic.owner_pairs(kind, n_pairs, seed * len(owners) + index)
        started = time.perf_counter()
        result = train_owner_model(base.path, pairs, work / f"owner-{seed}-{name}", config, base_model_hash=base.model_hash)
        timings[f"train_{name}"] = time.perf_counter() - started
        owner_dirs.append(result.path)
        sizes.append(n_pairs)
    eval_set = synthetic.eval_pairs(args.n_eval, seed % len(synthetic.EVAL_BLOCKS))
    started = time.perf_counter()
    base_scores = score_model(base.path, base.path, eval_set, batch_size=32)
    owner_scores = [score_model(path, base.path, eval_set, batch_size=32) for path in owner_dirs]
    timings["scoring"] = time.perf_counter() - started
    D = delta_matrix(base_scores, owner_scores)
    return {"base_metrics": base.metrics, "D": D, "sizes": np.array(sizes, dtype=float), "beta": config.beta}


def analyse(run: dict, names: list[str]) -> dict:
    D, n = run["D"], run["D"].shape[0]
    report = {"base_metrics": run["base_metrics"], "D_mean": D.mean(axis=1).tolist(), "D_frac_positive": (D > 0).mean(axis=1).tolist(), "combos": {}}
    for utility_name, composition in itertools.product(("preference_accuracy", "bt_loglik"), ("sum", "mean")):
        margins = coalition_margins(D, run["sizes"], composition)
        v = np.array([utility(margins[mask], utility_name, run["beta"]) for mask in range(1 << n)])
        phi = exact_shapley(v, n)
        report["combos"][f"{utility_name}/{composition}"] = {"v": v.tolist(), "phi": dict(zip(names, phi.tolist()))}
    return report


def ordering_holds(phi: dict) -> bool:
    return phi["clean"] > phi["noisy"] > 0 > phi["adversarial"]


def print_report(seed: int, report: dict, timings: dict, names: list[str]) -> None:
    print(f"\n=== seed {seed} ===")
    base = report["base_metrics"]
    print(f"base model: loss {base['loss_first']:.2f} -> {base['loss_last']:.3f} in {base['steps']} steps, threads={base.get('threads')}")
    print("timings (s): " + ", ".join(f"{k}={v:.1f}" for k, v in timings.items()) + f", total={sum(timings.values()):.1f}")
    for name, mean, pos in zip(names, report["D_mean"], report["D_frac_positive"]):
        print(f"  D[{name:<12}] mean={mean:+8.2f}  frac>0={pos:.3f}")
    for combo, result in report["combos"].items():
        v = " ".join(f"{x:+.3f}" for x in result["v"])
        phi = " ".join(f"{k}={x:+.4f}" for k, x in result["phi"].items())
        if len(names) == 3:
            phi += "  OK" if ordering_holds(result["phi"]) else "  ORDER VIOLATED"
        print(f"  {combo:<26} v=[{v}]\n  {'':<26} phi: {phi}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--n-pairs", type=int, default=150)
    parser.add_argument("--n-eval", type=int, default=200)
    parser.add_argument("--base-steps", type=int, default=BaseModelConfig().steps)
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters instead of full models")
    parser.add_argument("--demo", action="store_true", help="the 5 DEMO_OWNERS instead of clean/noisy/adversarial")
    parser.add_argument("--work", type=Path, default=None, help="keep artifacts here (default: a temp dir)")
    args = parser.parse_args()
    args.owners = list(synthetic.DEMO_OWNERS) if args.demo else [(n, k, args.n_pairs) for n, k in SMOKE_OWNERS]
    names = [name for name, _, _ in args.owners]
    results, all_ok = {}, True
    with tempfile.TemporaryDirectory(prefix="engine-smoke-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            timings: dict = {}
            report = analyse(run_seed(seed, work, args, timings), names)
            report["timings"] = timings
            print_report(seed, report, timings, names)
            if not args.demo:
                all_ok &= all(ordering_holds(r["phi"]) for r in report["combos"].values())
            results[str(seed)] = report
    out = ROOT / "bench" / "results" / ("engine_smoke_demo.json" if args.demo else "engine_smoke.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))
    if not args.demo:
        print(f"\nordering phi_clean > phi_noisy > 0 > phi_adversarial in every combination: {all_ok}")
    print(f"wrote {out}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
