"""Sampling from a coalition's policy π_S by token-level language-model arithmetic (docs/design.md §2, `reward`).

At every step the composed next-token logits are

    logits_S = logits₀ + Σ_{i∈S} w_i(S)·(logits_i − logits₀) = c₀·logits₀ + Σ_{i∈S} c_i·logits_i,
    c₀ = 1 − Σ_i w_i(S),  c_i = w_i(S)

(Dekoninck et al. 2024, "Controlled Text Generation via Language Model Arithmetic"; Liu et
al. 2024, "Tuning Language Models by Proxy"), with w from `arithmetic.coalition_weights`.
A model whose coefficient is 0 is not run at all: `mean` composition (Σ w = 1) never runs
π₀, a singleton under `sum` runs only its owner, and ∅ runs only π₀.

**An approximation of π_S.** The sequence-level policy of docs/design.md §2,
π_S(y|x) ∝ π₀(y|x)·Π_i (π_i(y|x)/π₀(y|x))^{w_i}, has one normaliser Z_S(x) over whole
responses. Decoding normalises per token instead, which is the same thing only when every
owner's log-ratio is "token-local"; in general the sampled distribution differs from π_S
(it cannot look ahead at where a prefix leads). This is the standard way to sample from
the composition, and the price of generating without enumerating responses.

Mechanics, all as in `transformers`' `generate` so a one-model policy reproduces it token
for token (tests/valuation/engine/test_decoding.py): prompts are left padded with an
attention mask and position ids from its cumulative sum; one `DynamicCache` per model;
temperature and top-p are transformers' own logits warpers; a finished row emits padding.
Sampling draws, per step, one Exp(1) noise row per prompt and takes argmax(p / noise) —
exactly what `torch.multinomial(p, 1)` does internally — but the noise row of a prompt is
shared by every coalition decoded with it: common random numbers, so two coalitions with
nearly the same π_S produce nearly the same responses and marginal contributions
v(S ∪ {i}) − v(S) are not drowned in sampling noise. Each batch of prompts has its own
seed (`batch_seed`), so a coalition's responses do not depend on which other coalitions
were decoded alongside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from .base_model import torch_threads


@dataclass(frozen=True)
class DecodingConfig:
    max_new_tokens: int = 40  # demo answers are ≤ 30 tokens + EOS; real answers need more
    temperature: float = 1.0  # 1.0 samples π_S itself; below 1 sharpens it
    top_p: float = 1.0  # nucleus mass; 1.0 keeps the whole distribution (what π_S means)
    greedy: bool = False  # argmax instead of sampling (temperature and top_p then do nothing)
    seed: int = 0  # of the sampling noise, shared by every coalition (common random numbers)
    batch_size: int = 64  # prompts per batch; part of the result when sampling (the noise is per batch)
    max_prompt_tokens: int = 192  # longer prompts keep their last tokens
    max_batch_rows: int = 512  # coalition × prompt rows decoded together: bounds KV-cache memory

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "batch_size", "max_prompt_tokens", "max_batch_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"decoding {name} must be a positive integer, got {value!r}")
        for name in ("temperature", "top_p"):  # a string or a bool here would pass or crash the checks below
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"decoding {name} must be a number, got {value!r}")
        if not isinstance(self.greedy, bool):
            raise ValueError(f"decoding greedy must be true or false, got {self.greedy!r}")
        if not 0 < self.temperature < float("inf"):
            raise ValueError(f"decoding temperature must be a positive number, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"decoding top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"decoding seed must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class Decoded:
    texts: list[list[str]]  # [coalition][prompt] response text (special tokens and EOS dropped)
    token_ids: list[list[list[int]]]  # [coalition][prompt] generated ids, EOS included when emitted
    n_tokens: int  # generated tokens over all rows (EOS counted, padding not)
    seconds: float


def batch_seed(seed: int, batch: int) -> int:
    """The torch seed of prompt batch `batch` (every coalition decodes that batch with the same noise)."""
    return int(np.random.SeedSequence([seed, batch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def composition_coefficients(weights: ArrayLike) -> np.ndarray:
    """(k, n + 1) coefficients of [logits₀, logits_1..n]: c₀ = 1 − Σ w, c_i = w_i."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be a finite (k, n) matrix, got shape {w.shape}")
    return np.concatenate([1.0 - w.sum(axis=1, keepdims=True), w], axis=1)


def _prompt_ids(tokenizer, prompt) -> list[int]:
    """A text prompt as the tokenizer encodes it (its own BOS etc.); a conversation through the chat template
    with the generation prompt, as TRL renders the prompt it trains on (scoring.tokenize_pair)."""
    if isinstance(prompt, str):
        return tokenizer(prompt)["input_ids"]
    from .scoring import _chat_ids

    return _chat_ids(tokenizer, prompt, add_generation_prompt=True)


def encode_prompts(tokenizer, prompts: list, config: DecodingConfig, max_positions: int | None) -> list[list[int]]:
    """Token ids per prompt (text, or a message tuple), cut to the last `max_prompt_tokens`."""
    if not prompts:
        raise ValueError("no prompts to decode")
    encoded = [_prompt_ids(tokenizer, prompt)[-config.max_prompt_tokens:] for prompt in prompts]
    for index, ids in enumerate(encoded):
        if not ids:
            raise ValueError(f"prompt {index} is empty after tokenisation")
        if max_positions is not None and len(ids) + config.max_new_tokens > max_positions:
            raise ValueError(f"prompt {index} has {len(ids)} tokens; with max_new_tokens={config.max_new_tokens} it "
                             f"exceeds the model's {max_positions} positions (lower max_prompt_tokens or max_new_tokens)")
    return encoded


def decode(policies, weights: ArrayLike, prompts: list[str], config: DecodingConfig = DecodingConfig(), *,
           use_cache: bool = True) -> Decoded:
    """Responses of each coalition (rows of `weights`, w_i(S) of shape (k, n)) to every prompt.

    `policies` is a `policies.PolicySet` over n owners. `use_cache=False` recomputes every
    step from the whole sequence (the reference the KV-cached path is tested against).
    """
    import torch

    started = time.perf_counter()
    coefficients = composition_coefficients(weights)
    if coefficients.shape[1] != policies.n + 1:
        raise ValueError(f"weights are for {coefficients.shape[1] - 1} owners, the policies for {policies.n}")
    tokenizer = policies.tokenizer
    encoded = encode_prompts(tokenizer, prompts, config, policies.max_positions)
    k, group = coefficients.shape[0], max(1, config.max_batch_rows // min(config.batch_size, len(encoded)))
    ids: list[list[list[int]]] = [[] for _ in range(k)]
    with torch.inference_mode(), torch_threads():
        for batch, start in enumerate(range(0, len(encoded), config.batch_size)):
            prompt_ids = encoded[start:start + config.batch_size]
            for first in range(0, k, group):
                out = _decode_group(policies, coefficients[first:first + group], prompt_ids, config,
                                    seed=batch_seed(config.seed, batch), use_cache=use_cache)
                for offset, rows in enumerate(out):
                    ids[first + offset].extend(rows)
    texts = [[tokenizer.decode(row, skip_special_tokens=True) for row in coalition] for coalition in ids]
    n_tokens = sum(len(row) for coalition in ids for row in coalition)
    return Decoded(texts=texts, token_ids=ids, n_tokens=n_tokens, seconds=time.perf_counter() - started)


def _left_pad(prompt_ids: list[list[int]], pad_id: int):
    import torch

    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        mask[row, width - len(ids):] = 1
    # As transformers' generate: positions count real tokens only; padding gets position 0.
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    return input_ids, mask, positions


def _plan(coefficients: np.ndarray, n_prompts: int) -> list[list]:
    """Per model with a nonzero coefficient: [component, its rows, their coefficients (rows, 1), m coalitions].

    Row r = s·n_prompts + p of the group is coalition s on prompt p; a model's rows are listed prompt-major
    (p, then its m coalitions), so the prompt's prefill, the same for all m, is computed once and repeated.
    """
    import torch

    plan = []
    for component in range(coefficients.shape[1]):
        used = np.flatnonzero(coefficients[:, component] != 0.0)
        if used.size:
            rows = (np.arange(n_prompts)[:, None] + used[None, :] * n_prompts).reshape(-1)
            coef = np.tile(coefficients[used, component], n_prompts)
            plan.append([component, torch.from_numpy(rows), torch.tensor(coef, dtype=torch.float32)[:, None],
                         used.size])
    return plan


def _prune(plan: list[list], caches: dict, unfinished) -> None:
    """Drop finished rows from a model's rows and KV cache once they are ≥ 1/8 of it (finished rows only
    emit padding, and every step copies the whole cache anyway)."""
    import torch

    for entry in plan:
        component, rows, coef, _ = entry
        keep = unfinished.index_select(0, rows)
        if rows.numel() and (rows.numel() - int(keep.sum())) * 8 >= rows.numel():
            index = torch.nonzero(keep).view(-1)
            if caches[component] is not None:
                caches[component].batch_select_indices(index)
            entry[1], entry[2] = rows.index_select(0, index), coef.index_select(0, index)


def _decode_group(policies, coefficients: np.ndarray, prompt_ids, config: DecodingConfig, *, seed: int,
                  use_cache: bool) -> list[list[list[int]]]:
    """Generated ids [coalition][prompt] for one group of coalitions on one batch of prompts."""
    import torch

    state = _Group(policies, coefficients, prompt_ids, use_cache)
    generator = torch.Generator().manual_seed(seed)
    warp = _warpers(config)
    steps = []
    for step in range(config.max_new_tokens):
        scores = warp(state.seq, state.composed_logits(step))
        if config.greedy:
            next_ids = scores.argmax(-1)
        else:
            probs = torch.softmax(scores, dim=-1)
            # One noise row per prompt, shared by the group's coalitions; argmax(p / Exp(1)) = torch.multinomial.
            noise = torch.empty((state.b, probs.shape[1]), dtype=probs.dtype).exponential_(1, generator=generator)
            next_ids = (probs.view(state.g, state.b, -1) / noise).argmax(-1).view(-1)
        steps.append(state.advance(next_ids))
        if not state.unfinished.any():
            break
    return _rows(torch.stack(steps, dim=1).view(state.g, state.b, -1).tolist(), state.eos_id)


class _Group:
    """The rows (coalition × prompt) of one decoding group: sequences, masks, positions, one cache per model."""

    def __init__(self, policies, coefficients: np.ndarray, prompt_ids, use_cache: bool) -> None:
        import torch

        self.policies, self.use_cache = policies, use_cache
        self.pad_id, self.eos_id = policies.tokenizer.pad_token_id, policies.tokenizer.eos_token_id
        self.g, self.b = coefficients.shape[0], len(prompt_ids)
        self.prompt = _left_pad(prompt_ids, self.pad_id)
        self.seq, self.att, self.pos = (t.repeat(self.g, 1) for t in self.prompt)
        self.plan = _plan(coefficients, self.b)
        self.caches = {c: policies.new_cache(c) if use_cache else None for c, *_ in self.plan}
        self.unfinished = torch.ones(self.g * self.b, dtype=torch.bool)

    def composed_logits(self, step: int):
        """Σ_j c_j · logits_j for every row (0 + 1·logits is exact: a one-model policy is that model)."""
        import torch

        logits = None
        for component, rows, coef, m in self.plan:
            if rows.numel():
                out = coef * self._forward(component, rows, m, prefill=step == 0 and self.use_cache)
                if logits is None:
                    logits = torch.zeros(self.g * self.b, out.shape[1], dtype=torch.float32)
                logits.index_add_(0, rows, out)
        return logits

    def _forward(self, component: int, rows, m: int, *, prefill: bool):
        if prefill:  # one prefill per prompt, repeated for the model's m coalitions
            input_ids, mask, positions = self.prompt
            out = self.policies.forward(component, input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                        cache=self.caches[component])
            if m > 1:
                self.caches[component].batch_repeat_interleave(m)
                out = out.repeat_interleave(m, dim=0)
            return out
        fresh = slice(-1, None) if self.use_cache else slice(None)
        return self.policies.forward(
            component, input_ids=self.seq.index_select(0, rows)[:, fresh],
            attention_mask=self.att.index_select(0, rows), position_ids=self.pos.index_select(0, rows)[:, fresh],
            cache=self.caches[component])

    def advance(self, next_ids):
        """Append the step's tokens (padding for finished rows) and drop finished rows from the caches."""
        import torch

        next_ids = torch.where(self.unfinished, next_ids, torch.full_like(next_ids, self.pad_id))
        self.unfinished &= next_ids != self.eos_id
        self.seq = torch.cat([self.seq, next_ids[:, None]], dim=1)
        self.att = torch.cat([self.att, torch.ones((self.g * self.b, 1), dtype=self.att.dtype)], dim=1)
        self.pos = torch.cat([self.pos, self.pos[:, -1:] + 1], dim=1)
        _prune(self.plan, self.caches, self.unfinished)
        return next_ids


def _rows(generated: list[list[list[int]]], eos_id: int) -> list[list[list[int]]]:
    """Cut each row after its EOS (what follows is padding)."""
    out = []
    for coalition in generated:
        cut = []
        for row in coalition:
            end = row.index(eos_id) + 1 if eos_id in row else len(row)
            cut.append(row[:end])
        out.append(cut)
    return out


def _warpers(config: DecodingConfig):
    """transformers' own temperature and top-p warpers, in generate's order (identity when unused)."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList()
    if not config.greedy and config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if not config.greedy and config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(config.top_p))
    return warpers
