"""The models a composed policy is made of, loaded once: π₀ and every owner's π_i (docs/design.md §2, `reward`).

Token-level arithmetic (`decoding`) needs next-token logits from π₀ and from every member
of a coalition at every step, each model with its own KV cache. `PolicySet` holds the
models and runs one forward of one of them (`component` 0 = π₀, i + 1 = owner i):

* a full-model owner (dpo.py with `use_lora=False`) is its own copy of the weights;
* PEFT (LoRA) owners (dpo.py with `use_lora=True`) share ONE copy of π₀: every adapter is
  loaded into one `PeftModel` and the active adapter is switched before each forward
  (`set_adapter`); π₀ is that same model with adapters disabled. Memory then grows by the
  adapters only (r·(d_in + d_out) per target matrix), not by n copies of the base —
  `parameter_bytes()` counts it, and bench/decoding.py reports it.

A forward returns float32 logits of the last position, computed the way
`transformers`' `generate` computes them (`logits_to_keep=1`), so a policy of one model
decodes exactly like `model.generate` (tests/valuation/engine/test_decoding.py).
"""

from __future__ import annotations

import inspect
from pathlib import Path

from .base_model import load_base_model, load_tokenizer
from .scoring import is_adapter_dir


class PolicySet:
    """π₀ and owner models 1..n, loaded once; `forward(component, …)` runs one of them."""

    def __init__(self, base_dir: str | Path, owner_dirs: list[str | Path]) -> None:
        self.base_dir = Path(base_dir)
        self.owner_dirs = [Path(d) for d in owner_dirs]
        for path in [self.base_dir, *self.owner_dirs]:
            if not (path / "config.json").is_file() and not is_adapter_dir(path):
                raise ValueError(f"{path} is neither a Hugging Face model directory nor a PEFT adapter directory")
        self.tokenizer = load_tokenizer(self.base_dir)
        self._full: dict[int, object] = {}  # component -> its own model
        self._adapters: dict[int, str] = {}  # component -> adapter name inside the shared PeftModel
        self._shared = None  # PeftModel over the one copy of π₀, when any owner is an adapter
        adapters = [i + 1 for i, d in enumerate(self.owner_dirs) if is_adapter_dir(d)]
        if adapters:
            self._load_shared(adapters)
        else:
            self._full[0] = load_base_model(self.base_dir)
        for component, path in enumerate(self.owner_dirs, start=1):
            if component not in self._adapters:
                self._full[component] = load_base_model(path)
        self._keep_one = _accepts_logits_to_keep(self._hf_model(0))

    def _load_shared(self, components: list[int]) -> None:
        from peft import PeftModel

        base = load_base_model(self.base_dir)
        for component in components:
            name = f"owner{component - 1}"
            path = str(self.owner_dirs[component - 1])
            if self._shared is None:
                self._shared = PeftModel.from_pretrained(base, path, adapter_name=name)
            else:
                self._shared.load_adapter(path, adapter_name=name)
            self._adapters[component] = name
        self._shared.eval()

    @property
    def n(self) -> int:
        """Number of owners (components are 0..n)."""
        return len(self.owner_dirs)

    @property
    def shares_base(self) -> bool:
        """True when LoRA owners run on one shared copy of π₀."""
        return self._shared is not None

    @property
    def vocab_size(self) -> int:
        return int(self._hf_model(0).config.vocab_size)

    @property
    def max_positions(self) -> int | None:
        return getattr(self._hf_model(0).config, "max_position_embeddings", None)

    def _hf_model(self, component: int):
        model = self._full.get(component, self._shared)
        return model.get_base_model() if hasattr(model, "get_base_model") else model

    def forward(self, component: int, *, input_ids, attention_mask, position_ids, cache=None):
        """Float32 logits (rows, vocab) of the last position under model `component`.

        `cache` is that model's KV cache for these rows (a `DynamicCache`, updated in place),
        or None for a cache-free forward over the whole sequence.
        """
        kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                      use_cache=cache is not None, past_key_values=cache)
        if self._keep_one:
            kwargs["logits_to_keep"] = 1
        if component in self._full:
            logits = self._full[component](**kwargs).logits
        elif component == 0:
            with self._shared.disable_adapter():
                logits = self._shared(**kwargs).logits
        else:
            self._shared.set_adapter(self._adapters[component])
            logits = self._shared(**kwargs).logits
        return logits[:, -1].to(dtype=_float32(), copy=True)

    def new_cache(self, component: int):
        """An empty KV cache for model `component` (one per model and batch of rows)."""
        from transformers import DynamicCache

        return DynamicCache(config=self._hf_model(component).config)

    def parameter_bytes(self) -> int:
        """Bytes of distinct parameter storage held (shared π₀ counted once)."""
        seen, total = set(), 0
        for model in [*self._full.values(), *([self._shared] if self._shared is not None else [])]:
            for p in model.parameters():
                if p.data_ptr() not in seen:
                    seen.add(p.data_ptr())
                    total += p.numel() * p.element_size()
        return total


def _accepts_logits_to_keep(model) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def _float32():
    import torch

    return torch.float32
