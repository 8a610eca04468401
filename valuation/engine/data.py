"""Preference pairs as the engine sees them: TRL's explicit-prompt format, plain text or conversational.

A pair (x, y_w, y_l) is a prompt with a chosen and a rejected completion (DPO,
Rafailov et al. 2023). A text pair holds strings; a conversational pair holds message
lists ((role, content) tuples, so a Pair stays hashable), which TRL renders through the
base model's chat template. The Django side decides which a round uses
(valuation/stages/common.py): conversations are flattened to text for a base model
without a chat template.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:  # pragma: no cover - typing only; `datasets` is heavy to import
    import datasets

FIELDS = ("prompt", "chosen", "rejected")
Messages = tuple[tuple[str, str], ...]  # ((role, content), ...)
Field = Union[str, Messages]


def messages_of(value) -> Messages:
    """A list of {role, content} mappings (or (role, content) pairs) as the engine's message tuple."""
    out = []
    for message in value:
        role, content = (message["role"], message["content"]) if isinstance(message, dict) else message
        if not isinstance(role, str) or not isinstance(content, str):
            raise ValueError("a message needs a string role and a string content")
        out.append((role, content))
    if not out:
        raise ValueError("a conversation needs at least one message")
    return tuple(out)


def as_dicts(messages: Messages) -> list[dict]:
    """The TRL/Hugging Face form of a message list: [{"role": ..., "content": ...}, ...]."""
    return [{"role": role, "content": content} for role, content in messages]


def prompt_text(value: Field) -> str:
    """Text as is; a conversation as "role: content" lines (marketplace.parsing.flatten_messages' rendering)."""
    return value if isinstance(value, str) else "\n".join(f"{role}: {content}" for role, content in value)


@dataclass(frozen=True)
class Pair:
    """One preference judgement: ``chosen`` is preferred to ``rejected`` after ``prompt``.

    All three fields are strings (text) or all three are message tuples (conversational)."""

    prompt: Field
    chosen: Field
    rejected: Field

    def __post_init__(self) -> None:
        kinds = {isinstance(getattr(self, field), str) for field in FIELDS}
        if len(kinds) != 1:
            raise ValueError("a pair is all text or all messages, not a mix")

    @property
    def conversational(self) -> bool:
        return not isinstance(self.prompt, str)

    def flipped(self) -> Pair:
        """The same pair with the preference label reversed (how label noise is simulated)."""
        return Pair(prompt=self.prompt, chosen=self.rejected, rejected=self.chosen)

    def flattened(self) -> Pair:
        """The pair as text: conversations as "role: content" lines (``prompt_text``)."""
        return Pair(prompt=prompt_text(self.prompt), chosen=prompt_text(self.chosen),
                    rejected=prompt_text(self.rejected))

    def as_row(self) -> dict:
        """The pair as TRL's dataset row (and the upload format): strings, or lists of message dicts."""
        if not self.conversational:
            return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        return {field: as_dicts(getattr(self, field)) for field in FIELDS}


def one_kind(pairs: Iterable[Pair]) -> list[Pair]:
    """The pairs as one dataset TRL can train: unchanged when all are text or all conversational, else with the
    conversations flattened to text (Arrow columns have one type, and TRL decides text or chat from the first
    row). The rule valuation/stages/common.keeps_messages applies to each owner's data; here it covers pools of
    several owners' pairs (fidelity.py)."""
    pairs = list(pairs)
    if len({pair.conversational for pair in pairs}) < 2:
        return pairs
    return [pair.flattened() for pair in pairs]


def pairs_to_dataset(pairs: Iterable[Pair]) -> datasets.Dataset:
    """A ``datasets.Dataset`` with prompt/chosen/rejected columns, as ``DPOTrainer`` expects: strings, or
    message lists that TRL renders through the tokenizer's chat template (``one_kind``)."""
    import datasets

    rows = [pair.as_row() for pair in one_kind(pairs)]
    columns = {field: [row[field] for row in rows] for field in FIELDS}
    return datasets.Dataset.from_dict(columns)


def pair_from_mapping(row: dict, *, line: int | None = None) -> Pair:
    """Build a ``Pair`` from a mapping (strings, or message lists), naming the line and field when one is wrong."""
    where = f"line {line}: " if line is not None else ""
    conversational = isinstance(row.get("prompt"), list)
    values = {}
    for field in FIELDS:
        value = row.get(field)
        if conversational and isinstance(value, list):
            try:
                values[field] = messages_of(value)
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{where}field {field!r}: {error}") from None
        elif not conversational and isinstance(value, str):
            values[field] = value
        else:
            want = "a list of messages" if conversational else "a string"
            raise ValueError(f"{where}field {field!r} must be {want}, got {type(value).__name__}")
    return Pair(**values)


def read_jsonl(path: str | Path) -> list[Pair]:
    """Read pairs from JSONL (one {"prompt","chosen","rejected"} object per line; blank lines skipped)."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                raise ValueError(f"line {number}: invalid JSON ({error.msg})") from error
            if not isinstance(row, dict):
                raise ValueError(f"line {number}: expected a JSON object")
            pairs.append(pair_from_mapping(row, line=number))
    return pairs


def write_jsonl(pairs: Iterable[Pair], path: str | Path) -> Path:
    """Write pairs in the upload format; returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair.as_row(), ensure_ascii=False) + "\n")
    return target
