"""The reference policy pi_0: a tiny byte-level BPE + Llama-style causal LM trained here.

No model may be downloaded, so the demo and the tests train their own reference
model from a text corpus (docs/design.md section 4): a byte-level BPE tokenizer (the
`tokenizers` library) and a ~1.3M-parameter `LlamaForCausalLM` trained from scratch
with next-token cross-entropy, nanoGPT style (random windows of a packed token
stream, AdamW, warmup + cosine decay). The result is an ordinary Hugging Face
directory, so `AutoModelForCausalLM`/`AutoTokenizer` load it like any real base model,
and every later stage works unchanged on a real local model directory.

A build is idempotent: the marker file `build.json`, written last, records the corpus
hash, config hash and seed; a matching finished build is returned without training.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .hashing import config_hash, directory_hash, sha256_file

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
MARKER = "build.json"
RECORD_FILES = (MARKER, "base_model_config.json", "metrics.json")  # describe the model, not part of it


@dataclass(frozen=True)
class BaseModelConfig:
    vocab_size: int = 1024  # upper bound; the demo corpus stops at 834 = one token per word, so responses are <= 30 tokens
    hidden_size: int = 128  # ~1.3M parameters in total: 250 steps take ~40 s on 2 idle CPU cores
    num_layers: int = 4  # enough depth to copy the asked verb/object into the answer
    num_heads: int = 4  # 32-dim heads, the usual ratio
    intermediate_size: int = 512  # 4x hidden, the usual MLP ratio
    max_position_embeddings: int = 256  # prompts + answers are < 80 tokens; headroom for real data
    seq_len: int = 128  # training window over the packed corpus (a few documents each)
    batch_size: int = 16  # 16 x 128 tokens per step is where this CPU's throughput plateaus
    steps: int = 250  # ~6 passes over the demo corpus (82K tokens): fluent templates, ~40 s
    learning_rate: float = 3e-3  # tiny models tolerate (and need) a large step
    warmup_steps: int = 20  # avoids early divergence at the large learning rate
    min_lr_ratio: float = 0.1  # cosine floor, as in nanoGPT
    weight_decay: float = 0.01  # light regularisation; the corpus is small and templated


@dataclass(frozen=True)
class BaseModelInfo:
    path: Path
    model_hash: str  # directory_hash of the model + tokenizer files (run records excluded)
    metrics: dict
    cached: bool = False  # True when an existing finished build was returned


def quiet_hf() -> None:
    """Silence Hugging Face progress bars: a round loads models dozens of times and logs its own progress."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def load_tokenizer(model_dir: str | Path):
    """The tokenizer of any local Hugging Face causal-LM directory, with a pad token set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # the same fallback DPOTrainer applies
    return tokenizer


def load_base_model(model_dir: str | Path):
    """Any local Hugging Face causal LM in float32, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    quiet_hf()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return model.eval()


def train_tokenizer(documents: list[str], vocab_size: int):
    """A byte-level BPE tokenizer that prepends <bos>, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(documents, trainer)
    bos_id = tokenizer.token_to_id("<bos>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos_id)]
    )
    pad, bos, eos, unk = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=pad, bos_token=bos, eos_token=eos, unk_token=unk
    )


def corpus_documents(text: str) -> list[str]:
    """Documents of a corpus file: blocks separated by blank lines."""
    return [doc.strip("\n") for doc in text.split("\n\n") if doc.strip()]


def _token_stream(tokenizer, documents: list[str]):
    """All documents as one packed stream: <bos> document <eos> <bos> document <eos> ..."""
    import torch

    ids: list[int] = []
    for encoded in tokenizer(documents)["input_ids"]:
        ids.extend(encoded)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def _new_model(config: BaseModelConfig, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)


def _lr_at(step: int, config: BaseModelConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    floor = config.min_lr_ratio
    return config.learning_rate * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _train(model, stream, config: BaseModelConfig, seed: int) -> list[float]:
    """Next-token training on random windows of ``stream``; returns the per-step losses."""
    import torch

    if len(stream) <= config.seq_len:
        raise ValueError(f"the corpus has {len(stream)} tokens; training needs more than seq_len={config.seq_len}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    model.train()
    losses = []
    for step in range(config.steps):
        starts = torch.randint(len(stream) - config.seq_len, (config.batch_size,), generator=generator)
        batch = torch.stack([stream[s : s + config.seq_len] for s in starts.tolist()])
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


# Default intra-op threads when VALUATION_TORCH_THREADS is unset: the cores, at most this many (beyond
# four the tiny models gain nothing). A fixed number, never a guess from the current load: CPU kernels
# split reductions by thread count, so 1 and 2 threads train different bits (measured: the base model's
# hash differs), and a round's models must not depend on how busy the machine was.
MAX_DEFAULT_THREADS = 4


def threads_to_use() -> int:
    """This process's intra-op threads for torch: VALUATION_TORCH_THREADS, else min(cores, 4).

    Rounds record the number at creation and every process that trains or scores for them uses the
    recorded one (`Runtime.threads`), so a replay or another worker reproduces the same bits. The
    engine package sets OMP_WAIT_POLICY=PASSIVE (valuation/engine/__init__.py): idle OpenMP threads sleep
    instead of spinning, which keeps a busy machine from collapsing (measured on 2 shared cores: a
    base-model build 57 s with 2 spinning threads, 25 s passive, 20 s with 1 thread).
    """
    override = os.environ.get("VALUATION_TORCH_THREADS")
    if override:
        return max(1, int(override))
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))


@contextlib.contextmanager
def torch_threads(threads: int | None = None):
    """Run the block with `threads` torch threads (default `threads_to_use()`), yielded, restoring the
    caller's setting afterwards."""
    import torch

    previous = torch.get_num_threads()
    threads = threads or threads_to_use()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


def _cached_build(out: Path, expected: dict) -> BaseModelInfo | None:
    marker = out / MARKER
    if not marker.is_file():
        return None
    recorded = json.loads(marker.read_text())
    if any(recorded.get(key) != value for key, value in expected.items()):
        return None
    if directory_hash(out, exclude=RECORD_FILES) != recorded.get("model_hash"):
        return None  # files changed since the build: rebuild rather than trust them
    metrics = json.loads((out / "metrics.json").read_text())
    return BaseModelInfo(path=out, model_hash=recorded["model_hash"], metrics=metrics, cached=True)


def _write_records(tmp: Path, config: BaseModelConfig, metrics: dict, expected: dict) -> str:
    model_hash = directory_hash(tmp, exclude=RECORD_FILES)
    (tmp / "base_model_config.json").write_text(json.dumps(asdict(config), indent=2, sort_keys=True))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    # Written last: its presence means the build finished.
    (tmp / MARKER).write_text(json.dumps({**expected, "model_hash": model_hash}, indent=2, sort_keys=True))
    return model_hash


def _publish(tmp: Path, out: Path) -> None:
    """Swap the finished temp dir into place; a crash never leaves a half-written ``out``."""
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def build_base_model(
    corpus_path: str | Path, out_dir: str | Path, *, seed: int = 0, config: BaseModelConfig = BaseModelConfig()
) -> BaseModelInfo:
    """Train tokenizer + model on ``corpus_path`` into ``out_dir`` (or return the cached build)."""
    import torch

    out = Path(out_dir)
    expected = {"corpus_hash": sha256_file(corpus_path), "config_hash": config_hash(config), "seed": seed}
    cached = _cached_build(out, expected)
    if cached is not None:
        return cached
    started = time.perf_counter()
    quiet_hf()
    documents = corpus_documents(Path(corpus_path).read_text(encoding="utf-8"))
    if not documents:
        raise ValueError(f"corpus {corpus_path} holds no text to train on")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with torch_threads() as threads:
        tokenizer = train_tokenizer(documents, config.vocab_size)
        stream = _token_stream(tokenizer, documents)
        torch.manual_seed(seed)
        model = _new_model(config, tokenizer)
        losses = _train(model, stream, config, seed)
    model.eval().save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    tail = losses[-10:]
    metrics = {
        "loss_first": losses[0],
        "loss_last": sum(tail) / len(tail),
        "steps": config.steps,
        "seconds": time.perf_counter() - started,
        "corpus_tokens": len(stream),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "threads": threads,  # a slow build on a busy machine shows up here
    }
    model_hash = _write_records(tmp, config, metrics, expected)
    _publish(tmp, out)
    return BaseModelInfo(path=out, model_hash=model_hash, metrics=metrics)
