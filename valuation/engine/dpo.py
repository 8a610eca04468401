"""One owner's model pi_i = DPO(pi_0, D_i, beta) (Rafailov et al. 2023), trained with TRL.

The DPO loss is TRL's, never reimplemented here; the entry point reads like
alignment-handbook's `scripts/dpo.py`: seed -> model & tokenizer -> dataset ->
`DPOTrainer` -> save model & metrics. By default the loss is TRL's sigmoid DPO plus
an SFT term on the chosen response (`loss_type=["sigmoid", "sft"]`), which keeps a
tiny model's generations fluent while its implicit reward r_i = beta * delta_i still
orders the owners by data quality.

Artifacts are content-addressed: `owner_model.json` records the base model hash, the
owner data hash and the training config hash, and a finished matching directory is
returned as is. Training writes into a temporary directory that is renamed into place
only when complete, and TRL's own outputs (logs, checkpoints) stay in a scratch
directory that is deleted afterwards.

The base model is read from disk once per worker process (runtime.py): each run
trains a copy of it against another copy as the frozen reference. The device and
precision come from a `Runtime`; a non-float32 precision is part of the artifact's
identity (recorded and matched like the config hash).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import runtime as rt
from .base_model import RECORD_FILES as BASE_RECORD_FILES
from .base_model import load_tokenizer, quiet_hf, torch_threads
from .data import Pair, pairs_to_dataset
from .hashing import config_hash, directory_hash, pairs_hash
from .training_log import measured, step_log, summarise

RECORD = "owner_model.json"
RECORD_FILES = (RECORD,)  # run record: describes the model, excluded from its hash
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainingConfig:
    beta: float = 0.1  # DPO temperature; also the beta of the bt_loglik utility
    epochs: int = 4  # passes over the owner's pairs: enough for the implicit reward to generalise
    learning_rate: float = 1e-3  # TRL's 1e-6 would not move a ~1M-parameter model in ~40 updates
    batch_size: int = 16  # pairs per step (TRL forwards 2x this many sequences)
    gradient_accumulation: int = 1  # no memory pressure at this size
    loss_types: tuple[str, ...] = ("sigmoid", "sft")  # DPO + SFT on chosen keeps a tiny model fluent
    loss_weights: tuple[float, ...] = (1.0, 1.0)  # one weight per loss type, TRL's loss_weights
    use_lora: bool = False  # full FT: same time, 4-40x larger |D| than LoRA r=16 (bench/engine_smoke.py --lora)
    lora_r: int = 16  # adapter rank when use_lora
    lora_alpha: int = 32  # LoRA scale alpha/r = 2, the common default ratio
    lora_dropout: float = 0.0  # TRL disables dropout anyway (disable_dropout=True); 0 says so
    max_length: int = 128  # prompt + response tokens; demo pairs are < 50, longer real ones are cut
    seed: int = 0  # one seed drives init, data order and adapter init: same seed, same weights

    def __post_init__(self) -> None:
        """Refuse a config that could only fail later, in a worker, after the round has started (or
        train nonsense): every field's type and range, the loss types TRL knows, one weight per type."""
        for name, low, high in _INT_RANGES:
            _check_int(name, getattr(self, name), low, high)
        for name, low, high, low_open in _REAL_RANGES:
            _check_real(name, getattr(self, name), low, high, low_open)
        if not isinstance(self.use_lora, bool):
            raise ValueError(f"training option 'use_lora': must be true or false, got {_shown(self.use_lora)}")
        object.__setattr__(self, "loss_types", _sequence("loss_types", self.loss_types))  # JSON gives lists
        object.__setattr__(self, "loss_weights", _sequence("loss_weights", self.loss_weights))
        _check_losses(self.loss_types, self.loss_weights)


# (field, smallest, largest): generous bounds that still keep one fine-tune of one owner finite; the seed
# is numpy's, which takes 32 bits.
_INT_RANGES = (("epochs", 1, 100), ("batch_size", 1, 4096), ("gradient_accumulation", 1, 1024),
               ("lora_r", 1, 1024), ("lora_alpha", 1, 1 << 16), ("max_length", 8, 1 << 15), ("seed", 0, 2**32 - 1))
# (field, low, high, low excluded)
_REAL_RANGES = (("beta", 0.0, 1e3, True), ("learning_rate", 0.0, 1.0, True), ("lora_dropout", 0.0, 0.999, False))
# TRL 1.x DPOConfig.loss_type values; "sft" alone would learn no preference, so it never comes alone.
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")


def _shown(value) -> str:
    """A value inside an error message, cut short: the message is shown and stored."""
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _check_int(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"training option '{name}': must be an integer, got {_shown(value)}")
    if not low <= value <= high:
        raise ValueError(f"training option '{name}': must be between {low:,} and {high:,}, got {value:,}")


def _check_real(name: str, value, low: float, high: float, low_open: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"training option '{name}': must be a finite number, got {_shown(value)}")
    if value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ValueError(f"training option '{name}': must be in {bracket}{low:g}, {high:g}], got {value!r}")


def _sequence(name: str, value) -> tuple:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"training option '{name}': must be a non-empty list, got {_shown(value)}")
    return tuple(value)


def _check_losses(types: tuple, weights: tuple) -> None:
    for loss in types:
        if loss not in LOSS_TYPES:
            raise ValueError(f"training option 'loss_types': unknown loss {str(loss)[:40]!r}; "
                             f"choose from {', '.join(LOSS_TYPES)}")
    if len(set(types)) != len(types):
        raise ValueError(f"training option 'loss_types': a loss is named twice in {_shown(list(types))}")
    if len(weights) != len(types):
        raise ValueError(f"training option 'loss_weights': {len(weights)} weight(s) for {len(types)} loss type(s); "
                         "give one weight per loss type")
    for weight in weights:
        _check_real("loss_weights", weight, 0.0, 1e3, False)
    if not any(loss != "sft" and weight > 0 for loss, weight in zip(types, weights)):
        raise ValueError("training option 'loss_types': needs a preference loss (not only 'sft') with a positive "
                         "weight, or the owner's model learns no reward to value")


@dataclass(frozen=True)
class TrainResult:
    path: Path
    model_hash: str  # directory_hash of the saved model or adapter (run record excluded)
    metrics: dict
    seconds: float
    cached: bool = False  # True when a finished matching model was returned without training


def _dpo_args(config: TrainingConfig, scratch: str, runtime: rt.Runtime = rt.Runtime(), parameters: int = 0):
    from trl import DPOConfig

    return DPOConfig(
        output_dir=scratch,
        beta=config.beta,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        loss_type=list(config.loss_types),
        loss_weights=list(config.loss_weights),
        max_length=config.max_length,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=runtime.device == "cpu",
        # TRL defaults to bf16 autocast, even on CPU: float32 keeps log-probs exact (they must match
        # scoring.py's to 1e-3) and is faster on CPUs without bf16 units. Mixed precision only on request.
        bf16=runtime.dtype == "bfloat16",
        fp16=runtime.dtype == "float16",
        # TRL 1.x checkpoints activations by default; here the worker decides (runtime.activation_checkpointing).
        gradient_checkpointing=rt.activation_checkpointing(runtime.device, parameters),
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def _peft_config(config: TrainingConfig):
    if not config.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(LORA_TARGETS),
        task_type="CAUSAL_LM",
    )


def build_trainer(
    base_dir: str | Path, pairs: list[Pair], config: TrainingConfig, scratch: str, eval_pairs: list[Pair] | None = None,
    runtime: rt.Runtime | None = None,
):
    """A ready ``DPOTrainer`` for ``pairs`` on top of ``base_dir`` (seeded before anything random)."""
    from transformers import PrinterCallback, set_seed
    from trl import DPOTrainer

    runtime = runtime or rt.Runtime.from_env()
    runtime.check_device()
    quiet_hf()
    set_seed(config.seed)
    tokenizer = rt.tokenizer(base_dir)
    model = rt.base_model_copy(base_dir).train()
    # Full fine-tuning: the frozen base is the reference. With LoRA, TRL disables the adapter instead.
    ref_model = None if config.use_lora else rt.base_model_copy(base_dir)
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=_dpo_args(config, scratch, runtime, parameters=sum(weight.numel() for weight in model.parameters())),
        train_dataset=pairs_to_dataset(pairs),
        eval_dataset=pairs_to_dataset(eval_pairs) if eval_pairs else None,
        processing_class=tokenizer,
        peft_config=_peft_config(config),
    )
    trainer.remove_callback(PrinterCallback)  # metrics go to the run record, not stdout
    return trainer


def _cached_model(out: Path, expected: dict) -> TrainResult | None:
    record_path = out / RECORD
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    if any(record.get(key) != value for key, value in expected.items()):
        return None
    if directory_hash(out, exclude=RECORD_FILES) != record.get("model_hash"):
        return None
    return TrainResult(path=out, model_hash=record["model_hash"], metrics=record["metrics"], seconds=0.0, cached=True)


ADAPTER_CONFIG = "adapter_config.json"
PEFT_MODEL_CARD = "README.md"


def _canonical_adapter(directory: Path) -> None:
    """Make a saved adapter's files depend on its weights and config only, so that its hash does too.

    PEFT holds `target_modules` as a set and writes it in the set's iteration order, which follows each
    process's string-hash seed; it also writes the base model's path into the config and a model card
    (README.md) with that path and its own version. The same adapter would hash differently in every
    process and on every machine, and a from-scratch replay would report a model that differs only there.
    So the module lists are sorted, the path left out (PeftModel.from_pretrained is always given the base
    model; the run record names it by hash) and the card removed."""
    path = directory / ADAPTER_CONFIG
    record = json.loads(path.read_text(encoding="utf-8"))
    for key in ("target_modules", "exclude_modules"):
        if isinstance(record.get(key), list) and all(isinstance(name, str) for name in record[key]):
            record[key] = sorted(record[key])
    record["base_model_name_or_path"] = None
    path.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    (directory / PEFT_MODEL_CARD).unlink(missing_ok=True)


def _save(trainer, tokenizer_dir: Path, tmp: Path, config: TrainingConfig, expected: dict, metrics: dict) -> str:
    """Save model or adapter + tokenizer into ``tmp`` and write the run record last."""
    # The Trainer switches the KV cache off for training; owner models are also used for generation.
    trainer.model.config.use_cache = True
    trainer.model.save_pretrained(str(tmp))
    if config.use_lora:
        _canonical_adapter(tmp)
    load_tokenizer(tokenizer_dir).save_pretrained(str(tmp))
    model_hash = directory_hash(tmp, exclude=RECORD_FILES)
    record = {
        **expected,
        "model_hash": model_hash,
        "artifact": "peft_adapter" if config.use_lora else "full_model",
        "training_config": asdict(config),
        "metrics": metrics,
    }
    (tmp / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))
    return model_hash


def train_owner_model(
    base_dir: str | Path,
    pairs: list[Pair],
    out_dir: str | Path,
    config: TrainingConfig = TrainingConfig(),
    *,
    base_model_hash: str | None = None,
    runtime: rt.Runtime | None = None,
) -> TrainResult:
    """Fine-tune ``base_dir`` on one owner's ``pairs`` with DPO into ``out_dir`` (or return the cached model).

    ``base_model_hash`` saves re-hashing a large base model when the caller already knows it.
    """
    if not pairs:
        raise ValueError("an owner model needs at least one preference pair")
    runtime = runtime or rt.Runtime.from_env()
    base, out = Path(base_dir), Path(out_dir)
    expected = {
        "base_model_hash": base_model_hash or directory_hash(base, exclude=BASE_RECORD_FILES),
        "data_hash": pairs_hash(pairs),
        "config_hash": config_hash(config),
    }
    if runtime.dtype != rt.DEFAULT_DTYPE:
        expected["dtype"] = runtime.dtype  # float32 artifacts carry no dtype: they predate the setting
    cached = _cached_model(out, expected)
    if cached is not None:
        return cached
    started = time.perf_counter()
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="dpo-scratch-") as scratch, torch_threads(runtime.threads) as threads:
        trainer = build_trainer(base, list(pairs), config, scratch, runtime=runtime)
        trainer.train()
        history = trainer.state.log_history
        metrics = {**summarise(history), "n_pairs": len(pairs), "threads": threads, "device": runtime.device,
                   "lora": config.use_lora,  # an adapter trains at another pace than the whole model (estimates)
                   "log": step_log(history), **measured(base, pairs, config.max_length, config.epochs)}
        model_hash = _save(trainer, base, tmp, config, expected, metrics)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    seconds = time.perf_counter() - started
    return TrainResult(path=out, model_hash=model_hash, metrics=metrics, seconds=seconds)
