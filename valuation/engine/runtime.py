"""Where a worker trains and scores (device, dtype), and what it keeps warm between tasks.

A round costs n fine-tunes and n + 1 scoring passes (docs/design.md section 2). Everything
else they do is overhead that one pooled fine-tune pays once and a round would pay
per owner: loading the base model twice per fine-tune (policy and DPO reference),
reading its tokenizer, re-tokenising the same eval set for every scoring pass, and
the heap scans of the `gc.collect()` that accelerate runs around every training loop.
So a worker process keeps them (bench/round_overhead.py measures the difference):

* the base model, loaded once per (directory, file stamps); each fine-tune gets a deep
  copy, whose weights are bit-identical to a fresh load (same trained model hash);
* the tokenizer, once per directory;
* the eval set's token ids (TRL's tokenisation, scoring.py), once per
  (tokenizer, pairs, max_length);
* `prepare_process()`: the training stack imported once, and the objects alive then
  frozen out of the garbage collector's scans (`gc.freeze`).

`Runtime` is the execution setting: `device` is a worker's own (a CPU worker and a GPU
worker can serve one round), `dtype` is the compute precision a round records, since
it changes the trained weights. Mixed precision (`bfloat16`, `float16`) autocasts the
forward passes while weights and optimiser state stay float32.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
from dataclasses import dataclass
from pathlib import Path

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_DTYPE = "float32"  # exact log-probs; what every cache key without a dtype means


@dataclass(frozen=True)
class Runtime:
    device: str = "cpu"  # "cuda": this worker's GPU (pick one per worker with CUDA_VISIBLE_DEVICES)
    dtype: str = DEFAULT_DTYPE  # autocast precision of training and scoring; float32 = none
    # CPU intra-op threads; 0 = this process's default (base_model.threads_to_use). Rounds record it:
    # reductions split by thread count, so the same number reproduces the same bits.
    threads: int = 0

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be a non-negative integer (0 = the process default), got {self.threads!r}")
        if self.dtype == "float16" and self.device == "cpu":
            raise ValueError("dtype float16 needs device cuda; on a CPU use bfloat16 or float32")

    @classmethod
    def from_env(cls, dtype: str = DEFAULT_DTYPE, threads: int = 0) -> Runtime:
        """This worker's device (VALUATION_DEVICE, default cpu) with the given precision and threads."""
        return cls(device=os.environ.get("VALUATION_DEVICE", "cpu"), dtype=dtype, threads=threads)

    def check_device(self) -> None:
        """Fail with the reason before any work when the device is not there."""
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError(f"VALUATION_DEVICE=cuda but torch {torch.__version__} sees no GPU on this worker")

    def autocast(self):
        """The context forward passes run in: autocast for mixed precision, else nothing."""
        import contextlib

        import torch

        if self.dtype == DEFAULT_DTYPE:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=getattr(torch, self.dtype))

    def key_suffix(self) -> str:
        """Appended to cache keys: empty for float32, so every existing key stays valid."""
        return "" if self.dtype == DEFAULT_DTYPE else f":{self.dtype}"


CHECKPOINTING = ("auto", "on", "off")
# From this size `auto` checkpoints on a CPU too. Measured on SmolLM2-135M (bench/checkpointing.py,
# docs/real-models.md): peak memory 0.59x with no measurable time cost, since the recomputed decoder layers
# are a small part of a step beside the vocabulary projection and the reference pass. The ~1M-parameter
# demo model needs little memory either way, so it keeps the plain backward pass.
CHECKPOINT_MIN_PARAMETERS = 20_000_000


def activation_checkpointing(device: str, parameters: int = 0) -> bool:
    """Whether this worker recomputes activations in the backward pass (VALUATION_ACTIVATION_CHECKPOINTING).

    The trained weights are bit-identical either way (tests/valuation/engine/test_dpo.py), so it is the
    worker's own memory-for-time trade and no round records it. ``auto`` (the default) checkpoints on a
    GPU, whose memory binds, and on a CPU for a model of ``CHECKPOINT_MIN_PARAMETERS`` or more;
    ``on`` and ``off`` decide for every model."""
    setting = os.environ.get("VALUATION_ACTIVATION_CHECKPOINTING", "auto").strip().lower() or "auto"
    if setting not in CHECKPOINTING:
        raise ValueError(f"VALUATION_ACTIVATION_CHECKPOINTING must be one of {', '.join(CHECKPOINTING)}, "
                         f"got {setting!r}")
    if setting == "auto":
        return device == "cuda" or parameters >= CHECKPOINT_MIN_PARAMETERS
    return setting == "on"


def _stamp(model_dir: str | Path) -> tuple:
    """Identity of a model directory on disk: its path and each file's size and mtime."""
    root = Path(model_dir).resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return (str(root), tuple((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


class _Warm:
    """Per-process caches (a worker runs one task at a time per process)."""

    def __init__(self):
        self.base: tuple | None = None  # (stamp, model): one base model at a time bounds memory
        self.tokenizers: dict[tuple, object] = {}
        self.sequences: dict[tuple, tuple] = {}
        self.prepared = False

    def base_model(self, model_dir):
        from .base_model import load_base_model

        stamp = _stamp(model_dir)
        if self.base is None or self.base[0] != stamp:
            self.base = (stamp, load_base_model(model_dir))
        return self.base[1]

    def tokenizer(self, model_dir):
        from .base_model import load_tokenizer

        stamp = _stamp(model_dir)
        if stamp not in self.tokenizers:
            self.tokenizers = {stamp: load_tokenizer(model_dir)}
        return self.tokenizers[stamp]


_WARM = _Warm()


def shared_base_model(model_dir: str | Path):
    """The process's loaded copy of the model in ``model_dir`` (eval mode): read it, never train it."""
    return _WARM.base_model(model_dir)


def base_model_copy(model_dir: str | Path):
    """A private copy of the model in ``model_dir`` to train or wrap, without reading the files again."""
    return copy.deepcopy(_WARM.base_model(model_dir))


@contextlib.contextmanager
def adapter_on_shared_base(base_dir: str | Path, adapter_dir: str | Path):
    """The process's shared base model with the PEFT adapter in ``adapter_dir`` on top, to read only.

    PEFT injects the adapter's layers into the model it is given; they are taken out again afterwards
    (`unload`, no merge), which leaves the shared model's modules and weights as loaded, so scoring n
    adapters holds one base model instead of copying it n times. PEFT also freezes every base weight
    (`requires_grad = False`) and `unload` does not thaw them; since training copies the shared model
    (`base_model_copy`), a frozen flag left behind would make a later full fine-tune train nothing, so
    each weight's flag is put back as it was. Should injecting or taking out fail half way, the shared
    model is forgotten and the next use reads it from disk again."""
    from peft import PeftModel

    base = _WARM.base_model(base_dir)
    trainable = {name: weight.requires_grad for name, weight in base.named_parameters()}
    try:
        model = PeftModel.from_pretrained(base, str(adapter_dir)).eval()
    except BaseException:
        _WARM.base = None
        raise
    try:
        yield model
    finally:
        try:
            model.unload()
            for name, weight in base.named_parameters():
                weight.requires_grad_(trainable[name])
        except BaseException:
            _WARM.base = None
            raise


def tokenizer(model_dir: str | Path):
    """The tokenizer of ``model_dir``, loaded once per process."""
    return _WARM.tokenizer(model_dir)


def eval_sequences(model_dir: str | Path, pairs, max_length: int | None):
    """(chosen, rejected) token sequences of ``pairs`` under ``model_dir``'s tokenizer, tokenised once."""
    from .hashing import pairs_hash
    from .scoring import tokenize_sequences

    key = (_stamp(model_dir), pairs_hash(pairs), max_length)
    if key not in _WARM.sequences:
        _WARM.sequences = {key: tokenize_sequences(tokenizer(model_dir), list(pairs), max_length)}
    return _WARM.sequences[key]


def prepare_process() -> None:
    """Import the training stack once and freeze the objects alive now out of the gc's scans.

    accelerate calls `gc.collect()` around every training loop; in a process holding
    torch, transformers, TRL and Django that full scan costs ~0.5 s per fine-tune. A
    frozen object is never freed, which is right for modules and the warm caches.
    """
    if _WARM.prepared:
        return
    activation_checkpointing("cpu")  # a misspelt worker setting fails the worker at start, not each fine-tune
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from trl import DPOConfig, DPOTrainer  # noqa: F401  (TRL imports its trainers lazily)

    from .base_model import quiet_hf

    quiet_hf()
    gc.collect()
    gc.freeze()
    _WARM.prepared = True


def clear() -> None:
    """Forget every warm object (tests; a worker never needs to)."""
    global _WARM
    _WARM = _Warm()
