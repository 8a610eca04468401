"""The persisted near-duplicate index (models.NearDupKey) and the screening of an upload against it.

The index holds the LSH band keys of every held prompt (owners' pairs and eval pairs); it is written
with the pairs it indexes and loses their rows with them, so it is never rebuilt for an upload. An
upload's pairs are fingerprinted once (neardup.py); their keys find candidate held pairs in the
indexed table, and each candidate is confirmed on its text by the rules of neardup.py.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db import connection

from .neardup import NearDupConfig, PairShingles, band_keys, field_shingles, minhashes, same_eval_prompt, same_pair

KEY_QUERY_CHUNK = 900  # below SQLite's variable limit on every version we support
INSERT_BATCH = 5000


@dataclass(frozen=True)
class Fingerprint:
    shingles: PairShingles
    keys: tuple[int, ...]


def fingerprint(pairs, config: NearDupConfig) -> list[Fingerprint]:
    """`pairs`: anything with prompt, chosen and pair_format (a ParsedPair, a stored pair)."""
    prints = [PairShingles.of(p.prompt, p.chosen, p.pair_format) for p in pairs]
    hashes = minhashes([s.prompt for s in prints], config) if prints else []
    return [Fingerprint(s, tuple(band_keys(h, config))) for s, h in zip(prints, hashes)]


def within_file(prints: list[Fingerprint], config: NearDupConfig) -> dict[int, int]:
    """{index: index of an earlier pair of the same file it nearly copies}."""
    seen: dict[int, list[int]] = defaultdict(list)
    copies = {}
    for i, fp in enumerate(prints):
        candidates = {j for key in fp.keys for j in seen.get(key, ())}
        match = next((j for j in sorted(candidates) if same_pair(fp.shingles, prints[j].shingles, config)), None)
        if match is not None:
            copies[i] = match
            continue  # a copy is not indexed: a third row is compared with the original
        for key in fp.keys:
            seen[key].append(i)
    return copies


def held_matches(prints: list[Fingerprint], config: NearDupConfig, *, skip=frozenset()) -> dict[int, str]:
    """{index: "eval" | "near"} for the pairs (not in `skip`) that nearly copy held data; an eval match
    wins, as it is the graver."""
    from .models import EvalPair, NearDupKey, PreferencePair

    wanted = sorted({key for i, fp in enumerate(prints) if i not in skip for key in fp.keys})
    sources: dict[int, list[tuple[int | None, int | None]]] = defaultdict(list)
    for start in range(0, len(wanted), KEY_QUERY_CHUNK):
        rows = NearDupKey.objects.filter(key__in=wanted[start:start + KEY_QUERY_CHUNK])
        for key, pair_id, eval_id in rows.values_list("key", "pair_id", "eval_pair_id"):
            sources[key].append((pair_id, eval_id))
    candidates = {i: {src for key in fp.keys for src in sources.get(key, ())}
                  for i, fp in enumerate(prints) if i not in skip}
    pair_ids = {p for found in candidates.values() for p, _ in found if p is not None}
    eval_ids = {e for found in candidates.values() for _, e in found if e is not None}
    held = _load(PreferencePair, pair_ids, lambda prompt, chosen, fmt: PairShingles.of(prompt, chosen, fmt))
    evals = _load(EvalPair, eval_ids, lambda prompt, chosen, fmt: field_shingles(prompt, fmt))
    matches = {}
    for i, found in candidates.items():
        mine = prints[i].shingles
        if any(e is not None and same_eval_prompt(mine, evals[e], config) for _, e in found):
            matches[i] = "eval"
        elif any(p is not None and same_pair(mine, held[p], config) for p, _ in found):
            matches[i] = "near"
    return matches


def _load(model, ids: set[int], shingle) -> dict:
    out, ids = {}, sorted(ids)
    for start in range(0, len(ids), KEY_QUERY_CHUNK):
        rows = model.objects.filter(pk__in=ids[start:start + KEY_QUERY_CHUNK]) \
            .values_list("pk", "prompt", "chosen", "pair_format")
        out.update((pk, shingle(prompt, chosen, fmt)) for pk, prompt, chosen, fmt in rows)
    return out


def index_rows(key_model, ids_and_keys, *, field: str) -> None:
    """Store the band keys of stored pairs: `field` is "pair_id" or "eval_pair_id". Plain INSERTs: the
    index has b rows per pair, and building a model instance per row would cost more than the check."""
    other = "eval_pair_id" if field == "pair_id" else "pair_id"
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(key_model._meta.db_table)} ({quote('key')}, {quote(field)}, {quote(other)}) "
           "VALUES (%s, %s, NULL)")
    rows = [(key, pk) for pk, keys in ids_and_keys for key in keys]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_BATCH):
            cursor.executemany(sql, rows[start:start + INSERT_BATCH])


def backfill(*, pair_model, eval_model, key_model, config: NearDupConfig, batch: int = 2000) -> int:
    """Index every held pair not indexed yet (idempotent); models are arguments so a migration can pass
    its historical ones. Returns the number of pairs indexed."""
    done = 0
    for model, field in ((pair_model, "pair_id"), (eval_model, "eval_pair_id")):
        indexed = key_model.objects.filter(**{f"{field}__isnull": False}).values(field)
        todo = model.objects.exclude(pk__in=indexed).order_by("pk").only("prompt", "chosen", "pair_format")
        last = 0
        while True:
            chunk = list(todo.filter(pk__gt=last)[:batch])
            if not chunk:
                break
            index_rows(key_model, ((p.pk, fp.keys) for p, fp in zip(chunk, fingerprint(chunk, config))),
                       field=field)
            done, last = done + len(chunk), chunk[-1].pk
    return done
