"""Measure the `lora` training preset on a real instruct model (issue 20, item 3).

One owner of clean and one of flipped houseplant-care pairs (valuation/engine/synthetic_chat.py) are each
trained with TRL's DPOTrainer + a LoRA adapter (the product's target modules, valuation/engine/dpo.py) for
every (learning_rate, epochs) of a small grid, and scored on held-out pairs with TRL's own evaluation:
eval reward accuracy and mean reward margin. A preset works when the clean owner's model is well above 0.5
accuracy, the flipped owner's well below, and their margins are far apart; among those, the cheapest wins.

    OMP_NUM_THREADS=1 .venv/bin/python bench/lora_preset.py [--model DIR] [--lrs 2e-4 5e-4 1e-3] [--epochs 1 2]

Prints the token lengths of the data under the chat template, then one row per run and a table; --json
writes the rows, and --table A.json B.json prints the table of several partial runs together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from valuation.engine import synthetic_chat  # noqa: E402
from valuation.engine.dpo import LORA_TARGETS  # noqa: E402

DEFAULT_MODEL = "/work/models/smollm2-135m-instruct"


def token_lengths(tokenizer, pairs: list[dict]) -> dict:
    """Longest prompt and prompt+completion token counts under the chat template, as TRL tokenizes them."""
    prompts, fulls = [], []
    for pair in pairs:
        prompts.append(len(tokenizer.apply_chat_template(pair["prompt"], add_generation_prompt=True, tokenize=True,
                                                         return_dict=True)["input_ids"]))
        for side in ("chosen", "rejected"):
            fulls.append(len(tokenizer.apply_chat_template(pair["prompt"] + pair[side], tokenize=True,
                                                           return_dict=True)["input_ids"]))
    return {"prompt_max": max(prompts), "full_max": max(fulls), "full_mean": sum(fulls) / len(fulls)}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def progress_callback():
    """Prints each logged step's loss, reward accuracy and margin with the wall time so far."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                print(f"  step {state.global_step}/{state.max_steps} {time.perf_counter() - self.start:.0f} s: "
                      f"loss {logs['loss']:.3f} acc {logs.get('rewards/accuracies', float('nan')):.2f} "
                      f"margin {logs.get('rewards/margins', float('nan')):+.3f}", flush=True)

    return Progress()


def run(model_dir: str, train: list[dict], evaluation: list[dict], lr: float, epochs: int, args) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, set_seed
    from trl import DPOConfig, DPOTrainer

    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as scratch:
        config = DPOConfig(
            output_dir=scratch, beta=0.1, loss_type=["sigmoid"], learning_rate=lr, num_train_epochs=epochs,
            per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size,
            max_length=args.max_length, seed=0, data_seed=0, use_cpu=True, bf16=False, report_to="none",
            save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0,
        )
        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(LORA_TARGETS),
                          task_type="CAUSAL_LM")
        trainer = DPOTrainer(model=model, args=config, train_dataset=datasets.Dataset.from_list(train),
                             eval_dataset=datasets.Dataset.from_list(evaluation), processing_class=tokenizer,
                             peft_config=lora)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(progress_callback())
        wall, cpu = time.perf_counter(), cpu_seconds()
        trainer.train()
        train_wall, train_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        wall = time.perf_counter()
        metrics = trainer.evaluate()
        eval_wall = time.perf_counter() - wall
    return {"lr": lr, "epochs": epochs, "accuracy": metrics["eval_rewards/accuracies"],
            "margin": metrics["eval_rewards/margins"], "train_s": train_wall, "train_cpu_s": train_cpu,
            "eval_s": eval_wall}


def table(rows: list[dict]) -> str:
    lines = ["| lr | epochs | clean acc | clean margin | flipped acc | flipped margin | train s (both) | "
             "train CPU s (both) |", "|---|---|---|---|---|---|---|---|"]
    by_key: dict = {}
    for row in rows:
        by_key.setdefault((row["lr"], row["epochs"]), {})[row["owner"]] = row
    for (lr, epochs), owners in by_key.items():
        clean, flipped = owners.get("clean"), owners.get("flipped")
        if clean is None or flipped is None:
            continue
        lines.append(f"| {lr:g} | {epochs} | {clean['accuracy']:.3f} | {clean['margin']:+.3f} | "
                     f"{flipped['accuracy']:.3f} | {flipped['margin']:+.3f} | "
                     f"{clean['train_s'] + flipped['train_s']:.0f} | "
                     f"{clean['train_cpu_s'] + flipped['train_cpu_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-4, 5e-4, 1e-3])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--eval-pairs", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the rows here as they come")
    parser.add_argument("--table", type=Path, nargs="+", help="only print the table of these --json files")
    args = parser.parse_args()
    if args.table:
        print(table([row for path in args.table for row in json.loads(path.read_text())["rows"]]))
        return

    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    owners = {"clean": synthetic_chat.owner_pairs("clean", args.pairs, 0),
              "flipped": synthetic_chat.owner_pairs("flipped", args.pairs, 1)}
    evaluation = synthetic_chat.eval_pairs(args.eval_pairs, 0)
    lengths = token_lengths(AutoTokenizer.from_pretrained(args.model),
                            owners["clean"] + owners["flipped"] + evaluation)
    print(f"model {args.model}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch threads {args.threads}; torch {torch.__version__}")
    print(f"tokens under the chat template: prompt max {lengths['prompt_max']}, prompt+completion max "
          f"{lengths['full_max']} (mean {lengths['full_mean']:.0f}); max_length {args.max_length}")
    if lengths["full_max"] > args.max_length:
        raise SystemExit(f"max_length {args.max_length} would truncate pairs of {lengths['full_max']} tokens")
    rows = []
    for lr in args.lrs:
        for epochs in args.epochs:
            for owner, pairs in owners.items():
                row = {"owner": owner, **run(args.model, pairs, evaluation, lr, epochs, args)}
                rows.append(row)
                print(f"{owner:8s} lr {lr:g} epochs {epochs}: eval acc {row['accuracy']:.3f} margin "
                      f"{row['margin']:+.3f}  train {row['train_s']:.0f} s (CPU {row['train_cpu_s']:.0f} s)  "
                      f"eval {row['eval_s']:.0f} s", flush=True)
                if args.json:
                    args.json.write_text(json.dumps({"lengths": lengths, "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
