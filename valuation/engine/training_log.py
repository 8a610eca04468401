"""What one owner's fine-tune records about itself: TRL's per-step log and a summary of it, and the
size of the run (tokens trained, base-model parameters), from which estimates.py measures this machine's
training throughput. The round page draws the log (charts.training_curves)."""

from __future__ import annotations

import math
from pathlib import Path

from . import runtime as rt
from .data import Pair


def summarise(log_history: list[dict], window: int = 3) -> dict:
    """First and last values of TRL's per-step training metrics (means over ``window`` steps)."""
    steps = [entry for entry in log_history if "loss" in entry and "rewards/margins" in entry]
    summary: dict = {"steps": len(steps)}
    for key in ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected"):
        values = [entry[key] for entry in steps if key in entry]
        if values:
            name = key.replace("/", "_")
            summary[f"{name}_first"] = sum(values[:window]) / len(values[:window])
            summary[f"{name}_last"] = sum(values[-window:]) / len(values[-window:])
    final = next((entry for entry in reversed(log_history) if "train_loss" in entry), {})
    summary["train_loss"] = final.get("train_loss")
    return summary


# TRL's per-step metrics kept in the training log, as TRL names them (grad_norm only when TRL logs it).
STEP_KEYS = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "learning_rate",
             "grad_norm")
STEP_LOG_CAP = 500  # steps kept per model: a run of more keeps every k-th (and the last), so the record stays small


def step_log(log_history: list[dict], cap: int = STEP_LOG_CAP) -> dict:
    """TRL's per-step log as {"every": k, "steps": [{"step", "epoch", <STEP_KEYS>}]}: every step up to ``cap``
    steps, else every k-th step plus the last (k the smallest stride that fits)."""
    entries = [entry for entry in log_history if "loss" in entry and "rewards/margins" in entry]
    every = max(1, math.ceil(len(entries) / cap))
    kept = entries[::every]
    if entries and kept[-1] is not entries[-1]:
        kept = kept[:cap - 1] + [entries[-1]]
    steps = [{"step": entry.get("step"), "epoch": entry.get("epoch"),
              **{key: float(entry[key]) for key in STEP_KEYS if entry.get(key) is not None}} for entry in kept]
    return {"every": every, "steps": steps}


def measured(base: Path, pairs: list[Pair], max_length: int | None, epochs: int) -> dict:
    """What a throughput estimate needs of a run: tokens trained (TRL's sequences after its cut, times the
    epochs) and the base model's parameter count (None when its weights are not safetensors)."""
    from .lengths import length_report
    from .model_card import parameter_count

    tokens = length_report(rt.tokenizer(base), pairs, max_length).n_tokens * epochs
    try:
        parameters = parameter_count(base)
    except ValueError:
        parameters = None
    return {"tokens": tokens, "base_parameters": parameters}
