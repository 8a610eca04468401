"""Content hashes that key every cache in a valuation round.

A round reuses an owner model when (base model hash, owner data hash, training config
hash) match (docs/design.md section 3), so each hash here must be a pure function of
content: SHA-256 over canonical bytes, never of timestamps, absolute paths or dict
order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20  # read files in 1 MiB chunks so model weights never sit in memory twice


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's contents (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def directory_hash(path: str | Path, *, exclude: Iterable[str] = ()) -> str:
    """SHA-256 over the sorted relative paths and contents of every file below ``path``.

    ``exclude`` names top-level files to leave out (run records such as timings that
    describe an artifact without being part of it). Used as the "model hash".
    """
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    skipped = set(exclude)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        relative = file.relative_to(root).as_posix()
        if relative in skipped:
            continue
        # Length-prefix each field so ("ab", "c") and ("a", "bc") cannot collide.
        name = relative.encode("utf-8")
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def config_hash(config: Any) -> str:
    """SHA-256 of the canonical JSON of a dataclass instance (its type name included).

    Including the class name keeps two config types with equal fields from sharing a
    cache entry.
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config_hash expects a dataclass instance, got {type(config).__name__}")
    payload = {"type": type(config).__name__, "fields": dataclasses.asdict(config)}
    return sha256_bytes(canonical_json(payload).encode("utf-8"))


def pairs_hash(pairs: Iterable[Any]) -> str:
    """Order-sensitive SHA-256 of preference pairs (``Pair`` dataclasses or plain dicts).

    A text pair hashes its three strings; a conversational one its message lists as {role, content}
    objects, so the two kinds never collide and text hashes are those of every earlier round."""
    rows = []
    for pair in pairs:
        if hasattr(pair, "as_row"):
            row = pair.as_row()
        else:
            row = dataclasses.asdict(pair) if dataclasses.is_dataclass(pair) else dict(pair)
        rows.append({key: row[key] for key in ("prompt", "chosen", "rejected")})
    return sha256_bytes(canonical_json(rows).encode("utf-8"))
