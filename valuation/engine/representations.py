"""Pair representations for pair- and cluster-level valuation (docs/design.md §2, "Pair level").

TS-DShapley (Schoch, Mishra & Ji 2023, "Data Selection for Fine-tuning Large Language
Models Using Transferred Shapley Values") and SHED (He et al. 2024, "SHED: Shapley-Based
Automated Dataset Refinement for Instruction Fine-Tuning") both value data points through
a cheap model on the target model's own representations. Here

    f(x, y)        = mean over the tokens of prompt + response of the base model's last
                     hidden state (attention-masked mean pooling), and
    z(x, y_w, y_l) = f(x, y_w) − f(x, y_l)   the pair's representation.

z is antisymmetric — reversing a pair's label negates it — which is what lets a linear
Bradley–Terry classifier (pair_values.py) notice a reversed label.

Sequences are tokenised exactly as scoring.py / TRL's DPOTrainer build them (EOS appended,
the same prompt/response split, the same truncation), so f sees what training sees.
Every pair is embedded once per base model: vectors are cached on disk under
<cache_dir>/<base-model hash>/<config hash>/, one shard per computation (key, chosen,
rejected .npy files, written to a temporary directory and renamed into place, so a killed
run leaves either a whole shard or none), keyed by the pair's content hash.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base_model import load_base_model, load_tokenizer, torch_threads
from .data import Pair
from .hashing import canonical_json, config_hash, sha256_bytes
from .scoring import tokenize_pair

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class RepresentationConfig:
    batch_size: int = 32  # sequences per forward pass: the tiny model's CPU throughput plateaus here
    max_length: int = 128  # tokens of prompt + response, as TrainingConfig.max_length: f sees what DPO sees
    shard_pairs: int = 4096  # pairs per cache shard: a crash loses at most one shard of work


@dataclass(frozen=True)
class Representations:
    chosen: np.ndarray  # float32 (N, d): f(x, y_w)
    rejected: np.ndarray  # float32 (N, d): f(x, y_l)
    computed: int  # pairs embedded now (the rest came from the cache)

    @property
    def pairs(self) -> np.ndarray:
        """z = f(x, y_w) − f(x, y_l), float64 (N, d)."""
        return self.chosen.astype(np.float64) - self.rejected.astype(np.float64)


def pair_key(pair: Pair) -> str:
    """Content hash of one pair (exact text: a reworded pair is a different pair)."""
    return sha256_bytes(canonical_json([pair.prompt, pair.chosen, pair.rejected]).encode("utf-8"))


class RepresentationCache:
    """Pair vectors of one (base model, config) on disk, found by pair key."""

    def __init__(self, root: str | Path, *, base_model_hash: str, config: RepresentationConfig) -> None:
        self.dir = Path(root) / base_model_hash / config_hash(config)[:16]

    def _shards(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("shard-*") if (p / "rejected.npy").is_file()) if self.dir.is_dir() else []

    def lookup(self, keys: Sequence[str]) -> tuple[dict[str, int], np.ndarray | None, np.ndarray | None]:
        """({key: row}, chosen, rejected) for the keys found; rows index the returned arrays."""
        wanted, found, parts_c, parts_r, offset = set(keys), {}, [], [], 0
        for shard in self._shards():
            shard_keys = np.load(shard / "keys.npy")
            rows = [i for i, k in enumerate(shard_keys.tolist()) if k in wanted and k not in found]
            if not rows:
                continue
            chosen, rejected = np.load(shard / "chosen.npy", mmap_mode="r"), np.load(shard / "rejected.npy", mmap_mode="r")
            parts_c.append(np.asarray(chosen[rows]))
            parts_r.append(np.asarray(rejected[rows]))
            for j, i in enumerate(rows):
                found[str(shard_keys[i])] = offset + j
            offset += len(rows)
        if not found:
            return {}, None, None
        return found, np.concatenate(parts_c), np.concatenate(parts_r)

    def store(self, keys: Sequence[str], chosen: np.ndarray, rejected: np.ndarray) -> Path:
        """Write one shard atomically (temporary directory renamed into place)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"shard-{sha256_bytes(''.join(keys).encode())[:16]}"
        final = self.dir / name
        if (final / "rejected.npy").is_file():
            return final
        tmp = self.dir / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        np.save(tmp / "keys.npy", np.asarray(list(keys), dtype="U64"))
        np.save(tmp / "chosen.npy", np.asarray(chosen, dtype=np.float32))
        np.save(tmp / "rejected.npy", np.asarray(rejected, dtype=np.float32))  # written last: marks a whole shard
        try:
            os.replace(tmp, final)
        except OSError:  # another process wrote the same shard first
            shutil.rmtree(tmp, ignore_errors=True)
        return final


def _sequences(tokenizer, pairs: Sequence[Pair], max_length: int) -> list[list[int]]:
    """prompt+chosen and prompt+rejected token ids of every pair (2N sequences, chosen first)."""
    chosen, rejected = [], []
    for pair in pairs:
        prompt_ids, chosen_ids, rejected_ids = tokenize_pair(tokenizer, pair)
        chosen.append((prompt_ids + chosen_ids)[:max_length])
        rejected.append((prompt_ids + rejected_ids)[:max_length])
    return chosen + rejected


def _mean_pooled(backbone, batch: list[list[int]], pad_id: int) -> np.ndarray:
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    hidden = backbone(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return ((hidden * weights).sum(dim=1) / weights.sum(dim=1)).numpy()


def embed_sequences(model_dir: str | Path, sequences: list[list[int]], *, batch_size: int, tokenizer,
                    on_progress: ProgressFn | None = None) -> np.ndarray:
    """Mean-pooled last hidden states (float32, one row per sequence), batched by length to waste no padding."""
    import torch

    model = load_base_model(model_dir)
    backbone = model.base_model  # the transformer without its LM head: no vocabulary-sized logits
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out = np.zeros((len(sequences), model.config.hidden_size), dtype=np.float32)
    with torch.no_grad(), torch_threads():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = _mean_pooled(backbone, [sequences[i] for i in rows], pad_id)
            if on_progress:
                on_progress(min(start + batch_size, len(order)), len(order))
    return out


def pair_representations(base_dir: str | Path, pairs: Sequence[Pair], *, base_model_hash: str,
                         cache_dir: str | Path | None = None, config: RepresentationConfig = RepresentationConfig(),
                         on_progress: ProgressFn | None = None) -> Representations:
    """f(x, y_w) and f(x, y_l) of every pair under the base model in ``base_dir``; cached pairs are not recomputed.

    ``on_progress(done, total)`` counts pairs (cached ones count as done at once).
    """
    keys = [pair_key(p) for p in pairs]
    cache = RepresentationCache(cache_dir, base_model_hash=base_model_hash, config=config) if cache_dir else None
    found, cached_c, cached_r = cache.lookup(keys) if cache else ({}, None, None)
    missing = list(dict.fromkeys(k for k in keys if k not in found))  # each distinct missing pair once
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    computed: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if missing:
        tokenizer = load_tokenizer(base_dir)
        for start in range(0, len(missing), config.shard_pairs):
            shard = missing[start : start + config.shard_pairs]
            sequences = _sequences(tokenizer, [pairs[first[k]] for k in shard], config.max_length)
            done = len(found) + start

            def progress(d: int, total: int, done=done) -> None:
                if on_progress:
                    on_progress(done + d // 2, len(keys))

            vectors = embed_sequences(base_dir, sequences, batch_size=config.batch_size, tokenizer=tokenizer,
                                      on_progress=progress)
            chosen, rejected = vectors[: len(shard)], vectors[len(shard):]
            if cache:
                cache.store(shard, chosen, rejected)
            computed.update({k: (chosen[i], rejected[i]) for i, k in enumerate(shard)})
    if on_progress:
        on_progress(len(keys), len(keys))
    return _assemble(keys, found, cached_c, cached_r, computed)


def _assemble(keys, found, cached_c, cached_r, computed) -> Representations:
    if not keys:
        return Representations(chosen=np.zeros((0, 0), np.float32), rejected=np.zeros((0, 0), np.float32), computed=0)
    rows_c, rows_r = [], []
    for k in keys:
        if k in computed:
            rows_c.append(computed[k][0])
            rows_r.append(computed[k][1])
        else:
            rows_c.append(cached_c[found[k]])
            rows_r.append(cached_r[found[k]])
    return Representations(chosen=np.stack(rows_c).astype(np.float32), rejected=np.stack(rows_r).astype(np.float32),
                           computed=len(computed))
