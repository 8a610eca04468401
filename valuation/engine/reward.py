"""The `reward` utility: what a coalition's composed policy generates, scored by judges (docs/design.md §2).

For objective k with judge J_k and eval prompts x_1..x_P,

    v_k(S) = (1/P) Σ_p J_k(x_p, y_p^S),   y_p^S ~ π_S(· | x_p)  (decoding.py, token-level arithmetic),

and v_k(∅) is the base model's score. Several judges are several objectives; each gives its
own Shapley vector, and an owner's vector of values across objectives is its *data
signature* (the seed paper's helpfulness/harmlessness plane). A payout objective is one
objective or a weighted blend Σ_k α_k v_k — by linearity of the Shapley value its exact
values are the same blend of the objectives' values.

`GenerationGame` decodes a coalition at most once and scores its responses with every judge
at once, caching the (coalition, objective) utilities, so every objective's estimate and the
blend share the generations. Records can be preloaded (a resumed round) and are reported as
they are made (`on_record`, which a round uses to checkpoint them and check for cancellation).
`game.utility(weights)` is a set function for `shapley.estimate_shapley` ((k, n) booleans →
k utilities) with a `table()` for its exact path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
from numpy.typing import ArrayLike

from .arithmetic import check_members, coalition_weights
from .data import prompt_text
from .decoding import DecodingConfig, decode
from .judges import mean_score

MAX_OWNERS = 62  # coalition masks are stored as signed 64-bit integers


@dataclass(frozen=True)
class CoalitionRecord:
    mask: int  # bit i ⇔ owner i ∈ S
    scores: dict[str, float]  # objective -> v_k(S), the mean judge score
    responses: list[str]  # one per eval prompt, in prompt order
    n_tokens: int  # tokens generated for this coalition
    seconds: float  # decoding + judging time


@dataclass
class GenerationGame:
    policies: object  # policies.PolicySet over the n owners
    prompts: list  # text, or message tuples decoded through the chat template (decoding.encode_prompts)
    judges: Mapping[str, Callable]  # objective name -> judge(prompts, responses) -> scores
    composition: str = "sum"
    sizes: ArrayLike | None = None  # owners' pair counts (needed by `mean`)
    config: DecodingConfig = DecodingConfig()
    records: dict[int, CoalitionRecord] = field(default_factory=dict)  # preloaded or made here
    on_record: Callable[[CoalitionRecord], None] | None = None

    def __post_init__(self) -> None:
        if not self.judges:
            raise ValueError("the reward utility needs at least one objective (a judge)")
        if not self.prompts:
            raise ValueError("the reward utility needs at least one eval prompt")
        if self.n > MAX_OWNERS:
            raise ValueError(f"the reward utility handles at most {MAX_OWNERS} owners, got {self.n}")
        self.decoded = 0  # coalitions decoded here (not preloaded)
        coalition_weights(np.zeros((1, self.n), bool), sizes=self.sizes, composition=self.composition)

    @property
    def n(self) -> int:
        return self.policies.n

    @property
    def objectives(self) -> list[str]:
        return list(self.judges)

    def scores(self, members: ArrayLike) -> dict[str, np.ndarray]:
        """v_k(S) for every row of a (k, n) coalition matrix and every objective, decoding what is missing."""
        m = check_members(members, n=self.n)
        masks = _masks(m)
        missing = sorted({int(x) for x in masks} - set(self.records))
        group = max(1, self.config.max_batch_rows // min(self.config.batch_size, len(self.prompts)))
        for start in range(0, len(missing), group):
            self._decode([*missing[start:start + group]])
        return {name: np.array([self.records[int(x)].scores[name] for x in masks]) for name in self.judges}

    def _decode(self, masks: list[int]) -> None:
        members = (np.array(masks, dtype=np.int64)[:, None] >> np.arange(self.n)) & 1
        weights = coalition_weights(members.astype(bool), sizes=self.sizes, composition=self.composition)
        decoded = decode(self.policies, weights, self.prompts, self.config)
        share = decoded.seconds / len(masks)
        for mask, texts, ids in zip(masks, decoded.texts, decoded.token_ids):
            prompts = [prompt_text(prompt) for prompt in self.prompts]  # judges read text
            scores = {name: mean_score(judge, prompts, texts) for name, judge in self.judges.items()}
            record = CoalitionRecord(mask=mask, scores=scores, responses=texts,
                                     n_tokens=sum(len(row) for row in ids), seconds=share)
            self.records[mask] = record
            self.decoded += 1
            if self.on_record is not None:
                self.on_record(record)

    def utility(self, weights: Mapping[str, float]) -> "ObjectiveUtility":
        """The set function Σ_k α_k v_k (one objective: {name: 1.0})."""
        unknown = set(weights) - set(self.judges)
        if unknown:
            raise ValueError(f"unknown objective(s) {', '.join(sorted(unknown))}; the round has "
                             f"{', '.join(self.judges)}")
        if not weights:
            raise ValueError("a payout objective needs at least one objective with a weight")
        return ObjectiveUtility(self, dict(weights))


@dataclass
class ObjectiveUtility:
    """v(S) = Σ_k α_k v_k(S) over a shared GenerationGame, as a set function."""

    game: GenerationGame
    weights: dict[str, float]

    @property
    def n(self) -> int:
        return self.game.n

    def __call__(self, members: ArrayLike) -> np.ndarray:
        scores = self.game.scores(members)
        return sum(alpha * scores[name] for name, alpha in self.weights.items())

    def table(self, *, precision: str = "float64", n_jobs: int | None = None) -> np.ndarray:
        """All 2^n utilities, index = bitmask (every coalition decoded once, in mask order)."""
        del precision, n_jobs  # generation has one precision; the signature matches ScoreUtility.table
        masks = np.arange(1 << self.n, dtype=np.int64)
        return np.asarray(self((masks[:, None] >> np.arange(self.n)) & 1), dtype=np.float64)


def _masks(members: np.ndarray) -> np.ndarray:
    return members.astype(np.int64) @ (np.int64(1) << np.arange(members.shape[1], dtype=np.int64))
