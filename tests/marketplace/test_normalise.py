"""The normal form behind anti-replication (marketplace/normalise.py): disguised copies hash the same,
different texts do not, and a disguised copy of another owner's pair is refused across owners."""
import io

import pytest

from marketplace.normalise import content_hash, normalise_text
from marketplace.parsing import UploadRefused
from marketplace.services import REPLICATION_MESSAGE, contribution_create
from tests.conftest import jsonl_bytes


@pytest.mark.parametrize("original, disguised", [
    ("Paris is the capital", "PARIS  is\tthe\u00a0capital"),  # case, whitespace
    ("Paris is the capital", "Ｐａｒｉｓ is the capital"),  # full width
    ("Paris is the capital", "Pa\u200bris\u00ad is the\u2060 capital\ufeff"),  # invisible characters
    ("Paris is the capital", "Pаris is thе cаpitаl"),  # Cyrillic а, е
    ("Paris is the capital", "ΡARIS IS THE CAPITAL"),  # Greek capital rho, then upper case
    ("office", "ofﬁce"),  # ligature
    ("résumé", "re\u0301sume\u0301"),  # decomposed accents
    ("line\x01one", "lineone"),  # control character
])
def test_disguised_copies_normalise_equal(original, disguised):
    assert normalise_text(original) == normalise_text(disguised)
    assert content_hash(original, "a", "b") == content_hash(disguised, "a", "b")


@pytest.mark.parametrize("one, other", [
    ("Paris is the capital", "Lyon is the capital"),
    ("résumé", "resume"),  # accents are content
    ("сок", "cok"),  # Russian "juice": к has no Latin twin in the fold, so real words stay apart
    ("a b", "ab"),
])
def test_different_texts_stay_different(one, other):
    assert normalise_text(one) != normalise_text(other)


def test_a_homoglyph_copy_of_another_owners_pair_is_refused(owner_a, owner_b):
    pair = {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Rome."}
    contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes([pair])), filename="a.jsonl")
    copy = {"prompt": "Whаt is the cаpitаl of Frаnce?\u200b", "chosen": "Pаris.", "rejected": "Rоme."}
    with pytest.raises(UploadRefused) as info:
        contribution_create(owner=owner_b, file=io.BytesIO(jsonl_bytes([copy])), filename="b.jsonl")
    assert [(e.row, e.message) for e in info.value.errors] == [(1, REPLICATION_MESSAGE)]
