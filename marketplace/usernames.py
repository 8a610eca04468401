"""Usernames a reader cannot mistake for one another.

A round page, a statement or an export names owners; a Cyrillic "аlice" beside "alice" lets one
person pass as another, or as several (issue 24). So a new username is refused when
* its letters mix scripts (Latin with Cyrillic, Greek, …: no honest name needs that), or
* its skeleton equals an existing username's. The skeleton is the comparison form of
  marketplace/normalise.py (NFKC, invisible characters dropped, Cyrillic/Greek/Armenian lookalikes
  folded to Latin, case-folded) with the lookalikes that differ only by glyph shape folded too:
  "rn" → "m", "vv" → "w", "0" → "o", and "1", "|", "I" and "i" → "l" (so "ALICE" meets "alice").
Checked by owner_create (signup, `manage.py create_owner`, the demo) and by the admin's user forms.
"""
from __future__ import annotations

import unicodedata

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from .normalise import INVISIBLE, _fold

# After case-folding, so capital I (which folds to i) meets lower-case l.
_SHAPES = str.maketrans({"i": "l", "|": "l", "1": "l", "0": "o"})
# Scripts written together in one name in practice: Japanese mixes kana with kanji.
_SAME_SCRIPT = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "KATAKANA-HIRAGANA": "CJK"}


def skeleton(username: str) -> str:
    text = _fold(unicodedata.normalize("NFKC", INVISIBLE.sub("", username)))
    text = text.casefold().translate(_SHAPES)
    return text.replace("rn", "m").replace("vv", "w")


def scripts(username: str) -> set[str]:
    """The scripts of the name's letters (digits and punctuation have none)."""
    found = set()
    for ch in unicodedata.normalize("NFKC", username):
        if ch.isalpha():
            script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
            found.add(_SAME_SCRIPT.get(script, script))
    return found


def validate_username(username: str, *, exclude_pk=None) -> None:
    """Refuse a username that mixes scripts or reads like an existing one (see the module docstring)."""
    mixed = scripts(username)
    if len(mixed) > 1:
        raise ValidationError(f"a username must be written in one script; this one mixes "
                              f"{' and '.join(sorted(s.title() for s in mixed))} letters", code="mixed_scripts")
    if INVISIBLE.search(username):
        raise ValidationError("a username cannot contain invisible or control characters", code="invisible")
    wanted = skeleton(username)
    users = get_user_model().objects.exclude(pk=exclude_pk) if exclude_pk else get_user_model().objects.all()
    for existing in users.values_list("username", flat=True).iterator():
        if skeleton(existing) == wanted:
            # Never say which account: the message must not confirm that a given name exists.
            raise ValidationError("this username is taken or looks too much like an existing one; choose another",
                                  code="confusable")
