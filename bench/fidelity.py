"""How faithful is language-model arithmetic? Every coalition of 4 demo owners, trained for real.

Demo domain (valuation.engine.synthetic): owners clean_helpful, clean_harmless, noisy and
adversarial, a 200-pair eval set, the tiny base model. Each owner gets a DPO model
(the round's training config); then all 16 coalitions are trained both ways —
sequential DPO (each member's data in turn, each stage referenced to the previous
policy: what `sum` approximates) and pooled DPO (one run on the union: what `mean`
approximates) — scored on the eval set, and compared with the arithmetic utilities.

Prints, for utility × composition × trained mode: Pearson r, Spearman ρ and the MAE over
the 16 coalitions, the same correlations over the 11 coalitions of ≥ 2 owners, the
Spearman ρ of the two Shapley vectors and the largest payout difference (share of the
pool, clip policy). Writes bench/results/fidelity.json (or --out).

    .venv/bin/python bench/fidelity.py [--epochs 4] [--lr 1e-3] [--beta 0.1] [--loss sigmoid sft]
                                       [--n-pairs 150] [--n-eval 200] [--work var/bench/fidelity]

Models are content-addressed under --work, so a re-run with the same settings trains nothing.
"""

from __future__ import annotations

import argparse
import warnings
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from valuation.engine import synthetic  # noqa: E402
from valuation.engine.base_model import build_base_model  # noqa: E402
from valuation.engine.dpo import TrainingConfig  # noqa: E402
from valuation.engine.fidelity import MODES, Member, ModelRef, Setup, sample_coalitions, train_coalitions  # noqa: E402
from valuation.engine.fidelity_stats import compare  # noqa: E402
from valuation.engine.scoring import delta_matrix, score_model  # noqa: E402

OWNERS = synthetic.DEMO_OWNERS[:4]  # alice clean_helpful, bob clean_harmless, carol noisy, dave adversarial


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TrainingConfig().epochs)
    parser.add_argument("--lr", type=float, default=TrainingConfig().learning_rate)
    parser.add_argument("--beta", type=float, default=TrainingConfig().beta)
    parser.add_argument("--loss", nargs="+", default=list(TrainingConfig().loss_types),
                        help="TRL loss types, e.g. sigmoid sft (default) or sigmoid")
    parser.add_argument("--lora", action="store_true", help="LoRA adapters (sequential stages are merged before the next; bench/real_fidelity.py for real models)")
    parser.add_argument("--n-pairs", type=int, default=None, help="pairs per owner (default: the demo's, 150)")
    parser.add_argument("--n-eval", type=int, default=synthetic.DEMO_EVAL_PAIRS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "fidelity")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fidelity.json")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notices, once per model
    config = TrainingConfig(epochs=args.epochs, learning_rate=args.lr, beta=args.beta, loss_types=tuple(args.loss),
                            loss_weights=(1.0,) * len(args.loss), use_lora=args.lora, seed=args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = args.work / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(args.seed), encoding="utf-8")
    started = time.perf_counter()
    base = build_base_model(corpus, args.work / f"base-{args.seed}", seed=args.seed)
    timings = {"base_model": time.perf_counter() - started}
    members = [Member(name=f"{name} ({kind})",
                      pairs=tuple(synthetic.owner_pairs(kind, args.n_pairs or n_pairs,
                                                        synthetic.demo_owner_seed(args.seed, index))),
                      model_dir=args.work / "owners" / f"{name}-{_tag(config)}-{args.n_pairs or n_pairs}")
               for index, (name, kind, n_pairs) in enumerate(OWNERS)]
    eval_set = synthetic.eval_pairs(args.n_eval, args.seed % len(synthetic.EVAL_BLOCKS))
    scores = {}

    def score(ref: ModelRef):
        if ref.model_hash not in scores:
            scores[ref.model_hash] = score_model(ref.path, base.path, eval_set, batch_size=32)
        return scores[ref.model_hash]

    base_scores = score(ModelRef(base.path, base.model_hash))
    setup = Setup(base_dir=base.path, base_hash=base.model_hash, config=config, cache_dir=args.work / "coalitions")
    started = time.perf_counter()
    trained = train_coalitions(setup, members, sample_coalitions(len(members), None), modes=tuple(args.modes),
                               score=score, base_scores=base_scores,
                               on_progress=lambda d, t: print(f"  {d}/{t} models trained or scored", flush=True)
                               if d == t or d % 8 == 0 else None)
    timings["coalitions"] = time.perf_counter() - started
    owner_hashes = [trained.models[args.modes[0]][1 << i] for i in range(len(members))]
    D = delta_matrix(base_scores, [scores[h] for h in owner_hashes])
    sizes = np.array([len(m.pairs) for m in members], dtype=np.int64)
    report = compare(D, sizes, [m.name for m in members], beta=config.beta, trained=trained)
    print_table(report, config, trained, timings)
    write(args, config, report, trained, timings, D)
    return 0


def _tag(config: TrainingConfig) -> str:
    from valuation.engine.hashing import config_hash

    return config_hash(config)[:12]


def _fmt(x) -> str:
    return "   —  " if x is None else f"{x:+.3f}"


def print_table(report: dict, config: TrainingConfig, trained, timings: dict) -> None:
    print(f"\nconfig: epochs={config.epochs} lr={config.learning_rate} beta={config.beta} "
          f"loss={'+'.join(config.loss_types)} lora={config.use_lora}; {trained.trained} fine-tunes now "
          f"({trained.seconds:.0f} s), {trained.reused} found on disk; "
          + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"{'utility':<20}{'comp':<6}{'trained':<12}{'pearson':>8}{'spearman':>9}{'MAE':>8}"
          f"{'r(≥2)':>8}{'ρ(≥2)':>8}{'ρ(φ)':>8}{'max Δshare':>11}  owner")
    for r in report["correlations"]:
        mark = " *" if r["matching"] else ""
        print(f"{r['utility']:<20}{r['composition']:<6}{r['mode'] + mark:<12}{_fmt(r['pearson']):>8}"
              f"{_fmt(r['spearman']):>9}{r['mae']:>8.4f}{_fmt(r['pearson_multi']):>8}{_fmt(r['spearman_multi']):>8}"
              f"{_fmt(r['shapley_spearman']):>8}{r['max_payout_diff']:>11.3f}  {r['max_payout_diff_owner']}")
    print("* the matching pair (sum ↔ sequential, mean ↔ pooled); (≥2): coalitions of two or more owners only")
    for s in report["shapley"]:
        if s["utility"] == "preference_accuracy" and MATCH.get(s["composition"]) == s["mode"]:
            print(f"φ {s['composition']}/{s['mode']}: " + ", ".join(
                f"{o} {a:+.4f}→{t:+.4f}" for o, a, t in zip(s["owners"], s["arithmetic"], s["trained"])))


MATCH = {"sum": "sequential", "mean": "pooled"}


def write(args, config, report, trained, timings, D) -> None:
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "config": asdict(config),
               "timings": timings, "trained": trained.trained, "reused": trained.reused,
               "D_mean": D.mean(axis=1).tolist(), **report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
