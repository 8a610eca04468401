"""TRL's implicit-prompt uploads (whole texts or conversations in chosen/rejected, no prompt): the prompt is
extracted as `trl.data_utils.extract_prompt` does, the pair stored in explicit form, and an implicit upload of a
held explicit pair (or the other way round) is refused as a copy."""
import io
import json

import pytest

from marketplace.models import PreferencePair
from marketplace.parsing import UploadLimits, content_hash, extract_prompt, parse_upload
from marketplace.services import REPLICATION_MESSAGE, contribution_create
from tests.conftest import csv_bytes, jsonl_bytes, parquet_bytes, upload

LIMITS = UploadLimits(max_bytes=1_000_000, max_rows=1_000, max_field_chars=2_000)
USER = {"role": "user", "content": "How should I store fresh basil so it stays green?"}
GOOD = {"role": "assistant", "content": "Stand the stems in a glass of water on the counter."}
BAD = {"role": "assistant", "content": "Put it in the fridge in a plastic bag."}
HELD = [{"prompt": "Question: How should I store fresh basil so that it stays green for a week?\nAnswer:",
         "chosen": "Trim the stems and stand them in a glass of water like cut flowers.",
         "rejected": "Put it in the fridge in a plastic bag."},
        {"prompt": "Question: Why does my sourdough starter smell like nail polish remover?\nAnswer:",
         "chosen": "It is hungry: feed it twice a day at a warmer temperature.",
         "rejected": "Throw it away, it has gone bad."}]  # answers that share no first word: the split stays put


def implicit(record: dict) -> dict:
    return {"chosen": record["prompt"] + " " + record["chosen"], "rejected": record["prompt"] + " " + record["rejected"]}


def parse(data: bytes, name: str = "pairs.jsonl"):
    return parse_upload(io.BytesIO(data), filename=name, limits=LIMITS)


@pytest.mark.parametrize("example", [
    {"chosen": "Q: sky? A: Blue.", "rejected": "Q: sky? A: Green."},
    {"chosen": "Q: sky?A: Blue.", "rejected": "Q: sky?A: Green."},
    {"chosen": "abc", "rejected": "abcdef"},  # a prefix: TRL keeps its last character as the answer
    {"chosen": [USER, GOOD], "rejected": [USER, BAD]},
    {"chosen": [USER, GOOD], "rejected": [USER, GOOD, USER, BAD]},
])
def test_extraction_is_trls_to_the_letter(example):
    from trl.data_utils import extract_prompt as trl_extract_prompt

    assert extract_prompt(example["chosen"], example["rejected"]) == trl_extract_prompt(dict(example))


def implicit_csv(records) -> bytes:
    return csv_bytes(records, header=("chosen", "rejected"))


@pytest.mark.parametrize("name, build", [("p.jsonl", jsonl_bytes), ("p.csv", implicit_csv), ("p.parquet", parquet_bytes)])
def test_implicit_text_rows_are_stored_as_their_explicit_pair(name, build):
    result = parse(build([implicit(r) for r in HELD]), name)
    assert result.errors == []
    first = result.pairs[0]
    assert (first.pair_format, first.prompt) == ("text", HELD[0]["prompt"])
    assert first.chosen == " " + HELD[0]["chosen"]  # the space before the answer starts it, as in TRL
    assert [p.content_hash for p in result.pairs] == [content_hash(r["prompt"], r["chosen"], r["rejected"])
                                                      for r in HELD]


def test_implicit_conversations_are_stored_with_the_shared_turns_as_prompt():
    result = parse(jsonl_bytes([{"chosen": [USER, GOOD], "rejected": [USER, BAD]}]))
    pair = result.pairs[0]
    assert (pair.pair_format, json.loads(pair.prompt), json.loads(pair.chosen)) == ("conversational", [USER], [GOOD])
    assert pair.content_hash == parse(jsonl_bytes([{"prompt": [USER], "chosen": [GOOD],
                                                    "rejected": [BAD]}])).pairs[0].content_hash


@pytest.mark.parametrize("row, field, message", [
    ({"chosen": "Blue sky.", "rejected": "Green sky."}, "prompt", "share no beginning"),
    ({"chosen": " Blue.", "rejected": " Green."}, "prompt", "share no beginning"),  # only a space in common
    ({"chosen": [GOOD], "rejected": [BAD]}, "prompt", "same conversation turns"),
    ({"chosen": "Q: a? A: b", "rejected": "Q: a? A: b"}, "rejected", "identical"),
    ({"chosen": [USER, GOOD], "rejected": [USER, GOOD]}, "rejected", "identical"),
    ({"chosen": "Q: a? A: b", "rejected": [USER, BAD]}, "chosen", "both be whole texts"),
    ({"chosen": "Q: a? A: b"}, "chosen", "both be whole texts"),
    ({"chosen": "", "rejected": "Q: a?"}, "chosen", "empty"),
    ({"prompt": [USER], "chosen": [USER, GOOD], "rejected": [USER, BAD]}, "prompt", "either 'prompt'"),
])
def test_unusable_implicit_rows_are_refused_naming_the_row(row, field, message):
    result = parse(jsonl_bytes([HELD[0], row]))
    assert len(result.errors) == 1, result.errors
    error = result.errors[0]
    assert (error.row, error.field) == (2, field) and message in error.message
    assert len(result.pairs) == 1


def _post(client, name: str, data: bytes):
    return client.post("/api/contributions/", {"file": upload(name, data)}, format="multipart")


def _refused_rows(response) -> list[tuple[int, str]]:
    assert response.status_code == 400, response.content[:300]
    return [(e["row"], e["message"]) for e in response.json()["errors"]]


@pytest.mark.django_db
def test_an_implicit_reupload_of_an_explicit_pair_is_a_copy(owner_a, api_b):
    contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(HELD)), filename="held.jsonl")
    data = jsonl_bytes([implicit(r) for r in HELD])
    assert _refused_rows(_post(api_b, "v.jsonl", data)) == [(1, REPLICATION_MESSAGE), (2, REPLICATION_MESSAGE)]


@pytest.mark.django_db
def test_an_explicit_reupload_of_an_implicit_conversation_is_a_copy(owner_a, api_b):
    whole = [{"chosen": [USER, GOOD], "rejected": [USER, BAD]}]
    contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(whole)), filename="held.jsonl")
    stored = PreferencePair.objects.get(contribution__owner=owner_a)
    assert json.loads(stored.prompt) == [USER]
    data = jsonl_bytes([{"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}])
    assert _refused_rows(_post(api_b, "v.jsonl", data)) == [(1, REPLICATION_MESSAGE)]
