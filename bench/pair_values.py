"""Do TS-DShapley pair values find bad labels? The demo domain with 20% of one owner's labels reversed.

bench/pair_domain.py: the five demo owners (carol 30% reversed, dave all reversed), with 20% of
alice's 150 labels reversed on purpose. Every pair is embedded by the tiny base model and valued
by the round's data-quality pipeline (engine/data_quality.assess_pairs) against a 200-pair
validation set. The check: among alice's lowest-valued 20% of pairs, the share that are the
planted reversals (precision) must be ≥ 0.8. Prints precision/recall over the lowest q% of
alice's pairs and of the whole pool and the flag rule's precision/recall, then repeats over
several seeds — each seed plants a different 20% of alice's labels and seeds the value
sampler — for both classifier utilities; writes bench/results/pair_values.json.

    .venv/bin/python bench/pair_values.py [--seeds 0 1 2 3 4] [--work var/bench/pairs]

Embeddings are cached under --work, so a re-run embeds nothing (the timing says so).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from pair_domain import PLANTED_OWNER, PLANTED_RATE, ROOT, assess, build, embed, lowest

from valuation.engine.data_quality import config_from_options  # noqa: E402

FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
TARGET = 0.8


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4],
                        help="each: which of alice's labels are reversed, and the pair-value sampler's seed")
    parser.add_argument("--utilities", nargs="+", default=["accuracy", "loglik"], choices=["accuracy", "loglik"])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "pairs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pair_values.json")
    return parser.parse_args()


def curve(values, idx, truth) -> list[dict]:
    out = []
    for q in FRACTIONS:
        low = lowest(values, idx, q)
        out.append({"q": q, "k": len(low), "precision": float(truth[low].mean()),
                    "recall": float(truth[low].sum() / max(1, truth[idx].sum()))})
    return out


def one_run(domain, z, z_val, utility: str, seed: int) -> dict:
    config = config_from_options({"classifier_utility": utility}, seed=seed)
    a, seconds = assess(z, z_val, config)
    values = a.values.values
    alice = np.flatnonzero(domain.owner == domain.names.index(PLANTED_OWNER))
    pool = np.arange(len(values))
    flagged_alice = alice[a.flagged[alice]]
    return {
        "utility": utility, "seed": seed, "seconds": seconds, "n_fits": a.values.n_fits, "chains": len(a.values.chains),
        "classifier_full": a.full_utility,
        "alice": curve(values, alice, domain.planted), "pool": curve(values, pool, domain.reversed),
        "alice_flag": {"n": len(flagged_alice), "precision": float(domain.planted[flagged_alice].mean())
                       if len(flagged_alice) else None,
                       "recall": float(domain.planted[flagged_alice].sum() / domain.planted.sum())},
        "pool_flag": {"n": int(a.flagged.sum()), "precision": float(domain.reversed[a.flagged].mean()),
                      "recall": float(domain.reversed[a.flagged].sum() / domain.reversed.sum())},
        "reasons_on_planted": {r: int(sum(1 for i in np.flatnonzero(domain.planted) if a.reasons[i] == r))
                               for r in ("reversed", "harmful", "")},
        "owner_mean": {n: float(values[domain.owner == i].mean()) for i, n in enumerate(domain.names)},
        "config": asdict(config),
    }


def print_report(domain, runs, timings) -> None:
    print(f"\ndemo domain: {len(domain.pairs)} pairs of {len(domain.names)} owners, {domain.reversed.sum()} reversed "
          f"({domain.planted.sum()} planted in {PLANTED_OWNER}'s {np.sum(domain.owner == 0)}); validation "
          f"{len(domain.validation)} pairs; " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    head = runs[0]
    print(f"\n{PLANTED_OWNER}: planted reversals among her lowest-valued q% (classifier utility {head['utility']}, "
          f"seed {head['seed']}; {head['chains']} chains, {head['n_fits']:,} fits, {head['seconds']:.1f} s)")
    print(f"{'q':>6}{'pairs':>7}{'precision':>11}{'recall':>9}   | pool: all reversed labels{'precision':>11}{'recall':>9}")
    for a, p in zip(head["alice"], head["pool"]):
        print(f"{a['q']:>6.0%}{a['k']:>7}{a['precision']:>11.3f}{a['recall']:>9.3f}   | {p['k']:>25}"
              f"{p['precision']:>11.3f}{p['recall']:>9.3f}")
    print(f"flag rule (value + 1.645·se < 0): {PLANTED_OWNER} {head['alice_flag']['n']} flagged, precision "
          f"{head['alice_flag']['precision']:.3f}, recall {head['alice_flag']['recall']:.3f}; pool "
          f"{head['pool_flag']['n']} flagged, precision {head['pool_flag']['precision']:.3f}, recall "
          f"{head['pool_flag']['recall']:.3f}; reasons on the planted pairs {head['reasons_on_planted']}")
    print("mean pair value per owner: " + ", ".join(f"{n} ({k}) {v:+.4f}" for (n, v), k in
                                                   zip(head["owner_mean"].items(), domain.kinds)))
    print(f"\nprecision at q = {PLANTED_RATE:.0%} over seeds (target ≥ {TARGET})")
    print(f"{'utility':<10}{'seeds':>6}{'mean':>8}{'min':>8}{'max':>8}{'pool mean':>11}{'seconds':>9}  verdict")
    for utility in dict.fromkeys(r["utility"] for r in runs):
        mine = [r for r in runs if r["utility"] == utility]
        at = [next(c["precision"] for c in r["alice"] if c["q"] == PLANTED_RATE) for r in mine]
        pool = [next(c["precision"] for c in r["pool"] if c["q"] == PLANTED_RATE) for r in mine]
        verdict = "met" if min(at) >= TARGET else "NOT met"
        print(f"{utility:<10}{len(mine):>6}{np.mean(at):>8.3f}{min(at):>8.3f}{max(at):>8.3f}{np.mean(pool):>11.3f}"
              f"{np.mean([r['seconds'] for r in mine]):>9.1f}  {verdict}")


def main() -> int:
    args = parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    runs, timings, first = [], {}, None
    for seed in args.seeds:
        domain = build(args.work, flip_seed=seed)
        z, z_val, embedded, embed_seconds = embed(domain, args.work)
        if first is None:
            first = domain
            timings = {"base_model": domain.seconds["base_model"], f"embedding ({embedded} pairs now)": embed_seconds}
        runs += [one_run(domain, z, z_val, utility, seed) for utility in args.utilities]
    runs.sort(key=lambda r: (args.utilities.index(r["utility"]), r["seed"]))
    print_report(first, runs, timings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"timings": timings, "planted_owner": PLANTED_OWNER, "rate": PLANTED_RATE,
                                    "runs": runs}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
