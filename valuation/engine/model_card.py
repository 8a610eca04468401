"""What a base model is, read from its Hugging Face directory without loading its weights.

The marketplace registers base models (issue 20) and picks training presets by their size, so it
needs their architecture, parameter count, context length and whether the tokenizer carries a chat
template. Loading a 135M-parameter model to count its parameters takes seconds and hundreds of MB;
the safetensors header holds every tensor's shape in its first bytes, so counting reads only that.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

SAFETENSORS_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class ModelCard:
    architecture: str  # the config's first `architectures` entry, e.g. LlamaForCausalLM
    n_parameters: int  # tensors stored in the safetensors files (tied embeddings count once)
    context_length: int  # max_position_embeddings; 0 when the config does not say
    has_chat_template: bool  # the tokenizer carries a chat template (conversational pairs use it)
    dtype: str  # the dtype the weights are stored in, per the config


def describe(model_dir: str | Path) -> ModelCard:
    """The card of the model in ``model_dir``; ValueError naming what is missing when it is not one."""
    root = Path(model_dir)
    config_path = root / "config.json"
    if not config_path.is_file():
        raise ValueError(f"'{root}' is not a Hugging Face model directory (no config.json)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    architectures = config.get("architectures") or ["unknown"]
    return ModelCard(
        architecture=str(architectures[0]),
        n_parameters=parameter_count(root),
        context_length=int(config.get("max_position_embeddings") or 0),
        has_chat_template=has_chat_template(root),
        dtype=str(config.get("dtype") or config.get("torch_dtype") or "float32"),
    )


def has_chat_template(model_dir: str | Path) -> bool:
    """True when the tokenizer saved in ``model_dir`` has a chat template (file or tokenizer_config key)."""
    root = Path(model_dir)
    if (root / "chat_template.jinja").is_file() or (root / "chat_template.json").is_file():
        return True
    tokenizer_config = root / "tokenizer_config.json"
    if not tokenizer_config.is_file():
        return False
    return bool(json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template"))


def parameter_count(model_dir: str | Path) -> int:
    """Elements of every tensor in the directory's safetensors files, read from their headers."""
    root = Path(model_dir)
    files = _safetensors_files(root)
    if not files:
        raise ValueError(f"'{root}' holds no safetensors weights (model.safetensors or a sharded index)")
    return sum(_tensor_elements(path) for path in files)


def has_safetensors(model_dir: str | Path) -> bool:
    """Whether the directory holds safetensors weights whose parameters ``parameter_count`` can read."""
    return bool(_safetensors_files(Path(model_dir)))


def _safetensors_files(root: Path) -> list[Path]:
    index = root / SAFETENSORS_INDEX
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [root / shard for shard in shards]
    return sorted(root.glob("*.safetensors"))


def _tensor_elements(path: Path) -> int:
    # safetensors layout: an 8-byte little-endian header length, then a JSON header of name -> {shape, ...}.
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ValueError(f"'{path}' is not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", head)
        if length > 100 * 1024 * 1024:
            raise ValueError(f"'{path}' is not a safetensors file (header of {length:,} bytes)")
        try:
            header = json.loads(handle.read(length))
            return sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"'{path}' is not a safetensors file (unreadable header: {exc})") from None
