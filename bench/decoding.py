"""Throughput of token-level arithmetic decoding (engine/decoding.py) vs transformers' `generate`.

Demo domain, the tiny base model and 8 DPO owner models (the demo's training config; owner
kinds cycle clean_helpful, clean_harmless, noisy, adversarial), trained once and cached
under --work. On a batch of eval prompts (default 64, sampling at temperature 1, up to 40
new tokens) it times, median of --repeats runs:

* plain `model.generate` of one owner model (the baseline),
* the composed policy of a coalition of |S| = 1, 2, 4, 8 owners, `sum` composition (|S| + 1
  models per step, π₀ included; |S| = 1 runs the owner alone, exactly like `generate`),
  and `mean` (|S| models per step: Σ w = 1 leaves π₀ out),
* every one of the 2^4 coalitions of 4 owners in one call (what the reward utility does),
* the same with LoRA owners (--lora): 8 adapters switched on one shared copy of π₀.

tokens/s counts generated tokens (EOS included, padding not) per wall second; "models" is the
number of models one coalition runs per step (averaged over the 16 coalitions of the batched
row), and "model-tok/s" = tokens/s × models, the forward work actually done. Also the parameter memory
of the loaded policy set, full vs LoRA. Wall-clock numbers are load-sensitive (shared CPU).
Writes bench/results/decoding.json (or --out).

    .venv/bin/python bench/decoding.py [--prompts 64] [--repeats 3] [--lora] [--work var/bench/decoding]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from valuation.engine import synthetic  # noqa: E402
from valuation.engine.arithmetic import coalition_weights  # noqa: E402
from valuation.engine.base_model import build_base_model, load_base_model, threads_to_use, torch_threads  # noqa: E402
from valuation.engine.decoding import DecodingConfig, batch_seed, decode  # noqa: E402
from valuation.engine.dpo import TrainingConfig, train_owner_model  # noqa: E402
from valuation.engine.policies import PolicySet  # noqa: E402

KINDS = ("clean_helpful", "clean_harmless", "noisy", "adversarial")
N_OWNERS = 8
PAIRS = 150


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lora", action="store_true", help="also time 8 LoRA owners on one shared base")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "decoding")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "decoding.json")
    return parser.parse_args()


def owner_dirs(base, work: Path, config: TrainingConfig, tag: str) -> list[Path]:
    dirs = []
    for i in range(N_OWNERS):
        pairs = synthetic.owner_pairs(KINDS[i % len(KINDS)], PAIRS, 40 + i)
        result = train_owner_model(base.path, pairs, work / "owners" / f"{tag}{i}", config,
                                   base_model_hash=base.model_hash)
        print(f"  owner {tag}{i} ({KINDS[i % len(KINDS)]}): {'cached' if result.cached else f'{result.seconds:.0f} s'}",
              flush=True)
        dirs.append(result.path)
    return dirs


def timed(fn, repeats: int) -> tuple[float, int]:
    """Median seconds of `repeats` runs after one warm-up, and the tokens one run generates."""
    tokens = fn()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), tokens


def plain_generate(model, tokenizer, prompts, config: DecodingConfig):
    import torch

    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)

    def run() -> int:
        torch.manual_seed(batch_seed(config.seed, 0))
        with torch.inference_mode(), torch_threads():
            out = model.generate(**batch, do_sample=True, top_k=0, max_new_tokens=config.max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = out[:, batch["input_ids"].shape[1]:]
        return int(sum(_row_tokens(row, tokenizer.eos_token_id) for row in new.tolist()))

    return run


def _row_tokens(row: list[int], eos: int) -> int:
    return row.index(eos) + 1 if eos in row else len(row)


def composed(policies, members: np.ndarray, composition: str, prompts, config: DecodingConfig):
    weights = coalition_weights(members, composition=composition, sizes=np.full(members.shape[1], float(PAIRS)))
    return lambda: decode(policies, weights, prompts, config).n_tokens


def rows_for(policies, label: str, prompts, config: DecodingConfig, repeats: int) -> list[dict]:
    rows = []
    for size in (1, 2, 4, 8):
        members = np.zeros((1, N_OWNERS), dtype=bool)
        members[0, :size] = True
        for composition in ("sum", "mean"):
            models = size + (1 if composition == "sum" and size > 1 else 0)
            seconds, tokens = timed(composed(policies, members, composition, prompts, config), repeats)
            rows.append({"set": label, "case": f"|S| = {size}, {composition}", "size": size,
                         "composition": composition, "coalitions": 1, "models_per_step": models,
                         "seconds": seconds, "tokens": tokens})
    masks = np.arange(16)
    every = np.zeros((16, N_OWNERS), dtype=bool)
    every[:, :4] = (masks[:, None] >> np.arange(4)) & 1
    seconds, tokens = timed(composed(policies, every, "mean", prompts, config), repeats)
    rows.append({"set": label, "case": "all 16 coalitions of 4, mean, one call", "size": None, "composition": "mean",
                 "coalitions": 16, "models_per_step": float(every.sum()) / 16,  # per coalition, on average
                 "seconds": seconds, "tokens": tokens})
    return rows


def main() -> int:
    args = parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = args.work / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(0), encoding="utf-8")
    print("base model and owner models (cached after the first run)…", flush=True)
    base = build_base_model(corpus, args.work / "base", seed=0)
    full_dirs = owner_dirs(base, args.work, TrainingConfig(), "full")
    prompts = [p.prompt for p in synthetic.eval_pairs(args.prompts, 0)]
    config = DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=args.prompts)
    threads = threads_to_use()
    print(f"timing with {threads} torch thread(s), {args.prompts} prompts, ≤ {args.max_new_tokens} new tokens…",
          flush=True)
    seconds, tokens = timed(plain_generate(load_base_model(full_dirs[0]), PolicySet(base.path, []).tokenizer,
                                           prompts, config), args.repeats)
    rows = [{"set": "full", "case": "plain generate, one owner model", "size": 1, "composition": None,
             "coalitions": 1, "models_per_step": 1, "seconds": seconds, "tokens": tokens}]
    full = PolicySet(base.path, full_dirs)
    rows += rows_for(full, "full", prompts, config, args.repeats)
    memory = {"full": full.parameter_bytes()}
    if args.lora:
        lora = PolicySet(base.path, owner_dirs(base, args.work, TrainingConfig(use_lora=True), "lora"))
        rows += rows_for(lora, "lora", prompts, config, args.repeats)
        memory["lora"] = lora.parameter_bytes()
    for row in rows:
        row["tokens_per_s"] = row["tokens"] / row["seconds"]
        row["model_tokens_per_s"] = row["tokens_per_s"] * row["models_per_step"]
    print_table(rows, memory, threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"prompts": args.prompts, "max_new_tokens": args.max_new_tokens,
                                    "repeats": args.repeats, "threads": threads, "rows": rows,
                                    "parameter_bytes": memory}, indent=2))
    print(f"wrote {args.out}")
    return 0


def print_table(rows: list[dict], memory: dict, threads: int) -> None:
    print(f"\n{'set':<5} {'case':<42} {'models':>6} {'tokens':>7} {'seconds':>8} {'tok/s':>8} {'model-tok/s':>11} "
          f"{'vs generate':>11}")
    baseline = rows[0]["tokens_per_s"]
    for r in rows:
        print(f"{r['set']:<5} {r['case']:<42} {r['models_per_step']:>6g} {r['tokens']:>7} {r['seconds']:>8.2f} "
              f"{r['tokens_per_s']:>8.0f} {r['model_tokens_per_s']:>11.0f} {r['tokens_per_s'] / baseline:>10.2f}×")
    for name, size in memory.items():
        print(f"parameters held by the policy set ({name}, π₀ + {N_OWNERS} owners): {size / 2**20:.1f} MiB")
    print(f"torch threads: {threads} (fewer when other processes keep the cores busy); wall times are load-sensitive")


if __name__ == "__main__":
    raise SystemExit(main())
