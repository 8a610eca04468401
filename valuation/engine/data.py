"""Preference pairs as the engine sees them: TRL's explicit-prompt text format.

A pair (x, y_w, y_l) is a prompt with a chosen and a rejected completion (DPO,
Rafailov et al. 2023). The Django side flattens conversational uploads to plain text
before handing pairs over, so here every field is a string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only; `datasets` is heavy to import
    import datasets

FIELDS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class Pair:
    """One preference judgement: ``chosen`` is preferred to ``rejected`` after ``prompt``."""

    prompt: str
    chosen: str
    rejected: str

    def flipped(self) -> Pair:
        """The same pair with the preference label reversed (how label noise is simulated)."""
        return Pair(prompt=self.prompt, chosen=self.rejected, rejected=self.chosen)


def pairs_to_dataset(pairs: Iterable[Pair]) -> datasets.Dataset:
    """A ``datasets.Dataset`` with prompt/chosen/rejected columns, as ``DPOTrainer`` expects."""
    import datasets

    rows = list(pairs)
    columns = {field: [getattr(pair, field) for pair in rows] for field in FIELDS}
    return datasets.Dataset.from_dict(columns)


def pair_from_mapping(row: dict, *, line: int | None = None) -> Pair:
    """Build a ``Pair`` from a mapping, naming the line and field when one is missing."""
    where = f"line {line}: " if line is not None else ""
    values = {}
    for field in FIELDS:
        value = row.get(field)
        if not isinstance(value, str):
            raise ValueError(f"{where}field {field!r} must be a string, got {type(value).__name__}")
        values[field] = value
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
            handle.write(json.dumps(asdict(pair), ensure_ascii=False) + "\n")
    return target
