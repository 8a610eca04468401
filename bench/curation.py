"""Do cheap pair values transfer to DPO, and does SHED curation beat random data? Trained for real.

The demo domain of bench/pair_domain.py (five owners, 20% of alice's labels reversed; carol 30%,
dave all reversed). Pair values and clusters come from the round's data-quality pipeline on the
validation eval set; every DPO model (the rounds' training config) is judged on a disjoint
200-pair *test* set by both round utilities: preference_accuracy and bt_loglik of the model's
implicit reward (docs/design.md §2, one-owner coalition).

1. Value transfer (TS-DShapley's claim): per owner, DPO on all of their pairs, on all but their
   lowest-valued q%, and on all but a random q% (several seeds).
2. Curation (SHED): DPO on 10/20/30% of the pool chosen by QOCS, QWCS (τ = 1), the highest pair
   values (TS-DShapley selection), and at random (several seeds), against the full pool.

    .venv/bin/python bench/curation.py [--q 0.2] [--fractions 0.1 0.2 0.3] [--random-seeds 0 1 2]
                                       [--work var/bench/pairs]

Models are content-addressed under --work/dpo, so a re-run trains nothing already trained.
Writes bench/results/curation.json.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pair_domain import ROOT, assess, build, embed, lowest

from valuation.engine.curation import curate  # noqa: E402
from valuation.engine.data_quality import config_from_options  # noqa: E402
from valuation.engine.dpo import TrainingConfig, train_owner_model  # noqa: E402
from valuation.engine.hashing import config_hash, pairs_hash  # noqa: E402
from valuation.engine.scoring import delta_matrix, score_model  # noqa: E402
from valuation.engine.utility import UTILITIES, utility_from_margins  # noqa: E402

TAU = 1.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--q", type=float, default=0.2, help="share of each owner's pairs dropped")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed", type=int, default=0, help="pair-value / cluster seed")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "pairs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "curation.json")
    return parser.parse_args()


class Trainer:
    """Train (or find on disk) one DPO model per distinct training set and score it on the test set."""

    def __init__(self, domain, work: Path, config: TrainingConfig):
        self.domain, self.work, self.config = domain, work, config
        self.base_scores = score_model(domain.base.path, domain.base.path, domain.test, batch_size=32)
        self.trained, self.seconds = 0, 0.0

    def utilities(self, pairs) -> dict:
        out = self.work / "dpo" / f"{pairs_hash(pairs)[:16]}-{config_hash(self.config)[:8]}"
        result = train_owner_model(self.domain.base.path, pairs, out, self.config,
                                   base_model_hash=self.domain.base.model_hash)
        if not result.cached:
            self.trained += 1
            self.seconds += result.seconds
        scores = score_model(out, self.domain.base.path, self.domain.test, batch_size=32)
        D = delta_matrix(self.base_scores, [scores])
        return {u: float(utility_from_margins(D, utility=u, beta=self.config.beta)[0]) for u in UTILITIES}


def _mean(rows: list[dict]) -> dict:
    return {u: float(np.mean([r[u] for r in rows])) for u in UTILITIES} | \
           {f"{u}_sd": float(np.std([r[u] for r in rows], ddof=1)) if len(rows) > 1 else 0.0 for u in UTILITIES}


def value_transfer(domain, values, trainer, args) -> list[dict]:
    rows = []
    for i, name in enumerate(domain.names):
        idx = np.flatnonzero(domain.owner == i)
        drop = set(lowest(values, idx, args.q).tolist())
        keep_low = [domain.pairs[j] for j in idx if j not in drop]
        full = trainer.utilities([domain.pairs[j] for j in idx])
        low = trainer.utilities(keep_low)
        randoms = []
        for seed in args.random_seeds:
            dropped = set(np.random.default_rng([seed, i]).choice(idx, size=len(drop), replace=False).tolist())
            randoms.append(trainer.utilities([domain.pairs[j] for j in idx if j not in dropped]))
        rows.append({"owner": name, "kind": domain.kinds[i], "n": len(idx), "dropped": len(drop),
                     "reversed_dropped": int(domain.reversed[list(drop)].sum()), "reversed": int(domain.reversed[idx].sum()),
                     "full": full, "drop_lowest": low, "drop_random": _mean(randoms)})
        print(f"  value transfer: {name} done ({trainer.trained} trained so far)", flush=True)
    return rows


def curation(domain, assessment, trainer, args) -> list[dict]:
    labels, cluster_values = assessment.clusters.labels, assessment.clusters.values
    n = len(domain.pairs)
    rows = [{"fraction": 1.0, "size": n, "method": "full pool", "reversed_share": float(domain.reversed.mean()),
             **trainer.utilities(domain.pairs)}]
    for fraction in args.fractions:
        size = int(round(fraction * n))
        picks = {"qocs": curate(labels, cluster_values, size, method="qocs", seed=args.seed),
                 "qwcs": curate(labels, cluster_values, size, method="qwcs", tau=TAU, seed=args.seed),
                 "top pair values": np.sort(np.argsort(-assessment.values.values, kind="stable")[:size])}
        for method, picked in picks.items():
            rows.append({"fraction": fraction, "size": size, "method": method,
                         "reversed_share": float(domain.reversed[picked].mean()),
                         **trainer.utilities([domain.pairs[j] for j in picked])})
        randoms = [np.sort(np.random.default_rng([seed, size]).choice(n, size=size, replace=False))
                   for seed in args.random_seeds]
        rows.append({"fraction": fraction, "size": size, "method": "random",
                     "reversed_share": float(np.mean([domain.reversed[r].mean() for r in randoms])),
                     **_mean([trainer.utilities([domain.pairs[j] for j in r]) for r in randoms])})
        print(f"  curation: {fraction:.0%} done ({trainer.trained} trained so far)", flush=True)
    return rows


def _sd(row: dict, u: str) -> str:
    return f" ± {row[u + '_sd']:.3f}" if u + "_sd" in row else ""


def print_tables(transfer, curated, args, timings) -> None:
    print("\nvalue transfer: each owner's DPO model on the test set; "
          f"drop = their lowest-valued {args.q:.0%} vs a random {args.q:.0%} (mean ± sd over {len(args.random_seeds)} seeds)")
    print(f"{'owner':<8}{'kind':<15}{'pairs':>6}{'rev. dropped':>13} | {'accuracy: all':>14}{'−lowest':>9}"
          f"{'−random':>16} | {'bt_loglik: all':>15}{'−lowest':>9}{'−random':>16}")
    for r in transfer:
        f, lo, ra = r["full"], r["drop_lowest"], r["drop_random"]
        print(f"{r['owner']:<8}{r['kind']:<15}{r['n']:>6}{str(r['reversed_dropped']) + '/' + str(r['reversed']):>13} | "
              f"{f['preference_accuracy']:>14.3f}{lo['preference_accuracy']:>9.3f}"
              f"{ra['preference_accuracy']:>9.3f}{_sd(ra, 'preference_accuracy'):>7} | "
              f"{f['bt_loglik']:>15.4f}{lo['bt_loglik']:>9.4f}{ra['bt_loglik']:>9.4f}{_sd(ra, 'bt_loglik'):>7}")
    print(f"\ncuration: one DPO model on a subset of the {curated[0]['size']}-pair pool, test set "
          f"(random: mean ± sd over {len(args.random_seeds)} seeds; QWCS τ = {TAU})")
    print(f"{'subset':>7}{'pairs':>6}  {'method':<16}{'reversed':>9}{'accuracy':>10}{'':>8}{'bt_loglik':>11}")
    for r in curated:
        print(f"{r['fraction']:>7.0%}{r['size']:>6}  {r['method']:<16}{r['reversed_share']:>9.1%}"
              f"{r['preference_accuracy']:>10.3f}{_sd(r, 'preference_accuracy'):>8}{r['bt_loglik']:>11.4f}"
              f"{_sd(r, 'bt_loglik')}")
    print("timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


def main() -> int:
    args = parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    domain = build(args.work)
    z, z_val, _, embed_seconds = embed(domain, args.work)
    assessment, assess_seconds = assess(z, z_val, config_from_options({}, seed=args.seed))
    config = TrainingConfig()
    trainer = Trainer(domain, args.work, config)
    started = time.perf_counter()
    transfer = value_transfer(domain, assessment.values.values, trainer, args)
    curated = curation(domain, assessment, trainer, args)
    timings = {"embedding": embed_seconds, "pair values + clusters": assess_seconds,
               f"{trainer.trained} fine-tunes now": trainer.seconds, "total DPO + scoring": time.perf_counter() - started}
    print_tables(transfer, curated, args, timings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "training": asdict(config),
                                    "timings": timings, "value_transfer": transfer, "curation": curated}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
