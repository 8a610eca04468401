"""A LoRA stage of sequential DPO as a full model: the previous stage's model with the adapter merged in.

Sequential DPO over a coalition (docs/design.md §2, what `sum` approximates) starts each stage from
the previous stage's policy, which is also that stage's DPO reference. A LoRA fine-tune leaves an
adapter (A_k, B_k per target layer) on top of the model it was trained on, M_{k−1}. PEFT's
`merge_and_unload` folds it in, W ← W + (α/r)·B_k·A_k, giving M_k: the same function as M_{k−1} with
the adapter switched on (up to float32 rounding), and a plain model directory the next stage can
train an adapter on and, with that adapter disabled, use as its reference, exactly as TRL does for
any LoRA run (`dpo.build_trainer`).

A merged model is identified by what it is made of, sha256(parent identity, adapter hash), not by
its bytes: the next stage's cache key must not depend on the rounding of one merge.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from . import runtime as rt
from .base_model import load_tokenizer, quiet_hf

RECORD = "merged_model.json"  # written last: its presence means the merge finished


def merged_identity(parent_hash: str, adapter_hash: str) -> str:
    """The identity of parent ⊕ adapter (a stage's model), used as the next stage's parent hash."""
    return hashlib.sha256(f"merged:{parent_hash}:{adapter_hash}".encode()).hexdigest()


def merge_adapter(parent_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path, *, identity: str,
                  tokenizer_dir: str | Path) -> Path:
    """Write ``parent_dir`` with the LoRA adapter in ``adapter_dir`` merged into ``out_dir`` (a full model
    with the tokenizer of ``tokenizer_dir``); a finished merge with the same identity is returned as is."""
    out = Path(out_dir)
    record = out / RECORD
    if record.is_file() and json.loads(record.read_text()).get("identity") == identity:
        return out
    if not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise ValueError(f"{adapter_dir} holds no PEFT adapter to merge (no adapter_config.json)")
    from peft import PeftModel

    quiet_hf()
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model = PeftModel.from_pretrained(rt.base_model_copy(parent_dir), str(adapter_dir)).merge_and_unload()
        model.config.use_cache = True
        model.save_pretrained(str(tmp))
        load_tokenizer(tokenizer_dir).save_pretrained(str(tmp))
        (tmp / RECORD).write_text(json.dumps({"identity": identity, "adapter": str(adapter_dir)}, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
