"""Fidelity of language-model arithmetic: coalition models trained for real (docs/design.md §2).

A round never trains a coalition: it composes one from its members' models,

    sum   log π_S = log π₀ + Σ_{i∈S} δ_i            (the optimum of sequential DPO)
    mean  log π_S = log π₀ + Σ_{i∈S} w_i(S)·δ_i     (≈ one DPO run on the pooled data),

and both are exact only at DPO convergence. This module trains the objects they
approximate, with the owners' own training config:

    sequential  π_S = DPO(… DPO(DPO(π₀, D_{i₁}), D_{i₂}) …, D_{i_k}), members in ascending
                index; each stage starts from the previous stage's policy, which is also its
                DPO reference (`dpo.build_trainer` on that model directory). On a LoRA round a
                stage is an adapter on the previous stage's model, merged into it
                (`lora_merge`) before the next stage starts from it
    pooled      π_S = DPO(π₀, D_{i₁} ∪ … ∪ D_{i_k})  (one run on the union, in index order; on
                a LoRA round one adapter on π₀, scored on π₀ like an owner's)

and scores each on the eval set with margins relative to π₀,
M_S(t) = (log π_S(y_w) − log π₀(y_w)) − (log π_S(y_l) − log π₀(y_l)), the quantity the
arithmetic predicts as Σ w_i D[i, t]. The empty coalition is π₀ and a singleton is the
owner's own model, in both modes. `fidelity_stats` turns the margins into the report.

Every model is content-addressed like an owner model: a stage's key is (parent model
hash, stage data hash, training config hash), a pooled model's (base hash, union data
hash, config hash). A sequential coalition is its largest-index-free prefix plus one
stage, so training all 2^n coalitions costs 2^n − n − 1 stages per mode, and a model
trained once is never trained again. On a LoRA round the cached artifact of a stage is its
adapter; the merged parents are scratch, rebuilt in seconds from the cached adapter chain and
deleted when the check ends (each is a full copy of the base model).
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Pair
from .dpo import LORA_TARGETS, TrainingConfig, train_owner_model
from .hashing import config_hash, pairs_hash
from .lora_merge import merge_adapter, merged_identity
from .scoring import ScoreResult

MODES: tuple[str, ...] = ("sequential", "pooled")
MATCHING_MODE = {"sum": "sequential", "mean": "pooled"}  # the object each composition approximates
DEFAULT_COALITIONS = 32  # all coalitions up to n = 5 owners (26 trainings per mode), a sample above


@dataclass(frozen=True)
class Member:
    """One owner as the fidelity check needs it: data, and the owner model trained on it from π₀."""

    name: str
    pairs: tuple[Pair, ...]
    model_dir: Path  # retrained (deterministically, same hash) if the artifact was deleted
    data_hash: str = ""  # pairs_hash(pairs); computed when empty

    def __post_init__(self) -> None:
        if not self.data_hash:
            object.__setattr__(self, "data_hash", pairs_hash(self.pairs))


@dataclass(frozen=True)
class Setup:
    base_dir: Path
    base_hash: str
    config: TrainingConfig  # the round's owner training config: coalitions train exactly like owners
    cache_dir: Path  # where coalition models live, content-addressed


@dataclass(frozen=True)
class ModelRef:
    path: Path
    model_hash: str
    # The model an adapter in `path` applies to; None = the round's base π₀. A LoRA sequential
    # coalition is its last stage's adapter on the previous stage's merged model.
    base_path: Path | None = None


@dataclass
class TrainedCoalitions:
    """Eval margins of every requested coalition under each trained mode, and what it cost."""

    masks: list[int]
    margins: dict[str, dict[int, np.ndarray]]  # mode -> mask -> (T,) margins relative to π₀
    models: dict[str, dict[int, str]]  # mode -> mask -> model hash ("" for ∅ = π₀)
    trained: int = 0  # fine-tunes run now
    reused: int = 0  # models found finished on disk
    seconds: float = 0.0  # training time of the fine-tunes run now
    stages: list[dict] = field(default_factory=list)  # one row per model: mode, mask, hash, trained, seconds
    merged: int = 0  # LoRA sequential parents merged into full models (scratch, deleted afterwards)
    merge_seconds: float = 0.0
    method: dict = field(default_factory=dict)  # how the coalitions were trained (`method_record`)


ScoreFn = Callable[[ModelRef], ScoreResult]
ProgressFn = Callable[[int, int], None]


def members_of(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def sample_coalitions(n: int, k: int | None = DEFAULT_COALITIONS, *, seed: int = 0) -> list[int]:
    """k coalition masks: all 2^n when k ≥ 2^n, otherwise ∅, the singletons and the grand coalition
    (free or essential) plus a sample stratified by size, spread evenly over sizes 2..n−1."""
    total = 1 << n
    if k is None or k >= total:
        return list(range(total))
    if k < n + 2:
        raise ValueError(f"{n} owners need at least {n + 2} coalitions (∅, each owner alone, all together); got {k}")
    chosen = {0, total - 1} | {1 << i for i in range(n)}
    rng = np.random.default_rng(seed)
    sizes = list(range(2, n))
    quota = {s: 0 for s in sizes}
    left = k - len(chosen)
    while left > 0:  # round-robin over sizes that still have unsampled coalitions
        open_sizes = [s for s in sizes if quota[s] < math.comb(n, s)]
        if not open_sizes:
            break
        for s in open_sizes[:left]:
            quota[s] += 1
        left -= len(open_sizes[:left])
    for s, count in quota.items():
        picked: set[int] = set()
        while len(picked) < count:
            picked.add(sum(1 << int(i) for i in rng.choice(n, size=s, replace=False)))
        chosen |= picked
    return sorted(chosen)


def _key(parent_hash: str, data_hash: str, cfg_hash: str) -> str:
    # The owner-model cache key formula (stages.training.owner_model_key), with the parent as "base".
    return hashlib.sha256(f"{parent_hash}:{data_hash}:{cfg_hash}".encode()).hexdigest()


def plan(masks: list[int], modes: tuple[str, ...]) -> list[tuple[str, int]]:
    """The (mode, mask) models to train, parents first: sequential needs every prefix of a coalition."""
    steps: set[tuple[str, int]] = set()
    for mask in masks:
        members = members_of(mask)
        if len(members) < 2:
            continue
        if "sequential" in modes:
            for end in range(2, len(members) + 1):
                steps.add(("sequential", sum(1 << i for i in members[:end])))
        if "pooled" in modes:
            steps.add(("pooled", mask))
    return sorted(steps, key=lambda step: (int(step[1]).bit_count(), step[1], step[0]))


def method_record(config: TrainingConfig, modes: tuple[str, ...]) -> dict:
    """What the report says about how its coalition models were made."""
    lora = config.use_lora
    record: dict = {"fine_tune": "lora" if lora else "full"}
    if lora:
        record["lora"] = {"r": config.lora_r, "alpha": config.lora_alpha, "targets": list(LORA_TARGETS)}
    if "pooled" in modes:
        record["pooled"] = ("one LoRA adapter on π₀ trained on the union, scored on π₀ like an owner's adapter"
                            if lora else "one full fine-tune of π₀ on the union")
    if "sequential" in modes:
        record["sequential_stages"] = "lora_merged" if lora else "full"
        record["sequential"] = (
            "each stage a LoRA adapter trained on the previous stage's model with that model as its DPO reference, "
            "then merged into it (PEFT merge_and_unload) to start the next stage; a coalition is scored as its "
            "last adapter on the previous stage's merged model" if lora else
            "each stage a full fine-tune of the previous stage's model, with that model as its DPO reference")
    return record


class CoalitionTrainer:
    """Trains (or finds) coalition models; one instance per check, so counts are per check.

    ``scratch`` holds the merged parents of LoRA sequential stages (needed only then)."""

    def __init__(self, setup: Setup, members: list[Member], scratch: Path | None = None):
        self.setup, self.members, self.scratch = setup, members, scratch
        self.cfg_hash = config_hash(setup.config)
        self.refs: dict[tuple[str, int], ModelRef] = {}
        self.merged: dict[int, ModelRef] = {}  # sequential prefix mask -> its stages merged into one full model
        self.result = TrainedCoalitions(masks=[], margins={}, models={})

    def _train(self, mode: str, mask: int, parent: ModelRef, pairs: list[Pair], out: Path) -> ModelRef:
        result = train_owner_model(parent.path, pairs, out, self.setup.config, base_model_hash=parent.model_hash)
        self.result.trained += not result.cached
        self.result.reused += result.cached
        self.result.seconds += result.seconds
        self.result.stages.append({"mode": mode, "mask": mask, "model_hash": result.model_hash,
                                   "trained": not result.cached, "seconds": round(result.seconds, 3)})
        return ModelRef(path=result.path, model_hash=result.model_hash)

    def model(self, mode: str, mask: int) -> ModelRef:
        """The coalition's model; its parents (sequential prefixes) must have been asked for first."""
        if (mode, mask) in self.refs:
            return self.refs[(mode, mask)]
        base = ModelRef(self.setup.base_dir, self.setup.base_hash)
        members = members_of(mask)
        if len(members) == 1:  # the owner's own model, shared by both modes
            ref = self.refs.get(("owner", mask))
            if ref is None:
                owner = self.members[members[0]]
                ref = self._train("owner", mask, base, list(owner.pairs), owner.model_dir)
                self.refs[("owner", mask)] = ref
        elif mode == "sequential":
            ref = self._stage(mask, members)
        else:
            pairs = [pair for i in members for pair in self.members[i].pairs]
            out = self.setup.cache_dir / _key(base.model_hash, pairs_hash(pairs), self.cfg_hash)
            ref = self._train(mode, mask, base, pairs, out)
        self.refs[(mode, mask)] = ref
        return ref

    def _stage(self, mask: int, members: list[int]) -> ModelRef:
        """The last stage of a sequential coalition: DPO of its largest member's data from the prefix's model,
        which is also the stage's reference."""
        last, parent_mask = self.members[members[-1]], mask & ~(1 << members[-1])
        parent = self.model("sequential", parent_mask)
        if not self.setup.config.use_lora:
            out = self.setup.cache_dir / _key(parent.model_hash, last.data_hash, self.cfg_hash)
            return self._train("sequential", mask, parent, list(last.pairs), out)
        start = self._merged(parent_mask)
        out = self.setup.cache_dir / _key(start.model_hash, last.data_hash, self.cfg_hash)
        adapter = self._train("sequential", mask, start, list(last.pairs), out)
        # Scored as the adapter on the merged parent rather than merged itself: the same function (merging is
        # exact up to float32 rounding; tests check 1e-4), the very forward TRL trained, and a coalition that is
        # no other's prefix (half of them) is never merged and written out as a full model.
        return ModelRef(adapter.path, merged_identity(start.model_hash, adapter.model_hash), base_path=start.path)

    def _merged(self, mask: int) -> ModelRef:
        """The sequential prefix ``mask`` as one full model: its parent's merged model with its last adapter
        merged in (a singleton: π₀ with the owner's adapter)."""
        if mask in self.merged:
            return self.merged[mask]
        if self.scratch is None:
            raise ValueError("LoRA sequential stages need a scratch directory for the merged parent models")
        ref = self.model("sequential", mask)
        if ref.base_path is None:  # an owner's adapter on π₀
            parent, identity = self.setup.base_dir, merged_identity(self.setup.base_hash, ref.model_hash)
        else:  # a stage's adapter on its merged prefix, whose identity it already carries
            parent, identity = ref.base_path, ref.model_hash
        started = time.perf_counter()
        path = merge_adapter(parent, ref.path, self.scratch / identity, identity=identity,
                             tokenizer_dir=self.setup.base_dir)
        self.result.merged += 1
        self.result.merge_seconds += time.perf_counter() - started
        self.merged[mask] = ModelRef(path, identity)
        return self.merged[mask]


def train_coalitions(setup: Setup, members: list[Member], masks: list[int], *, modes: tuple[str, ...],
                     score: ScoreFn, base_scores: ScoreResult,
                     on_progress: ProgressFn | None = None) -> TrainedCoalitions:
    """Train (or find) each requested coalition's model in each mode and score it against π₀."""
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        raise ValueError(f"modes must be a non-empty subset of {', '.join(MODES)}; got {modes!r}")
    if any(mask >> len(members) for mask in masks):
        raise ValueError(f"a coalition mask names an owner beyond the {len(members)} given")
    if not (setup.config.use_lora and "sequential" in modes):
        return _train_and_score(CoalitionTrainer(setup, members), masks, modes, score, base_scores, on_progress)
    setup.cache_dir.mkdir(parents=True, exist_ok=True)
    # Beside the cache (same disk, so merges publish by rename); gone when the check ends, even on failure.
    with tempfile.TemporaryDirectory(dir=setup.cache_dir, prefix=".merged-") as scratch:
        trainer = CoalitionTrainer(setup, members, Path(scratch))
        return _train_and_score(trainer, masks, modes, score, base_scores, on_progress)


def _train_and_score(trainer: CoalitionTrainer, masks: list[int], modes: tuple[str, ...], score: ScoreFn,
                     base_scores: ScoreResult, on_progress: ProgressFn | None) -> TrainedCoalitions:
    owners = sorted({i for mask in masks for i in members_of(mask)})
    steps = [("owner", 1 << i) for i in owners] + plan(masks, modes)
    total, done = len(steps) + len(modes) * sum(1 for mask in masks if mask), 0
    for mode, mask in steps:
        trainer.model(mode, mask)
        done += 1
        if on_progress:
            on_progress(done, total)
    result, scores = trainer.result, {}
    result.masks, result.method = list(masks), method_record(trainer.setup.config, modes)
    zero = np.zeros(len(base_scores.chosen), dtype=np.float64)
    for mode in modes:
        result.margins[mode], result.models[mode] = {}, {}
        for mask in masks:
            if not mask:  # ∅ is π₀ itself
                result.margins[mode][mask], result.models[mode][mask] = zero, ""
                continue
            ref = trainer.model(mode, mask)
            if ref.model_hash not in scores:  # singletons are the same model in both modes
                scores[ref.model_hash] = score(ref)
            s = scores[ref.model_hash]
            result.margins[mode][mask] = (s.chosen - base_scores.chosen) - (s.rejected - base_scores.rejected)
            result.models[mode][mask] = ref.model_hash
            done += 1
            if on_progress:
                on_progress(done, total)
    return result
