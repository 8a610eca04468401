"""Near-duplicate pairs: the second stage of anti-replication, after the exact hash (normalise.py).

An exact hash is beaten by any edit a reader does not notice: an extra "!", "Question:" written "Q:",
markdown around the answer, an HTML entity, the answer said twice, one word more in `rejected`, a new
`rejected`, the conversational form of a text pair. So each field is compared in a canonical form that
those edits do not change, and by resemblance rather than equality:
* canonical text: HTML entities decoded, the normal form of normalise.py (case, width, invisible
  characters, homoglyphs), a leading speaker label ("Question:", "Q:", "User:") and a trailing one
  ("Answer:") dropped, every run of punctuation and markdown made one space; a conversational field is
  the text of its messages, so it meets the text pair it was made from;
* resemblance: Jaccard similarity of the canonical text's shingles — character 5-grams (typos, one
  word more or less) and word bigrams (word order) — estimated by MinHash (Broder 1997) to find
  candidates with locality-sensitive hashing (datasketch's bands), then computed exactly on the
  candidate's text, so a band collision alone never refuses anything.

Two pairs are near-duplicates when their prompts and their chosen answers are both near-identical,
whatever the rejected answers are; a pair whose prompt nearly matches an eval prompt is contamination,
whatever its answers. Only prompts are banded: both rules need a near-identical prompt.
No Django models here: services.py and near_index.py store and query the bands.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from django.conf import settings

from .normalise import normalise_text

_LABEL_HEAD = re.compile(r"^(?:question|q|user|human|prompt|instruction|input|query)\s*:\s*")
_LABEL_TAIL = re.compile(r"\s*(?:answer|a|assistant|response|output)\s*:$")
_EDGE_HEAD = re.compile(r"^[\W_]+")  # markdown or quotes before a label ("**Q:**")
_EDGE_TAIL = re.compile(r"[^\w:]+$")  # punctuation after one ("Answer: ...")
_WORD = re.compile(r"[^\W_]+")  # letters and digits: punctuation, markdown and underscores separate words
CHAR_SHINGLE = 5  # long enough that two unrelated sentences share few, short enough that a typo costs few


@dataclass(frozen=True)
class NearDupConfig:
    # Jaccard similarity of canonical prompts at or above which two pairs ask the same thing. The demo's
    # distinct prompts one word apart ("old bike" / "red bike") reach 0.84; a typo in a long prompt
    # stays above 0.85.
    prompt_threshold: float
    # ... and of chosen answers at or above which they also teach the same thing (rejected is not
    # compared: a copy with a new rejected answer is still a copy). The demo's distinct pairs whose
    # prompts pass 0.85 have chosen answers below 0.6.
    response_threshold: float
    # Jaccard similarity to an eval prompt at or above which a pair is contamination, whatever its answers.
    eval_prompt_threshold: float
    # MinHash permutations and the LSH threshold that picks datasketch's bands (b = 14 of r = 9 rows):
    # a prompt at 0.85 similarity shares a band with probability 0.975, at 0.9 0.999, at 1.0 always —
    # and two prompts written from one template (~0.45) share one with probability 0.01, few enough
    # candidates to check with 100,000 pairs held.
    num_perm: int = 128
    lsh_threshold: float = 0.7

    @classmethod
    def from_settings(cls) -> NearDupConfig:
        return cls(prompt_threshold=settings.NEAR_DUP_PROMPT_THRESHOLD,
                   response_threshold=settings.NEAR_DUP_RESPONSE_THRESHOLD,
                   eval_prompt_threshold=settings.NEAR_DUP_EVAL_PROMPT_THRESHOLD,
                   num_perm=settings.NEAR_DUP_NUM_PERM, lsh_threshold=settings.NEAR_DUP_LSH_THRESHOLD)


def field_text(value: str, pair_format: str) -> str:
    """The text a reader sees in a stored field: a conversational field's message contents, joined."""
    if pair_format == "conversational":
        return "\n".join(m["content"] for m in json.loads(value))
    return value


def canonical(text: str) -> str:
    text = normalise_text(html.unescape(html.unescape(text)))  # "&amp;#63;" is "?" twice over
    text = _EDGE_TAIL.sub("", _EDGE_HEAD.sub("", text))
    text = _LABEL_TAIL.sub("", _LABEL_HEAD.sub("", text))
    return " ".join(_WORD.findall(text))


def shingles(canonical_text: str) -> frozenset[str]:
    text, words = canonical_text, canonical_text.split()
    out = {text[i:i + CHAR_SHINGLE] for i in range(max(1, len(text) - CHAR_SHINGLE + 1))}
    # "\x1f" cannot occur in canonical text: a word bigram never equals a character shingle
    out.update([a + "\x1f" + b for a, b in zip(words, words[1:])])
    return frozenset(out)


def field_shingles(value: str, pair_format: str) -> frozenset[str]:
    return shingles(canonical(field_text(value, pair_format)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


class PairShingles:
    """A pair's prompt shingles, and its chosen answer's computed only when a prompt matches (most
    comparisons stop at the prompt)."""

    __slots__ = ("prompt", "_chosen", "_format")

    def __init__(self, prompt: frozenset[str], chosen: str, pair_format: str):
        self.prompt, self._chosen, self._format = prompt, chosen, pair_format

    @classmethod
    def of(cls, prompt: str, chosen: str, pair_format: str) -> PairShingles:
        return cls(field_shingles(prompt, pair_format), chosen, pair_format)

    @property
    def chosen(self) -> frozenset[str]:
        if isinstance(self._chosen, str):
            self._chosen = field_shingles(self._chosen, self._format)
        return self._chosen


def same_pair(a: PairShingles, b: PairShingles, config: NearDupConfig) -> bool:
    return (jaccard(a.prompt, b.prompt) >= config.prompt_threshold
            and jaccard(a.chosen, b.chosen) >= config.response_threshold)


def same_eval_prompt(a: PairShingles, eval_prompt: frozenset[str], config: NearDupConfig) -> bool:
    return jaccard(a.prompt, eval_prompt) >= config.eval_prompt_threshold


@lru_cache(maxsize=8)
def bands(num_perm: int, lsh_threshold: float) -> tuple[int, int]:
    """(b, r): datasketch's choice of b bands of r rows for this threshold (false positives and negatives
    weighted equally)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=lsh_threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def minhashes(shingle_sets: list[frozenset[str]], config: NearDupConfig) -> list:
    """datasketch MinHashes; CRC-32 hashes the shingles (a third of SHA-1's cost, and datasketch mixes
    it before permuting). Part of the index's format, like num_perm: changing it needs a rebuild."""
    from datasketch import MinHash

    return MinHash.bulk([[s.encode("utf-8") for s in shingle_set] for shingle_set in shingle_sets],
                        num_perm=config.num_perm, hashfunc=zlib.crc32)


def band_keys(minhash, config: NearDupConfig) -> list[int]:
    """One signed 64-bit key per band (the index's column): the band's number and its r hash values."""
    b, r = bands(config.num_perm, config.lsh_threshold)
    values = np.asarray(minhash.hashvalues, dtype=np.uint64)
    keys = []
    for band in range(b):
        digest = hashlib.blake2b(band.to_bytes(2, "little") + values[band * r:(band + 1) * r].tobytes(),
                                 digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys
