"""Checks and copies of a local Hugging Face causal-LM directory before the marketplace holds it.

A registered base model is what every round of it trains and scores from, so the registry
keeps its own copy of exactly the files that make the model (config, safetensors weights,
tokenizer, chat template) and refuses a directory that could not serve a round: no config,
no safetensors weights, no tokenizer, or a model that is not a causal language model (DPO
trains a policy that generates text; an encoder or a classifier has no such head).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .base_model import RECORD_FILES

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
# Other weight formats the stages never read (they load safetensors): left out of the copy.
SKIPPED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack", ".ot")


def check_model_dir(model_dir: Path) -> None:
    """ValueError naming what is missing when ``model_dir`` cannot serve as a base model."""
    root = Path(model_dir)
    if not root.is_dir():
        raise ValueError(f"'{root}' is not a directory")
    if not (root / "config.json").is_file():
        raise ValueError(f"'{root}' is not a Hugging Face model directory (no config.json)")
    if not any(root.glob("*.safetensors")):
        raise ValueError(f"'{root}' holds no safetensors weights (model.safetensors or shards); save the model "
                         "with save_pretrained(safe_serialization=True)")
    if not (root / "tokenizer_config.json").is_file() or not any((root / f).is_file() for f in TOKENIZER_FILES):
        raise ValueError(f"'{root}' holds no tokenizer (tokenizer_config.json and one of "
                         f"{', '.join(TOKENIZER_FILES)}); save the tokenizer next to the model")
    check_causal_lm(root)


def check_causal_lm(model_dir: Path) -> str:
    """The config's architecture when it is a causal LM transformers can load; ValueError otherwise."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    architectures = config.get("architectures") or []
    if not architectures:
        raise ValueError(f"'{model_dir}/config.json' names no architecture; a base model must be a causal LM "
                         "(e.g. LlamaForCausalLM)")
    architecture = str(architectures[0])
    if architecture not in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        raise ValueError(f"'{model_dir}' holds a {architecture}, not a causal language model: DPO needs a model "
                         "that generates text (an architecture such as LlamaForCausalLM)")
    return architecture


def model_files(model_dir: Path) -> list[Path]:
    """The top-level files that make the model: everything but run records and unused weight formats."""
    root = Path(model_dir)
    return sorted(p for p in root.iterdir() if p.is_file() and p.name not in RECORD_FILES
                  and not p.name.startswith(".") and p.suffix not in SKIPPED_SUFFIXES)


def copy_model_dir(src: Path, out_dir: Path) -> Path:
    """Copy the model files of ``src`` into a new ``out_dir``, whole or not at all; returns ``out_dir``."""
    src, out_dir = Path(src), Path(out_dir)
    check_model_dir(src)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new directory")
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for file in model_files(src):
            shutil.copy2(file, tmp / file.name)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
