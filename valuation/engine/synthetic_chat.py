"""A realistic conversational demo domain with known data quality: houseplant care Q&A.

Each prompt is a user message asking about one topic (watering, yellow leaves, light, repotting,
propagation, pests, pets, feeding, winter care, brown tips) for one of 24 houseplants, in one
season, with an opening line and a personal situation, phrased one of six ways per topic. The
chosen answer is built from the plant's care facts (several sentences, one about the user's
situation and one about the season); the rejected answer is plausible but bad: the opposite
watering regime, the wrong season, a harmful pest treatment, a false pet-safety claim, or a vague
non-answer (the texts: houseplants.py). So "which answer is right" is learnable from the text, and
an owner's quality is known by construction.

Pairs are TRL's conversational explicit-prompt format: prompt = [user message], chosen/rejected =
one assistant message each. No system turn: one shared system text would make every prompt look
alike to the near-duplicate check (marketplace/neardup.py), and the chat template adds its own.

Prompts never repeat and never come near each other across owners and eval sets:
* eval sets ask about (plant, topic) combinations no owner is ever asked about (N_EVAL_COMBOS of them);
* an owner's prompt is one (plant, topic, phrasing) slot, and each slot belongs to exactly one
  owner block, so two owners' prompts differ at least in plant, topic or phrasing.
Everything is a pure function of seeds.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from .houseplants import (OPENERS, OPENING, PLANTS, QUESTIONS, SEASON_NOTE, SEASONS, SITUATIONS, TOPICS, VAGUE,
                          right_answer, wrong_answer)


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


PHRASINGS = min(len(phrasings) for phrasings in QUESTIONS.values())
N_EVAL_COMBOS = 40  # of the 240 (plant, topic) combinations, asked about only in eval sets
BLOCK = 100  # prompts per block: the most pairs one owner seed or eval seed can draw
KINDS = ("clean", "noisy", "flipped", "low_effort")
NOISY_FLIP_RATE = 0.3  # fraction of a noisy owner's labels that are reversed
VAGUE_RATE = 0.2  # fraction of clean pairs whose rejected answer is a vague non-answer rather than a wrong one


@functools.lru_cache(maxsize=1)
def _combos() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(owner combos, eval combos) of (plant index, topic index), split by a fixed seed."""
    combos = [(p, t) for p in range(len(PLANTS)) for t in range(len(TOPICS))]
    order = np.random.default_rng(20_250_520).permutation(len(combos))
    return [combos[i] for i in order[N_EVAL_COMBOS:]], [combos[i] for i in order[:N_EVAL_COMBOS]]


@functools.lru_cache(maxsize=2)
def _slots(which: str) -> list[tuple[int, int, int]]:
    """Every (plant, topic, phrasing) slot of the owner or eval universe, in a fixed shuffled order."""
    combos = _combos()[0 if which == "owner" else 1]
    slots = [(p, t, q) for p, t in combos for q in range(PHRASINGS)]
    order = np.random.default_rng(20_250_521 if which == "owner" else 20_250_522).permutation(len(slots))
    return [slots[i] for i in order]


OWNER_SEEDS = len(_slots("owner")) // BLOCK  # 12 owner blocks of 100 prompts
EVAL_SEEDS = len(_slots("eval")) // BLOCK  # 2 eval blocks


def _pick(options, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


def _pair(slot: tuple[int, int, int], rejected_style: str, rng: np.random.Generator) -> dict:
    p, t, q = slot
    plant, topic = PLANTS[p], TOPICS[t]
    situation, situation_note = _pick(SITUATIONS, rng)
    s = int(rng.integers(len(SEASONS)))
    question = QUESTIONS[topic][q].format(p=plant.name)
    user = f"{_pick(OPENERS, rng)}{situation.format(s=SEASONS[s])} {question}"
    prompt = [{"role": "user", "content": user}]
    # The season's note closes every right answer (and no wrong one): tests use it as the label's truth.
    body = " ".join(part for part in (right_answer(plant, topic), situation_note, SEASON_NOTE[SEASONS[s]]) if part)
    chosen = _pick(OPENING, rng) + body
    rejected = VAGUE[int(rng.integers(len(VAGUE)))] if rejected_style == "vague" else wrong_answer(plant, topic)
    return {"prompt": prompt, "chosen": _assistant(chosen), "rejected": _assistant(rejected)}


def flipped(pair: dict) -> dict:
    """The same pair with the preference label reversed."""
    return {"prompt": pair["prompt"], "chosen": pair["rejected"], "rejected": pair["chosen"]}


def _make_pairs(kind: str, slots: list, rng: np.random.Generator) -> tuple[list[dict], np.ndarray]:
    n = len(slots)
    styles = ["vague" if kind == "low_effort" or rng.random() < VAGUE_RATE else "wrong" for _ in range(n)]
    pairs = [_pair(slot, style, rng) for slot, style in zip(slots, styles)]
    mask = np.zeros(n, dtype=bool)
    if kind == "flipped":
        mask[:] = True
    elif kind == "noisy":
        mask[rng.choice(n, size=int(round(NOISY_FLIP_RATE * n)), replace=False)] = True
    return [flipped(pair) if f else pair for pair, f in zip(pairs, mask)], mask


def _block(which: str, block: int, n: int) -> list:
    if not 0 < n <= BLOCK:
        raise ValueError(f"n must be in 1..{BLOCK}, got {n}")
    return _slots(which)[block * BLOCK: block * BLOCK + n]


def owner_pairs_with_flags(kind: str, n_pairs: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """An owner's conversational pairs and a boolean mask of the pairs whose label was reversed.

    ``seed`` (0..OWNER_SEEDS-1) selects the owner's prompt block: owners with different seeds never
    share a (plant, topic, phrasing) slot; the same arguments always give the same pairs.
    Kinds: clean (right answer chosen; a wrong or, VAGUE_RATE of the time, vague one rejected), noisy
    (clean with NOISY_FLIP_RATE of labels reversed), flipped (every label reversed), low_effort (right
    answer chosen, always against a vague non-answer: easy pairs that teach little about correctness).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not 0 <= seed < OWNER_SEEDS:
        raise ValueError(f"owner seed must be in 0..{OWNER_SEEDS - 1}, got {seed}")
    rng = np.random.default_rng([seed, KINDS.index(kind), 7])
    return _make_pairs(kind, _block("owner", seed, n_pairs), rng)


def owner_pairs(kind: str, n_pairs: int, seed: int) -> list[dict]:
    """An owner's pairs of the given kind (see ``owner_pairs_with_flags``)."""
    return owner_pairs_with_flags(kind, n_pairs, seed)[0]


def eval_pairs(n: int, seed: int = 0) -> list[dict]:
    """A held-out clean eval set about (plant, topic) combinations no owner is ever asked about."""
    if not 0 <= seed < EVAL_SEEDS:
        raise ValueError(f"eval seed must be in 0..{EVAL_SEEDS - 1}, got {seed}")
    return _make_pairs("clean", _block("eval", seed, n), np.random.default_rng([seed, 1_007]))[0]


DEMO_OWNERS = (  # (username, kind, n_pairs); owner i uses owner seed demo_owner_seed(seed, i)
    ("ivy", "clean", 64),
    ("fern", "noisy", 64),
    ("rowan", "flipped", 64),
    ("basil", "low_effort", 64),
)
DEMO_EVAL_PAIRS = 48


def demo_owner_seed(seed: int, index: int) -> int:
    """Owner seed of the ``index``-th demo owner in demo number ``seed``."""
    return (seed * len(DEMO_OWNERS) + index) % OWNER_SEEDS


def write_chat_jsonl(pairs: list[dict], path: str | Path) -> Path:
    """Write conversational pairs, one {"prompt","chosen","rejected"} object per line."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(pair, ensure_ascii=False) + "\n" for pair in pairs)
    target.write_text(text, encoding="utf-8")
    return target


def write_demo_files(out_dir: str | Path, seed: int = 0, owners=DEMO_OWNERS,
                     n_eval: int = DEMO_EVAL_PAIRS) -> dict:
    """Write one conversational JSONL per owner and eval.jsonl.

    ``owners`` is a sequence of (username, kind, n_pairs). Returns {"eval": Path, "owners": {username: Path}}.
    """
    if len(owners) > OWNER_SEEDS:
        raise ValueError(f"at most {OWNER_SEEDS} owners have disjoint prompt blocks, got {len(owners)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for index, (username, kind, n_pairs) in enumerate(owners):
        pairs = owner_pairs(kind, n_pairs, demo_owner_seed(seed, index))
        paths[username] = write_chat_jsonl(pairs, out / f"{username}.jsonl")
    evaluation = write_chat_jsonl(eval_pairs(n_eval, seed % EVAL_SEEDS), out / "eval.jsonl")
    return {"eval": evaluation, "owners": paths}
