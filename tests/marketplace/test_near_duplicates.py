"""Near-duplicate refusal at upload (marketplace/neardup.py, near_index.py) through the REST API.

Every edit that beat the exact hash in issue 24 is refused, against another owner's pairs, the owner's
own and eval data, with one message that says nothing of whose; distinct pairs on the same topic are
accepted; the persisted index follows accepts, eval imports and deletions.
"""
import io
from html import escape as html_escape

import pytest

from marketplace.models import Contribution, NearDupKey, NearDupSignature, PreferencePair
from marketplace.neardup import NearDupConfig, bands
from marketplace.services import REPLICATION_MESSAGE, contribution_create, contribution_delete, eval_set_create
from tests.conftest import csv_bytes, jsonl_bytes, parquet_bytes, upload

HELD = [
    {"prompt": "Question: How should I store fresh basil so that it stays green for a whole week?\nAnswer:",
     "chosen": "Trim the stems, stand them in a glass of water like cut flowers, and keep the glass on the "
               "counter out of direct sun.",
     "rejected": "Put it in the fridge in a plastic bag."},
    {"prompt": "Question: Why does my sourdough starter smell like nail polish remover?\nAnswer:",
     "chosen": "It is hungry: the yeast makes acetone-like esters when it runs out of flour, so feed it "
               "twice a day at a warmer temperature.",
     "rejected": "It has gone bad and you should throw it away."},
    {"prompt": "Question: What is the difference between a list and a tuple in Python?\nAnswer:",
     "chosen": "A list is mutable and can grow or shrink, while a tuple is immutable, hashable when its "
               "items are, and slightly faster to create.",
     "rejected": "There is no difference, they are the same thing."},
]
# Pairs on the same topics and templates that are not copies: each must be accepted.
DISTINCT = [
    {"prompt": "Question: How should I store fresh parsley so that it stays crisp in the fridge?\nAnswer:",
     "chosen": "Wrap the bunch loosely in a damp paper towel and keep it in the crisper drawer.",
     "rejected": "Leave it on the windowsill."},
    {"prompt": "Question: Why does my sourdough starter have a layer of grey liquid on top?\nAnswer:",
     "chosen": "That is hooch, alcohol from a starter that needs feeding; pour it off or stir it in and feed "
               "the starter.",
     "rejected": "Your starter is dead."},
    {"prompt": "Question: What is the difference between a set and a dict in Python?\nAnswer:",
     "chosen": "A set holds unique hashable items with no values attached, while a dict maps each unique "
               "key to a value.",
     "rejected": "A set is sorted and a dict is not."},
]


def _edit(record: dict, field: str, change) -> dict:
    return {**record, field: change(record[field])}


EDITS = {  # the edit classes the exact hash let through (issue 24)
    "extra-bang-on-chosen": lambda r: _edit(r, "chosen", lambda t: t + "!"),
    "punctuation-removed": lambda r: _edit(_edit(r, "prompt", lambda t: t.replace("?", "")),
                                           "chosen", lambda t: t.replace(",", "")),
    "punctuation-added": lambda r: _edit(r, "chosen", lambda t: t.replace(" ", ", ", 2) + "!!"),
    "word-added-to-rejected": lambda r: _edit(r, "rejected", lambda t: "Honestly, " + t),
    "new-rejected": lambda r: {**r, "rejected": "I would rather not say anything about that at all."},
    "question-to-q": lambda r: _edit(r, "prompt", lambda t: t.replace("Question:", "Q:")),
    "markdown-answer": lambda r: _edit(r, "chosen", lambda t: f"**Answer:** _{t}_"),
    "html-entity": lambda r: _edit(r, "prompt", lambda t: t.replace("?", "&#63;")),
    "chosen-repeated": lambda r: _edit(r, "chosen", lambda t: t + " " + t),
}


def conversational(record: dict) -> dict:
    prompt = record["prompt"].removeprefix("Question: ").removesuffix("\nAnswer:")
    return {"prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": record["chosen"]}],
            "rejected": [{"role": "assistant", "content": record["rejected"]}]}


def _store(owner, records, name="held.jsonl"):
    return contribution_create(owner=owner, file=io.BytesIO(jsonl_bytes(records)), filename=name)


def _post(client, name: str, data: bytes):
    return client.post("/api/contributions/", {"file": upload(name, data)}, format="multipart")


def _refused_rows(response) -> list[tuple[int, str]]:
    assert response.status_code == 400, response.content[:300]
    return [(e["row"], e["message"]) for e in response.json()["errors"]]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_each_edit_of_another_owners_pairs_is_refused(edit, fmt, owner_a, api_b, owner_b):
    _store(owner_a, HELD)
    variants = [EDITS[edit](r) for r in HELD]
    data = jsonl_bytes(variants) if fmt == "jsonl" else csv_bytes(variants)
    assert _refused_rows(_post(api_b, f"v.{fmt}", data)) == [(row, REPLICATION_MESSAGE) for row in (1, 2, 3)]
    assert not PreferencePair.objects.filter(contribution__owner=owner_b).exists()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_the_conversational_form_of_a_text_pair_is_the_same_pair(fmt, owner_a, api_b):
    _store(owner_a, HELD)
    variants = [conversational(r) for r in HELD]
    data = jsonl_bytes(variants) if fmt == "jsonl" else parquet_bytes(variants)
    assert _refused_rows(_post(api_b, f"v.{fmt}", data)) == [(row, REPLICATION_MESSAGE) for row in (1, 2, 3)]


def test_a_text_pair_of_a_held_conversational_pair_is_refused(owner_a, api_b):
    _store(owner_a, [conversational(r) for r in HELD])
    assert _refused_rows(_post(api_b, "v.csv", csv_bytes(HELD))) == [(r, REPLICATION_MESSAGE) for r in (1, 2, 3)]


def test_distinct_pairs_on_the_same_topics_are_accepted(owner_a, api_b, staff_user):
    _store(owner_a, HELD[:2])
    eval_set_create(name="held-out", file=io.BytesIO(jsonl_bytes(HELD[2:])), filename="e.jsonl",
                    created_by=staff_user)
    response = _post(api_b, "distinct.jsonl", jsonl_bytes(DISTINCT))
    assert response.status_code == 201, response.content[:500]
    assert response.json()["n_pairs"] == 3


def test_an_eval_prompt_is_contamination_whatever_the_answers(owner_a, api_a, staff_user):
    eval_set_create(name="held-out", file=io.BytesIO(jsonl_bytes(HELD)), filename="e.jsonl", created_by=staff_user)
    fresh = [{"prompt": r["prompt"].replace("Question:", "Q:"), "chosen": f"A brand new answer number {i}.",
              "rejected": f"Another unrelated reply, {i}."} for i, r in enumerate(HELD)]
    assert _refused_rows(_post(api_a, "fresh.jsonl", jsonl_bytes(fresh))) == [
        (row, REPLICATION_MESSAGE) for row in (1, 2, 3)]
    assert not PreferencePair.objects.exists()


def test_the_refusal_is_the_same_for_own_other_and_eval_data(owner_a, owner_b, api_b, staff_user):
    """Row 1 nearly copies owner A's pair, row 2 the caller's own earlier pair, row 3 an eval pair:
    stored and returned, each refusal reads the same."""
    _store(owner_a, HELD[:1])
    _store(owner_b, HELD[1:2], name="mine.jsonl")
    eval_set_create(name="held-out", file=io.BytesIO(jsonl_bytes(HELD[2:])), filename="e.jsonl",
                    created_by=staff_user)
    probe = [EDITS["extra-bang-on-chosen"](r) for r in HELD]
    response = _post(api_b, "probe.jsonl", jsonl_bytes(probe))
    assert _refused_rows(response) == [(row, REPLICATION_MESSAGE) for row in (1, 2, 3)]
    exact = _post(api_b, "probe.jsonl", jsonl_bytes(HELD))
    assert _refused_rows(exact) == [(row, REPLICATION_MESSAGE) for row in (1, 2, 3)]
    text = response.content.decode() + exact.content.decode()
    for clue in ("owner_a", "eval", "held-out", "your", "earlier"):
        assert clue not in text.lower()
    stored = [e["message"] for c in Contribution.objects.filter(status="refused") for e in c.row_errors]
    assert stored == [REPLICATION_MESSAGE] * 6


def test_near_duplicates_inside_one_upload_are_refused(api_a):
    rows = HELD + [EDITS["chosen-repeated"](HELD[0]), EDITS["question-to-q"](HELD[2])]
    assert _refused_rows(_post(api_a, "self.jsonl", jsonl_bytes(rows))) == [
        (4, "nearly the same as row 1"), (5, "nearly the same as row 3")]


def test_the_index_follows_accepts_eval_imports_and_deletions(owner_a, api_b, staff_user):
    n_bands = bands(NearDupConfig.from_settings().num_perm, NearDupConfig.from_settings().lsh_threshold)[0]
    contribution = _store(owner_a, HELD)
    assert NearDupKey.objects.filter(pair__contribution=contribution).count() == 3 * n_bands
    variant = jsonl_bytes([EDITS["markdown-answer"](HELD[0])])
    assert _post(api_b, "v.jsonl", variant).status_code == 400
    contribution_delete(contribution=contribution)  # withdrawn: its pairs no longer block anyone
    assert not NearDupKey.objects.exists() and not NearDupSignature.objects.exists()
    assert _post(api_b, "v.jsonl", variant).status_code == 201
    eval_set = eval_set_create(name="later", file=io.BytesIO(jsonl_bytes(HELD[1:])), filename="e.jsonl",
                               created_by=staff_user)
    assert NearDupKey.objects.filter(eval_pair__eval_set=eval_set).count() == 2 * n_bands
    assert _post(api_b, "w.jsonl", jsonl_bytes([EDITS["html-entity"](HELD[1])])).status_code == 400


def test_the_backfill_indexes_pairs_held_before_the_index(owner_a, api_b):
    from django.core.management import call_command

    _store(owner_a, HELD)
    NearDupKey.objects.all().delete()  # as after migrating a database of older uploads
    NearDupSignature.objects.all().delete()
    assert _post(api_b, "v.jsonl", jsonl_bytes([EDITS["new-rejected"](HELD[0])])).status_code == 201
    out = io.StringIO()
    call_command("index_near_duplicates", stdout=out)
    assert "indexed 3 pairs" in out.getvalue()  # HELD; the variant that got in meanwhile was indexed on upload
    assert _post(api_b, "w.jsonl", jsonl_bytes([EDITS["chosen-repeated"](HELD[1])])).status_code == 400
    call_command("index_near_duplicates", stdout=out)  # idempotent
    assert "indexed 0 pairs" in out.getvalue()


def test_the_demo_owners_are_accepted_and_the_copier_refused(tmp_path, staff_user):
    """The demo's owners draw one-word-apart prompts from one template (and its eval set too): distinct
    pairs that must pass, whichever is stored first; mallory's byte copy of alice's file must not."""
    from marketplace.services import owner_get_or_create
    from valuation.engine import synthetic

    files = synthetic.write_demo_files(tmp_path, seed=0)
    with open(files["eval"], "rb") as fh:
        eval_set_create(name="demo-eval", file=fh, filename="eval.jsonl", created_by=staff_user)
    for username, path in files["owners"].items():
        with open(path, "rb") as fh:
            contribution = contribution_create(owner=owner_get_or_create(username=username)[0], file=fh,
                                               filename=path.name)
        assert contribution.n_pairs == len(path.read_text().splitlines())
    from marketplace.parsing import UploadRefused

    with pytest.raises(UploadRefused) as info, open(files["copiers"]["mallory"], "rb") as fh:
        contribution_create(owner=owner_get_or_create(username="mallory")[0], file=fh, filename="m.jsonl")
    assert {e.message for e in info.value.errors} == {REPLICATION_MESSAGE}


def test_html_unescape_and_labels_are_only_for_comparing(owner_a):
    """What is stored is what the owner uploaded; the canonical form is never written back."""
    record = EDITS["html-entity"](HELD[0])
    _store(owner_a, [record])
    assert PreferencePair.objects.get().prompt == record["prompt"]
    assert "&#63;" in PreferencePair.objects.get().prompt


@pytest.mark.parametrize("variant", [
    "**Q:** How do I keep basil green&#63;",
    "Question: how do I keep basil green?\nAnswer:",
    "User: How do I keep basil green ?!  \n",
    "How do I keep basil green... Answer: ...",
    "> _How do I keep basil green_ &amp;#63;",
])
def test_the_canonical_form_ignores_labels_markup_entities_and_punctuation(variant):
    from marketplace.neardup import canonical

    assert canonical(variant) == "how do i keep basil green"


def test_the_canonical_form_keeps_words_apart():
    from marketplace.neardup import canonical

    assert canonical("How do I keep basil green?") != canonical("How do I keep parsley green?")
    assert canonical("Q: A: what?") == "a what"  # only one label is dropped at each end


def test_the_work_per_pair_is_bounded_on_a_file_of_one_template(owner_a, owner_b, monkeypatch):
    """Thousands of prompts one word apart share bands with each other: without the caps, the check of
    such a file (and of the next file like it) grows with the square of its rows."""
    from marketplace import near_index
    from tests.conftest import make_pairs

    compared = []
    real = near_index._agreeing
    monkeypatch.setattr(near_index, "_agreeing",
                        lambda candidates, *args: compared.extend(candidates) or real(candidates, *args))
    n, per_pair = 3000, 16  # near_index.MAX_CANDIDATES
    assert _store(owner_a, make_pairs(n, tag="t")).n_pairs == n
    assert len(compared) <= n * per_pair
    compared.clear()
    assert _store(owner_b, make_pairs(n, tag="u")).n_pairs == n
    assert len(compared) <= 2 * n * per_pair  # against its own rows, and against owner A's


def test_the_web_page_shows_the_same_refusal_for_own_other_and_eval(owner_a, owner_b, staff_user):
    from django.test import Client

    _store(owner_a, HELD[:1])
    _store(owner_b, HELD[1:2], name="mine.jsonl")
    eval_set_create(name="held-out", file=io.BytesIO(jsonl_bytes(HELD[2:])), filename="e.jsonl",
                    created_by=staff_user)
    client = Client()
    client.force_login(owner_b.user)
    probe = jsonl_bytes([EDITS["question-to-q"](r) for r in HELD])
    page = client.post("/contributions/", {"file": upload("probe.jsonl", probe)}).content.decode()
    assert page.count(html_escape(REPLICATION_MESSAGE)) == 4  # the three rows, and the upload list's first reason
    refused = Contribution.objects.get(owner=owner_b, status="refused")
    detail = client.get(f"/contributions/{refused.pk}/").content.decode()
    assert detail.count(html_escape(REPLICATION_MESSAGE)) == 3
    for text in (page, detail):
        assert "owner_a" not in text and "held-out" not in text and "evaluation" not in text.lower()
