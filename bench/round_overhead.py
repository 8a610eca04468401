"""What a whole valuation round costs next to ONE DPO fine-tune on everybody's data pooled.

8 owners of the demo domain (valuation/engine/synthetic.py: the five demo owners, erin's 40 pairs
included, and three more of 150), the 200-pair demo eval set, the tiny base model and the rounds'
default training config. Each measurement runs in a fresh process with the same setup — Django set
up on a fresh SQLite database, the owners' data imported, then `runtime.prepare_process()` (the
training stack imported, the heap frozen) — and is timed from there:

* round: the foreground runner of `manage.py run_round` (services.round_create + round_execute):
  8 fine-tunes, 9 scoring passes, all 2^8 coalition utilities, exact Shapley, payouts;
* pooled: one `train_owner_model` on the union of the 8 owners' pairs, same epochs and batch size.

The floor is 1.0 (every pair is trained on once either way; the round takes a few more optimiser
steps, since each owner's last batch is partial); the target is <= 1.3. `--cold` runs the round as
it ran before the worker kept anything warm (base model, tokenizer and eval tokens reloaded each
time, no frozen heap). Also prints what retraining-based exact Data Shapley would cost: 2^8 - 1
fine-tunes on every coalition's pooled data, from a line fitted to the measured fine-tunes
(seconds = fixed + per-pair-epoch x pairs x epochs).

    .venv/bin/python bench/round_overhead.py [--repeats 1] [--threads N] [--cold] [--out FILE]

Wall seconds depend on what else the machine runs; CPU seconds (this process and its threads) much
less so: both are reported, and the load average around each run.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OWNERS = (  # (username, kind, pairs): the five demo owners, then three more of the same domain
    ("alice", "clean_helpful", 150), ("bob", "clean_harmless", 150), ("carol", "noisy", 150),
    ("dave", "adversarial", 150), ("erin", "small_clean", 40), ("frank", "clean_mix", 150),
    ("grace", "noisy", 150), ("heidi", "clean_harmless", 150),
)
EVAL_PAIRS = 200


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="VALUATION_TORCH_THREADS for both (default: the project's own choice, the idle cores)")
    parser.add_argument("--cold", action="store_true", help="also run the round without the warm caches")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "round_overhead")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "round_overhead.json")
    parser.add_argument("--child", choices=("round", "round-cold", "pooled"), help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


# --- the measured processes ---------------------------------------------------------------------

def _pairs(index: int, kind: str, n: int):
    from valuation.engine import synthetic

    return synthetic.owner_pairs(kind, n, index)  # owner seed = index: disjoint prompt blocks


def setup_django(work: Path) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=f"sqlite:///{work}/db.sqlite3",
                      ARTIFACTS_DIR=str(work / "artifacts"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _import_market() -> object:
    from marketplace.payees import owner_set_status
    from marketplace.services import contribution_create, eval_set_create, owner_create
    from valuation.engine import synthetic

    def jsonl(pairs) -> io.BytesIO:
        return io.BytesIO("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
                                  for p in pairs).encode())

    for index, (name, kind, n) in enumerate(OWNERS):
        owner = owner_create(username=name)
        owner_set_status(owner=owner, status="verified")  # only verified owners are round players
        contribution_create(owner=owner, file=jsonl(_pairs(index, kind, n)), filename="d.jsonl")
    return eval_set_create(name="eval", file=jsonl(synthetic.eval_pairs(EVAL_PAIRS, 0)), filename="eval.jsonl")


def _cold_runtime() -> None:
    """The round as before the warm caches: every model, tokenizer and eval tokenisation read afresh."""
    from valuation.engine import runtime

    for name in ("shared_base_model", "base_model_copy", "tokenizer", "eval_sequences"):
        warm = getattr(runtime, name)

        def cold(*args, _warm=warm, **kwargs):
            runtime.clear()
            return _warm(*args, **kwargs)

        setattr(runtime, name, cold)
    runtime.prepare_process = lambda: None  # no frozen heap either


def child(args) -> dict:
    import logging

    logging.disable(logging.INFO)
    work = Path(tempfile.mkdtemp(prefix=f"round-overhead-{args.child}-", dir=args.work))
    setup_django(work)
    eval_set = _import_market()
    from valuation.engine import runtime

    if args.child == "round-cold":
        _cold_runtime()
    runtime.prepare_process()
    spent = count_engine_cpu()
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    detail = _run_round(eval_set, args.base) if args.child.startswith("round") else _run_pooled(args.base, work)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "load_before": load,
            "load_after": os.getloadavg()[0], "engine_cpu": spent, **detail}


def count_engine_cpu() -> dict:
    """CPU seconds inside each fine-tune and scoring pass (``spent["fine_tunes"]`` per call, in order)."""
    from valuation.engine import dpo, scoring

    spent = {"fine_tunes": [], "scoring": []}
    for module, name, key in ((dpo, "train_owner_model", "fine_tunes"), (scoring, "score_model", "scoring")):
        def timed(*args, _real=getattr(module, name), _key=key, **kwargs):
            started = time.process_time()
            try:
                return _real(*args, **kwargs)
            finally:
                spent[_key].append(time.process_time() - started)

        setattr(module, name, timed)
    return spent


def _run_round(eval_set, base: Path) -> dict:
    from valuation import services

    r = services.round_create(name="bench", pool="1000.00", eval_set=eval_set, base_model_dir=str(base))
    r = services.round_execute(round_id=r.pk)
    assert r.status == "done" and r.estimator_used == "exact" and r.coalition_utilities.count() == 2 ** len(OWNERS)
    participants = r.participants.select_related("owner_model", "owner__user").order_by("index")
    return {"stages": r.timings, "threads": participants[0].owner_model.metrics.get("threads"),
            "fine_tunes": [{"owner": p.owner.name, "pairs": p.n_pairs, "seconds": p.owner_model.seconds,
                            "steps": p.owner_model.metrics.get("steps")} for p in participants],  # index order
            "scoring_passes": list(r.tasks.filter(stage="scoring").order_by("index").values_list("seconds", flat=True)),
            "values": {v.owner.name: v.shapley for v in r.values.all()}}


def _run_pooled(base: Path, work: Path) -> dict:
    from valuation.engine.dpo import TrainingConfig, train_owner_model

    pairs = [p for index, (_, kind, n) in enumerate(OWNERS) for p in _pairs(index, kind, n)]
    result = train_owner_model(base, pairs, work / "pooled", TrainingConfig())
    return {"pairs": len(pairs), "steps": result.metrics.get("steps"), "threads": result.metrics.get("threads"),
            "seconds": result.seconds}


# --- the driver ---------------------------------------------------------------------------------

def measure(kind: str, base: Path, args) -> dict:
    env = dict(os.environ)
    if args.threads:
        env["VALUATION_TORCH_THREADS"] = str(args.threads)
    done = subprocess.run([sys.executable, __file__, "--child", kind, "--base", str(base), "--work", str(args.work)],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def retraining_estimate(round_runs: list[dict], pooled_runs: list[dict], epochs: int) -> dict:
    """Exact Data Shapley by retraining: one fine-tune per non-empty coalition, on its pooled pairs.

    Fitted to CPU seconds of the measured fine-tunes (one torch thread: what they take on an idle
    core), the round's 8 and the pooled one, so the machine's load does not bend the line."""
    import numpy as np

    points = [(f["pairs"], cpu) for run in round_runs for f, cpu in zip(run["fine_tunes"],
                                                                        run["engine_cpu"]["fine_tunes"])]
    points += [(run["pairs"], run["engine_cpu"]["fine_tunes"][0]) for run in pooled_runs]
    x, y = np.array([p for p, _ in points], float), np.array([s for _, s in points], float)
    per_pair, fixed = np.polyfit(x, y, 1)  # seconds = fixed + per_pair * pairs
    fixed = max(float(fixed), 0.0)
    sizes = [n for _, _, n in OWNERS]
    coalition_pairs = [sum(n for i, n in enumerate(sizes) if mask >> i & 1) for mask in range(1, 2 ** len(sizes))]
    seconds = len(coalition_pairs) * fixed + per_pair * sum(coalition_pairs)
    return {"fine_tunes": len(coalition_pairs), "pairs_trained": sum(coalition_pairs) * epochs,
            "seconds_per_pair_epoch": per_pair / epochs, "fixed_seconds_per_fine_tune": fixed, "seconds": seconds}


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    from valuation.engine import synthetic
    from valuation.engine.base_model import build_base_model
    from valuation.engine.dpo import TrainingConfig

    args.work.mkdir(parents=True, exist_ok=True)
    corpus = args.work / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(0), encoding="utf-8")
    base = build_base_model(corpus, args.work / "base", seed=0).path
    kinds = ["pooled", "round"] + (["round-cold"] if args.cold else [])
    runs = {kind: [] for kind in kinds}
    for _ in range(args.repeats):
        for kind in kinds:  # interleaved, so a change of machine load hits every kind alike
            runs[kind].append(measure(kind, base, args))
            print(f"  {kind}: {runs[kind][-1]['wall']:.1f} s wall, {runs[kind][-1]['cpu']:.1f} s CPU", flush=True)
    report = summarise(runs, TrainingConfig().epochs)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {"owners": OWNERS, "eval_pairs": EVAL_PAIRS, "repeats": args.repeats,
                                               "threads": args.threads, "cpu_count": os.cpu_count()},
                                    **report, "runs": runs}, indent=2))
    print(f"wrote {args.out}")
    return 0


def summarise(runs: dict, epochs: int) -> dict:
    med = {kind: {key: statistics.median(r[key] for r in rs) for key in ("wall", "cpu")} for kind, rs in runs.items()}
    ratios = {kind: {key: med[kind][key] / med["pooled"][key] for key in ("wall", "cpu")} for kind in med}
    stages = {k: statistics.median(r["stages"][k] for r in runs["round"]) for k in runs["round"][0]["stages"]}
    engine = {key: statistics.median(sum(r["engine_cpu"][key]) for r in runs["round"])
              for key in ("fine_tunes", "scoring")}
    return {"median": med, "ratio": ratios, "stages": stages, "round_engine_cpu": engine,
            "steps": {"round": sum(f["steps"] for f in runs["round"][0]["fine_tunes"]),
                      "pooled": runs["pooled"][0]["steps"]},
            "retraining": retraining_estimate(runs["round"], runs["pooled"], epochs)}


def print_table(report: dict) -> None:
    med, ratio, steps = report["median"], report["ratio"], report["steps"]
    print(f"\n{'run':<34}{'wall s':>9}{'CPU s':>9}{'wall ×':>8}{'CPU ×':>7}")
    labels = {"pooled": "one fine-tune, pooled data", "round": "whole round (8 owners)",
              "round-cold": "whole round, no warm caches"}
    for kind in med:
        print(f"{labels[kind]:<34}{med[kind]['wall']:>9.1f}{med[kind]['cpu']:>9.1f}"
              f"{ratio[kind]['wall']:>8.2f}{ratio[kind]['cpu']:>7.2f}")
    stages, engine = report["stages"], report["round_engine_cpu"]
    rest = med["round"]["cpu"] - engine["fine_tunes"] - engine["scoring"]
    print(f"round, CPU s: 8 fine-tunes {engine['fine_tunes']:.1f}, 9 scoring passes {engine['scoring']:.1f}, "
          f"everything else (DB, 2^8 utilities, Shapley, payouts) {rest:.1f}; wall s by stage: "
          + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    print(f"optimiser steps: round {steps['round']}, pooled {steps['pooled']} "
          f"({steps['round'] / steps['pooled']:.3f}×: each owner's last batch is partial)")
    rt = report["retraining"]
    print(f"exact Data Shapley by retraining: {rt['fine_tunes']} fine-tunes, {rt['pairs_trained']:,} pair-epochs, "
          f"≈ {rt['seconds'] / 3600:.1f} h of CPU ({rt['seconds_per_pair_epoch'] * 1000:.1f} ms per pair-epoch + "
          f"{rt['fixed_seconds_per_fine_tune']:.1f} s per fine-tune) = {rt['seconds'] / med['round']['cpu']:.0f}× "
          "this round's CPU")


if __name__ == "__main__":
    raise SystemExit(main())
