"""Named training configs a round is created from: `tiny`, `lora`, and `auto` choosing between them.

`tiny` is `TrainingConfig()` itself (full fine-tuning of the ~1M-parameter demo model), so a round
on such a model created without a preset trains the very owner models rounds did before presets
existed (`default_preset`: no preset means `auto` wherever the weights can be counted). `lora` trains
a rank-8 adapter on a real instruct model (SmolLM2-135M-Instruct): full fine-tuning of 100M+
parameters on CPU costs memory per owner and copies of the whole model per artifact, while an
adapter is a few MB. `auto` picks `lora` for a base model of at least `LORA_MIN_PARAMETERS`.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from .dpo import TrainingConfig
from .model_card import has_safetensors, parameter_count

TINY, LORA, AUTO = "tiny", "lora", "auto"
PRESETS = (TINY, LORA, AUTO)

# Below this a model is the tiny demo kind (~1M parameters), where full fine-tuning is as fast as LoRA
# and learns more per pair; SmolLM2-135M is 134.5M. Any value between the two separates them.
LORA_MIN_PARAMETERS = 20_000_000

# The lora preset's optimisation settings, measured on SmolLM2-135M-Instruct (bench/lora_preset.py; the runs
# and why these were chosen: docs/real-models.md, "The `lora` preset, measured").
LORA_LEARNING_RATE = 5e-4  # separates a clean from a flipped owner in one epoch; 1e-3 already saturates its pairs
LORA_EPOCHS = 1  # one pass suffices on 64 pairs, and each epoch is most of a round's cost
LORA_BATCH_SIZE = 8  # pairs per step: more steps per owner than 16, each still cheap on 2 cores
LORA_MAX_LENGTH = 256  # chat-templated prompt + answer; longer ones are cut (the length check counts them)

_LORA = dict(use_lora=True, lora_r=8, lora_alpha=16, beta=0.1, loss_types=("sigmoid",), loss_weights=(1.0,),
             learning_rate=LORA_LEARNING_RATE, epochs=LORA_EPOCHS, batch_size=LORA_BATCH_SIZE,
             max_length=LORA_MAX_LENGTH)  # plain sigmoid DPO: an instruct model is fluent without an SFT term


def check_name(name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {str(name)[:40]!r}; choose one of: {', '.join(PRESETS)}")


def resolve(name: str, base_dir: str | Path) -> str:
    """The concrete preset (`tiny` or `lora`) that ``name`` means for the base model in ``base_dir``."""
    check_name(name)
    if name != AUTO:
        return name
    return LORA if parameter_count(base_dir) >= LORA_MIN_PARAMETERS else TINY


def default_preset(base_dir: str | Path | None) -> str:
    """What a round created without a preset trains with: `auto`'s choice for ``base_dir``, or `tiny` when it
    holds no safetensors weights to count, as every round did before presets. Unreadable weights are an error."""
    if base_dir is None or not has_safetensors(base_dir):
        return TINY
    return resolve(AUTO, base_dir)


def preset_config(name: str) -> TrainingConfig:
    """The config of a concrete preset, before any override."""
    check_name(name)
    if name == AUTO:
        raise ValueError("'auto' depends on the base model: resolve it first (presets.resolve)")
    return TrainingConfig() if name == TINY else replace(TrainingConfig(), **_LORA)


def effective_config(name: str, overrides: dict) -> TrainingConfig:
    """A concrete preset with single keys overridden (TrainingConfig checks every value)."""
    return TrainingConfig(**{**asdict(preset_config(name)), **overrides})  # JSON lists become tuples there
