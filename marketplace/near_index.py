"""The persisted near-duplicate index (models.NearDupKey, NearDupSignature) and the screening of an
upload against it.

The index holds the LSH band keys and the MinHash of every held prompt (owners' pairs and eval pairs);
it is written with the pairs it indexes and loses their rows with them, so it is never rebuilt for an
upload. An upload's pairs are fingerprinted once (neardup.py); their keys find candidate held pairs in
the indexed table; a candidate whose MinHash agreement is far below every threshold is dropped (most
are: prompts written from one template share bands by chance), and the rest are confirmed on their
text by the rules of neardup.py.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
from django.db import connection
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from .neardup import NearDupConfig, PairShingles, band_keys, field_shingles, minhashes, same_eval_prompt, same_pair

KEY_QUERY_CHUNK = 900  # below SQLite's variable limit on every version we support
INSERT_BATCH = 5000


# A candidate is compared on its text only when its MinHash agrees on at least this share of values:
# far enough below the lowest threshold (0.85) that a true match is never dropped (the estimate's
# standard deviation there is 0.03 at 128 permutations), high enough to drop chance band collisions.
PREFILTER_MARGIN = 0.2
SIGNATURE_DTYPE = np.dtype("<u4")
# The work per pair is bounded whatever the data: a band's bucket yields at most BUCKET_CAP pairs, and
# at most MAX_CANDIDATES candidates per pair are compared — those sharing the most bands with it (a
# copy shares all 14, a pair at 0.85 similarity about 3, two prompts of one template rarely one).
# Unbounded, a file of thousands of pairs written from one template would make the check quadratic.
BUCKET_CAP = 32
MAX_CANDIDATES = 16


@dataclass(frozen=True)
class Fingerprint:
    shingles: PairShingles
    keys: tuple[int, ...]
    signature: np.ndarray


def fingerprint(pairs, config: NearDupConfig) -> list[Fingerprint]:
    """`pairs`: anything with prompt, chosen and pair_format (a ParsedPair, a stored pair)."""
    prints = [PairShingles.of(p.prompt, p.chosen, p.pair_format) for p in pairs]
    hashes = minhashes([s.prompt for s in prints], config) if prints else []
    return [Fingerprint(s, tuple(band_keys(h, config)), np.asarray(h.hashvalues, dtype=SIGNATURE_DTYPE))
            for s, h in zip(prints, hashes)]


def within_file(prints: list[Fingerprint], config: NearDupConfig) -> dict[int, int]:
    """{index: index of an earlier pair of the same file it nearly copies}."""
    seen: dict[int, list[int]] = defaultdict(list)
    signatures = np.stack([fp.signature for fp in prints]) if prints else None
    floor, copies = _floor(config), {}
    for i, fp in enumerate(prints):
        nearest = _nearest(j for key in fp.keys for j in seen.get(key, ()))
        close = _agreeing(nearest, signatures[nearest] if nearest else None, fp.signature, floor)
        match = next((j for j in sorted(close) if same_pair(fp.shingles, prints[j].shingles, config)), None)
        if match is not None:
            copies[i] = match
            continue  # a copy is not indexed: a third row is compared with the original
        for key in fp.keys:
            if len(seen[key]) < BUCKET_CAP:
                seen[key].append(i)
    return copies


def _nearest(found) -> list:
    """The MAX_CANDIDATES candidates found in the most of a pair's bands."""
    counts = Counter(found)
    if len(counts) <= MAX_CANDIDATES:
        return list(counts)
    return [src for src, _ in counts.most_common(MAX_CANDIDATES)]


def _floor(config: NearDupConfig) -> float:
    return min(config.prompt_threshold, config.eval_prompt_threshold) - PREFILTER_MARGIN


def _agreeing(candidates: list, signatures, mine: np.ndarray, floor: float) -> list:
    """The candidates (rows of `signatures`) whose MinHash agrees with `mine` on at least `floor` of
    its values."""
    if not candidates:
        return []
    agree = np.count_nonzero(signatures == mine, axis=1)
    return [c for c, n in zip(candidates, agree.tolist()) if n >= floor * len(mine)]


def held_matches(prints: list[Fingerprint], config: NearDupConfig, *, skip=frozenset()) -> dict[int, str]:
    """{index: "eval" | "near"} for the pairs (not in `skip`) that nearly copy held data; an eval match
    wins, as it is the graver."""
    from .models import EvalPair, NearDupKey, NearDupSignature, PreferencePair

    wanted = sorted({key for i, fp in enumerate(prints) if i not in skip for key in fp.keys})
    sources: dict[int, list[tuple[int | None, int | None]]] = defaultdict(list)
    for start in range(0, len(wanted), KEY_QUERY_CHUNK):
        rows = NearDupKey.objects.filter(key__in=wanted[start:start + KEY_QUERY_CHUNK]) \
            .annotate(rank=Window(RowNumber(), partition_by=[F("key")], order_by=F("id").asc())) \
            .filter(rank__lte=BUCKET_CAP)
        for key, pair_id, eval_id in rows.values_list("key", "pair_id", "eval_pair_id"):
            sources[key].append((pair_id, eval_id))
    candidates = {i: _nearest(src for key in fp.keys for src in sources.get(key, ()))
                  for i, fp in enumerate(prints) if i not in skip}
    candidates = _prefilter(prints, candidates, NearDupSignature, config)
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


def _prefilter(prints, candidates: dict[int, list], signature_model, config: NearDupConfig) -> dict[int, list]:
    """Keep the candidates whose stored MinHash agrees with the pair's on enough values."""
    signatures = {}
    for field, slot in (("pair_id", 0), ("eval_pair_id", 1)):
        ids = sorted({src[slot] for found in candidates.values() for src in found if src[slot] is not None})
        for start in range(0, len(ids), KEY_QUERY_CHUNK):
            rows = signature_model.objects.filter(**{f"{field}__in": ids[start:start + KEY_QUERY_CHUNK]})
            for pair_id, eval_id, blob in rows.values_list("pair_id", "eval_pair_id", "prompt"):
                signatures[(pair_id, eval_id)] = np.frombuffer(bytes(blob), dtype=SIGNATURE_DTYPE)
    kept, floor = {}, _floor(config)
    for i, found in candidates.items():
        known = [src for src in found if src in signatures]
        stacked = np.stack([signatures[src] for src in known]) if known else None
        kept[i] = [src for src in found if src not in signatures] + _agreeing(  # no signature: on the text
            known, stacked, prints[i].signature, floor)
    return kept


def _load(model, ids: set[int], shingle) -> dict:
    out, ids = {}, sorted(ids)
    for start in range(0, len(ids), KEY_QUERY_CHUNK):
        rows = model.objects.filter(pk__in=ids[start:start + KEY_QUERY_CHUNK]) \
            .values_list("pk", "prompt", "chosen", "pair_format")
        out.update((pk, shingle(prompt, chosen, fmt)) for pk, prompt, chosen, fmt in rows)
    return out


def index_rows(key_model, signature_model, prints_of, *, field: str) -> None:
    """Store the band keys and MinHash of stored pairs, given as (pk, Fingerprint); `field` is "pair_id"
    or "eval_pair_id"; models are arguments so a migration can pass its historical ones. Plain INSERTs:
    the index has b rows per pair, and a model instance per row would cost more than the check."""
    prints_of = list(prints_of)
    _insert(key_model, field, "key", [(key, pk) for pk, fp in prints_of for key in fp.keys])
    _insert(signature_model, field, "prompt", [(fp.signature.tobytes(), pk) for pk, fp in prints_of])


def _insert(model, field: str, column: str, rows: list[tuple]) -> None:
    other = "eval_pair_id" if field == "pair_id" else "pair_id"
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({quote(column)}, {quote(field)}, {quote(other)}) "
           "VALUES (%s, %s, NULL)")
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_BATCH):
            cursor.executemany(sql, rows[start:start + INSERT_BATCH])


def backfill(*, pair_model, eval_model, key_model, signature_model, config: NearDupConfig,
             batch: int = 2000) -> int:
    """Index every held pair not indexed yet (idempotent); models are arguments so a migration can pass
    its historical ones. Returns the number of pairs indexed."""
    done = 0
    for model, field in ((pair_model, "pair_id"), (eval_model, "eval_pair_id")):
        indexed = signature_model.objects.filter(**{f"{field}__isnull": False}).values(field)
        todo = model.objects.exclude(pk__in=indexed).order_by("pk").only("prompt", "chosen", "pair_format")
        last = 0
        while True:
            chunk = list(todo.filter(pk__gt=last)[:batch])
            if not chunk:
                break
            index_rows(key_model, signature_model, zip((p.pk for p in chunk), fingerprint(chunk, config)),
                       field=field)
            done, last = done + len(chunk), chunk[-1].pk
    return done
