"""The normal form behind anti-replication: two pairs a reader cannot tell apart hash the same.

A copy of another owner's pair must not earn a share of its value, so `content_hash` is taken over a
form that trivial edits do not change:
* Unicode NFKC (full-width letters, ligatures, superscripts, non-breaking spaces → their plain form);
* invisible characters dropped: format characters (zero-width space/joiners, soft hyphen, BOM, bidi
  controls, tag characters), variation selectors and control characters;
* letters of Cyrillic, Greek and Armenian that render like Latin ones folded to the Latin letter (the
  Latin-lookalike part of Unicode TR39's confusables, for the scripts a homoglyph swap uses in practice);
* case-folded, whitespace runs collapsed to one space.
The fold is only ever used to compare; the text stored is what the owner uploaded. Two genuinely
different texts collide only when they differ in nothing but lookalike letters across scripts.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata

# Default-ignorable code points (format characters, variation selectors, fillers, tags) and C0/C1
# controls other than whitespace (whitespace is collapsed below).
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")

# Lookalike letter → the Latin letter it renders as. Upper case first (folded before case-folding, so
# Cyrillic "В" meets Latin "B"), then lower case.
_UPPER = {
    "A": "АΑ", "B": "ВΒ", "C": "СϹ", "E": "ЕΕ", "H": "НΗ", "I": "ІΙӀ", "J": "Ј", "K": "КΚ", "M": "МΜ",
    "N": "Ν", "O": "ОΟՕ", "P": "РΡ", "S": "Ѕ", "T": "ТΤ", "X": "ХΧ", "Y": "ҮΥ", "Z": "Ζ",
}
_LOWER = {
    "a": "аα", "c": "сϲ", "d": "ԁ", "e": "е", "g": "ɡ", "h": "һհ", "i": "іιı", "j": "јϳ", "k": "κ",
    "l": "ӏ", "n": "ոη", "o": "оοօ", "p": "рρ", "q": "ԛ", "s": "ѕ", "u": "υս", "v": "ν", "w": "ԝ",
    "x": "хχ", "y": "уγ",
}
_FOLD = str.maketrans({look: latin for latin, looks in (_UPPER | _LOWER).items() for look in looks})
_LOOKALIKE = re.compile("[" + "".join(chr(c) for c in _FOLD) + "]")


def normalise_text(text: str) -> str:
    """Case-, width-, whitespace-, invisible-character- and homoglyph-insensitive form (see above)."""
    if text.isascii():  # most text: NFKC and the fold change nothing, only controls may need dropping
        return " ".join((text if text.isprintable() else INVISIBLE.sub("", text)).lower().split())
    text = unicodedata.normalize("NFKC", INVISIBLE.sub("", text))
    text = _fold(text).casefold()
    return " ".join(_fold(text).split())


def _fold(text: str) -> str:
    return text.translate(_FOLD) if _LOOKALIKE.search(text) else text


def content_hash(prompt: str, chosen: str, rejected: str) -> str:
    canonical = json.dumps([normalise_text(prompt), normalise_text(chosen), normalise_text(rejected)],
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
