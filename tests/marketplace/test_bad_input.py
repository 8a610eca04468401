"""Every bad-input rule through every entry point: web form, REST API, CLI (docs/design.md §6).

Each refused file must name the row and the reason where the user looks (HTML table,
JSON body, CommandError text), store no pair and no accepted contribution, and keep a
`refused` Contribution with the reasons. Good files in every format must go through all
three, and conversational pairs must come back unchanged from the download endpoint.
"""
import io
import json
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from marketplace.management.commands import import_pairs
from marketplace.models import Contribution, EvalPair, EvalSet, PreferencePair
from marketplace.parsing import UploadRefused
from marketplace.services import REPLICATION_MESSAGE, contribution_create, eval_set_create
from tests.conftest import csv_bytes, jsonl_bytes, make_pairs, parquet_bytes, upload

ENTRY_POINTS = ("web", "api", "cli")


@dataclass(frozen=True)
class Refusal:
    """What the user must be told: which row (None: the file), which field, and a phrase of the reason."""
    row: int | None
    field: str | None
    says: str


@dataclass(frozen=True)
class Outcome:
    errors: list  # [{"row", "field", "message"}] as the entry point reports them
    text: str  # what the user reads: HTML, JSON or the CommandError message


def submit_web(owner, name: str, data: bytes, content_type: str, tmp_path) -> Client:
    client = Client()
    client.force_login(owner.user)
    return client.post("/contributions/", {"file": upload(name, data, content_type)})


def submit_api(owner, name: str, data: bytes, content_type: str, tmp_path):
    client = APIClient()
    client.force_authenticate(owner.user)
    return client.post("/api/contributions/", {"file": upload(name, data, content_type)}, format="multipart")


def submit_cli(owner, name: str, data: bytes, content_type: str, tmp_path) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    out = io.StringIO()
    call_command("import_pairs", "--owner", owner.user.username, str(path), stdout=out)
    return out.getvalue()


SUBMIT = {"web": submit_web, "api": submit_api, "cli": submit_cli}


def refused_via(entry: str, owner, name: str, data: bytes, tmp_path,
                content_type: str = "application/octet-stream") -> Outcome:
    """Submit a file that must be refused; check the entry point's failure signal; return what it said."""
    if entry == "cli":
        with pytest.raises(CommandError) as info:
            submit_cli(owner, name, data, content_type, tmp_path)
        text = str(info.value)
        assert "refused, nothing stored" in text
        return Outcome([], text)
    response = SUBMIT[entry](owner, name, data, content_type, tmp_path)
    assert response.status_code == 400, response.content[:500]
    if entry == "api":
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert body["detail"].startswith("The file was refused; nothing was stored.")
        assert body["n_errors"] >= len(body["errors"]) >= 1
        return Outcome(body["errors"], response.content.decode())
    html = response.content.decode()
    assert "File refused — nothing was stored" in html
    return Outcome([e.as_dict() for e in response.context["refusal"].errors], html)


def assert_told(entry: str, outcome: Outcome, expected: Refusal) -> None:
    if entry == "cli":  # one line per reason: "  row 2, field 'chosen': empty"
        where = "file" if expected.row is None else f"row {expected.row}"
        where += f", field '{expected.field}'" if expected.field else ""
        lines = [ln.strip() for ln in outcome.text.splitlines()]
        assert any(ln.startswith(where + ": ") and expected.says in ln for ln in lines), outcome.text
        return
    matches = [e for e in outcome.errors
               if (e["row"], e["field"]) == (expected.row, expected.field) and expected.says in e["message"]]
    assert matches, outcome.errors
    if entry == "web":  # rendered in the refusal table, not only in the context
        assert f"<td>{expected.row or 'file'}</td><td>{expected.field or '—'}</td>" in outcome.text
        assert escape(matches[0]["message"]) in outcome.text


def assert_nothing_stored(owner) -> None:
    assert PreferencePair.objects.count() == 0
    assert not Contribution.objects.filter(status=Contribution.Status.ACCEPTED).exists()


# --- the bad-input cases ------------------------------------------------------

GOOD = make_pairs(3)


def with_row(records, index: int, **change) -> list[dict]:
    return [dict(r, **change) if i == index else dict(r) for i, r in enumerate(records)]


def parquet_table(**columns) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


@dataclass(frozen=True)
class Case:
    id: str
    name: str
    data: bytes
    expected: Refusal
    content_type: str = "application/octet-stream"
    settings: dict = field(default_factory=dict)
    entry_points: tuple = ENTRY_POINTS


CASES = [
    Case("not-utf8-jsonl", "p.jsonl",
         jsonl_bytes(GOOD[:1]) + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n' + jsonl_bytes(GOOD[1:]),
         Refusal(2, None, "not valid UTF-8")),
    Case("not-utf8-csv", "p.csv", csv_bytes(GOOD).replace(b"answer 1", b"answer \xff1"),
         Refusal(None, None, "not valid UTF-8 (line 3 of the file")),
    Case("missing-field", "p.jsonl", jsonl_bytes([GOOD[0], {"prompt": "q", "chosen": "a"}, GOOD[2]]),
         Refusal(2, "rejected", "missing")),
    Case("null-field-parquet", "p.parquet",
         parquet_table(prompt=["a", "b", "c"], chosen=["x", None, "z"], rejected=["1", "2", "3"]),
         Refusal(2, "chosen", "missing")),
    Case("missing-column-csv", "p.csv", csv_bytes(GOOD, header=("prompt", "chosen")),
         Refusal(None, None, "CSV header must have columns prompt, chosen, rejected; missing: rejected")),
    Case("non-string", "p.jsonl", jsonl_bytes(with_row(GOOD, 1, chosen=42)),
         Refusal(2, "chosen", "must be a string, got int")),
    Case("non-string-parquet", "p.parquet", parquet_table(prompt=["a", "b"], chosen=[1, 2], rejected=["x", "y"]),
         Refusal(1, "chosen", "must be a string, got int")),
    Case("empty-field", "p.jsonl", jsonl_bytes(with_row(GOOD, 1, chosen="")), Refusal(2, "chosen", "empty")),
    Case("blank-field-csv", "p.csv", csv_bytes(with_row(GOOD, 2, prompt="   ")), Refusal(3, "prompt", "empty")),
    Case("chosen-equals-rejected", "p.jsonl", jsonl_bytes(with_row(GOOD, 1, chosen="same", rejected="same")),
         Refusal(2, "rejected", "chosen and rejected are identical")),
    Case("field-too-long", "p.jsonl", jsonl_bytes(with_row(GOOD, 1, prompt="x" * 41)),
         Refusal(2, "prompt", "41 characters; the limit is 40"), settings={"UPLOAD_MAX_FIELD_CHARS": 40}),
    Case("file-too-large", "p.jsonl", jsonl_bytes(make_pairs(10)), Refusal(None, None, "200 bytes"),
         settings={"UPLOAD_MAX_BYTES": 200}),
    Case("too-many-rows", "p.jsonl", jsonl_bytes(make_pairs(4)),
         Refusal(4, None, "more than 3 rows; split the file"), settings={"UPLOAD_MAX_ROWS": 3}),
    Case("too-many-rows-parquet", "p.parquet", parquet_bytes(make_pairs(4)),
         Refusal(None, None, "4 rows; the limit is 3"), settings={"UPLOAD_MAX_ROWS": 3}),
    Case("malformed-line", "p.jsonl", jsonl_bytes(GOOD[:1]) + b'{"prompt": "q", "chosen": \n' + jsonl_bytes(GOOD[1:]),
         Refusal(2, None, "malformed JSON")),
    Case("line-not-an-object", "p.jsonl", jsonl_bytes(GOOD[:1]) + b'["q", "a", "b"]\n',
         Refusal(2, None, "each line must be a JSON object")),
    Case("wrong-extension", "pairs.txt", jsonl_bytes(GOOD),
         Refusal(None, None, "unsupported file extension in 'pairs.txt'")),
    Case("wrong-content-type", "p.jsonl", jsonl_bytes(GOOD),
         Refusal(None, None, "content type 'text/html' does not match a jsonl file"),
         content_type="text/html", entry_points=("web", "api")),  # the CLI has no content type
    Case("parquet-without-magic", "p.parquet", jsonl_bytes(GOOD),
         Refusal(None, None, "the file's content is not parquet (no Parquet magic bytes)")),
    Case("in-file-duplicate", "p.jsonl",
         jsonl_bytes(GOOD[:2] + [{k: f"  {v.upper()} " for k, v in GOOD[0].items()}]),
         Refusal(3, None, "duplicate of row 1")),
    Case("in-file-duplicate-csv", "p.csv", csv_bytes(GOOD + [GOOD[1]]), Refusal(4, None, "duplicate of row 2")),
    Case("empty-file", "p.jsonl", b"", Refusal(None, None, "file is empty")),
    Case("bad-conversation", "p.jsonl",
         jsonl_bytes([{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "bot", "content": "yo"}],
                       "rejected": [{"role": "assistant", "content": "no"}]}]),
         Refusal(1, "chosen", "message 1 has unknown role 'bot'")),
    Case("message-extra-key", "p.jsonl",
         jsonl_bytes([{"prompt": [{"role": "user", "content": "hi"}],
                       "chosen": [{"role": "assistant", "content": "yo", "padding": "x" * 400_000}],
                       "rejected": [{"role": "assistant", "content": "no"}]}]),
         Refusal(1, "chosen", "message 1 has key(s) 'padding'; only 'role' and 'content' are allowed")),
]


@pytest.mark.parametrize("case, entry", [
    pytest.param(case, entry, id=f"{case.id}-{entry}") for case in CASES for entry in case.entry_points])
def test_bad_input_is_refused_whole_with_row_numbered_reasons(case, entry, owner_a, settings, tmp_path):
    for name, value in case.settings.items():
        setattr(settings, name, value)
    outcome = refused_via(entry, owner_a, case.name, case.data, tmp_path, case.content_type)
    assert_told(entry, outcome, case.expected)
    assert_nothing_stored(owner_a)
    record = Contribution.objects.get(owner=owner_a)  # the refusal is kept so the owner can see why
    assert (record.status, record.n_pairs, record.original_name) == ("refused", 0, case.name)
    assert any(case.expected.says in e["message"] and e["row"] == case.expected.row for e in record.row_errors)


def test_one_bad_row_among_many_good_ones_stores_nothing(api_a, owner_a):
    records = make_pairs(500)
    records[417]["rejected"] = ""
    response = api_a.post("/api/contributions/", {"file": upload("p.jsonl", jsonl_bytes(records))}, format="multipart")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"row": 418, "field": "rejected", "message": "empty"}]
    assert_nothing_stored(owner_a)


def test_the_api_and_web_report_the_first_100_of_all_errors(api_a, owner_a):
    records = [{"prompt": f"q{i}", "chosen": "", "rejected": "r"} for i in range(150)]
    body = api_a.post("/api/contributions/", {"file": upload("p.jsonl", jsonl_bytes(records))},
                      format="multipart").json()
    assert body["n_errors"] == 150 and [e["row"] for e in body["errors"]] == list(range(1, 101))
    client = Client()
    client.force_login(owner_a.user)
    html = client.post("/contributions/", {"file": upload("p.jsonl", jsonl_bytes(records))}).content.decode()
    assert "150 problems found (the first 100 are shown)" in html
    assert html.count("<td>chosen</td><td>empty</td>") == 100
    refused = Contribution.objects.filter(status="refused").first()  # stores only the first 20 (the setting)
    assert len(refused.row_errors) == 21
    assert refused.row_errors[-1] == {"row": None, "field": None, "message": "130 more not shown"}
    assert_nothing_stored(owner_a)


def test_cli_failure_exits_non_zero_with_the_reasons_on_stderr(owner_a, tmp_path, capsys, monkeypatch):
    # run_from_argv closes every DB connection when it ends, which would end the test's transaction.
    monkeypatch.setattr("django.db.connections.close_all", lambda: None)
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl_bytes(with_row(GOOD, 2, chosen="")))
    with pytest.raises(SystemExit) as info:
        import_pairs.Command().run_from_argv(["manage.py", "import_pairs", "--owner", "owner_a", str(path)])
    assert info.value.code == 1
    stderr = capsys.readouterr().err
    assert "CommandError:" in stderr and "refused, nothing stored (1 problem(s))" in stderr
    assert "row 3, field 'chosen': empty" in stderr
    assert_nothing_stored(owner_a)


def test_cli_refuses_a_missing_file_and_a_bad_username(db, tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_pairs", "--owner", "someone", str(tmp_path / "nope.jsonl"))
    path = tmp_path / "p.jsonl"
    path.write_bytes(jsonl_bytes(GOOD))
    with pytest.raises(CommandError, match="cannot create owner 'bad name!': Enter a valid username"):
        call_command("import_pairs", "--owner", "bad name!", str(path))
    assert PreferencePair.objects.count() == 0


def test_web_form_without_a_file_is_a_400_not_a_500(owner_a):
    client = Client()
    client.force_login(owner_a.user)
    response = client.post("/contributions/", {})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert Contribution.objects.count() == 0


def test_api_without_a_file_is_a_400(api_a):
    response = api_a.post("/api/contributions/", {}, format="multipart")
    assert response.status_code == 400 and response.json() == {"file": ["No file was submitted."]}
    assert Contribution.objects.count() == 0


def test_staff_without_an_owner_profile_cannot_upload(api_staff, staff_user):
    response = api_staff.post("/api/contributions/", {"file": upload("p.jsonl", jsonl_bytes(GOOD))},
                              format="multipart")
    assert response.status_code == 403
    assert response.json() == {"detail": "only data owners can do this; this account is not a data owner"}
    client = Client()
    client.force_login(staff_user)
    response = client.post("/contributions/", {"file": upload("p.jsonl", jsonl_bytes(GOOD))})
    assert response.status_code == 403 and "this account is not a data owner" in response.content.decode()
    assert Contribution.objects.count() == 0 and PreferencePair.objects.count() == 0


# --- anti-replication ---------------------------------------------------------

def _restyled(records):
    """The same pairs with trivial edits: case, spacing, full-width letters."""
    return [{"prompt": "  " + r["prompt"].upper(), "chosen": r["chosen"].replace(" ", "\t  "),
             "rejected": r["rejected"].title() + "\n"} for r in records]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("variant", ["exact", "restyled"])
def test_owner_b_cannot_upload_owner_a_pairs(entry, variant, owner_a, owner_b, tmp_path):
    a_records = make_pairs(3, tag="alpha")
    contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(a_records)), filename="alpha.jsonl")
    copied = a_records if variant == "exact" else _restyled(a_records)
    b_records = make_pairs(2, tag="bravo") + [copied[1]]  # two new pairs and one copy: the whole file goes
    outcome = refused_via(entry, owner_b, "bravo.jsonl", jsonl_bytes(b_records), tmp_path)
    assert_told(entry, outcome, Refusal(3, None, REPLICATION_MESSAGE))
    assert "owner_a" not in outcome.text and "alpha.jsonl" not in outcome.text  # who holds it is not revealed
    assert PreferencePair.objects.count() == 3
    assert set(PreferencePair.objects.values_list("contribution__owner", flat=True)) == {owner_a.pk}
    assert list(owner_b.contributions.values_list("status", flat=True)) == ["refused"]


def test_a_copy_stored_concurrently_is_refused_atomically(owner_a, owner_b, monkeypatch):
    """B's check ran before A's insert committed: the unique hash still refuses B's whole file."""
    from marketplace import services

    records = make_pairs(3, tag="race")
    contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(records)), filename="alpha.jsonl")
    monkeypatch.setattr(services, "_existing_hashes", lambda hashes, model: {})
    monkeypatch.setattr(services.near_index, "held_matches", lambda prints, config, skip: {})
    b_file = jsonl_bytes(make_pairs(500, tag="bravo") + records[:1])
    with pytest.raises(UploadRefused) as info:
        contribution_create(owner=owner_b, file=io.BytesIO(b_file), filename="bravo.jsonl")
    assert info.value.errors[0].message == REPLICATION_MESSAGE  # the race is no clue either
    assert PreferencePair.objects.count() == 3
    assert set(PreferencePair.objects.values_list("contribution__owner", flat=True)) == {owner_a.pk}
    assert list(owner_b.contributions.values_list("status", "n_pairs")) == [("refused", 0)]


def test_a_whole_copied_file_reports_every_row(api_b, owner_a, owner_b):
    records = make_pairs(4, tag="alpha")
    contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(records)), filename="alpha.jsonl")
    body = api_b.post("/api/contributions/", {"file": upload("copy.csv", csv_bytes(_restyled(records)))},
                      format="multipart").json()
    assert body["errors"] == [{"row": r, "field": None, "message": REPLICATION_MESSAGE} for r in (1, 2, 3, 4)]


def test_an_owner_uploading_their_own_pairs_again_gets_the_one_replication_message(api_a, owner_a):
    """Saying "you uploaded this" for one's own pairs would tell, by elimination, which are someone else's."""
    data = jsonl_bytes(make_pairs(2))
    assert api_a.post("/api/contributions/", {"file": upload("p.jsonl", data)}, format="multipart").status_code == 201
    response = api_a.post("/api/contributions/", {"file": upload("again.parquet", parquet_bytes(make_pairs(2)))},
                          format="multipart")
    assert response.status_code == 400
    assert [e["message"] for e in response.json()["errors"]] == [REPLICATION_MESSAGE] * 2
    assert PreferencePair.objects.count() == 2


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_owners_cannot_upload_eval_set_pairs(entry, owner_a, staff_user, tmp_path):
    held_out = make_pairs(3, tag="heldout")
    eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(held_out)), filename="heldout.jsonl",
                    created_by=staff_user)
    outcome = refused_via(entry, owner_a, "mine.jsonl", jsonl_bytes(_restyled(held_out[:1])), tmp_path)
    assert_told(entry, outcome, Refusal(1, None, REPLICATION_MESSAGE))
    assert_nothing_stored(owner_a)
    assert EvalPair.objects.count() == 3


def _eval_refused_via(entry: str, staff_user, name: str, data: bytes, tmp_path) -> Outcome:
    if entry == "cli":
        path = tmp_path / "eval.jsonl"
        path.write_bytes(data)
        with pytest.raises(CommandError) as info:
            call_command("import_eval", "--name", name, str(path))
        return Outcome([], str(info.value))
    if entry == "api":
        client = APIClient()
        client.force_authenticate(staff_user)
        response = client.post("/api/eval-sets/", {"name": name, "file": upload("eval.jsonl", data)},
                               format="multipart")
        assert response.status_code == 400
        return Outcome(response.json()["errors"], response.content.decode())
    client = Client()
    client.force_login(staff_user)
    response = client.post("/eval-sets/", {"name": name, "file": upload("eval.jsonl", data)})
    assert response.status_code == 400
    return Outcome([e.as_dict() for e in response.context["refusal"].errors], response.content.decode())


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_owner_pairs_cannot_go_into_an_eval_set(entry, owner_a, staff_user, tmp_path):
    owned = make_pairs(3, tag="owned")
    contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(owned)), filename="owned.jsonl")
    data = jsonl_bytes(make_pairs(2, tag="fresh") + _restyled(owned[2:]))
    outcome = _eval_refused_via(entry, staff_user, "heldout", data, tmp_path)
    assert_told(entry, outcome, Refusal(3, None, "this pair is an owner's training pair; an eval set must be held out"))
    assert "owner_a" not in outcome.text
    assert EvalSet.objects.count() == 0 and EvalPair.objects.count() == 0
    assert PreferencePair.objects.count() == 3


def test_eval_set_rules_use_the_same_parser(staff_user, tmp_path):
    with pytest.raises(CommandError, match=r"row 2, field 'chosen': empty"):
        path = tmp_path / "e.jsonl"
        path.write_bytes(jsonl_bytes(with_row(GOOD, 1, chosen="")))
        call_command("import_eval", "--name", "e1", str(path))
    path.write_bytes(jsonl_bytes(GOOD))
    call_command("import_eval", "--name", "e1", str(path), stdout=io.StringIO())
    with pytest.raises(CommandError, match="an eval set named 'e1' already exists"):
        call_command("import_eval", "--name", "e1", str(path))
    with pytest.raises(CommandError, match="Enter a valid “slug”"):
        call_command("import_eval", "--name", "Not A Slug", str(path))
    assert list(EvalSet.objects.values_list("name", "n_pairs")) == [("e1", 3)]


# --- good uploads in every format through every entry point -------------------

CONVERSATIONS = [
    {"prompt": [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Colour of snow?"}],
     "chosen": [{"role": "assistant", "content": "White."}],
     "rejected": [{"role": "assistant", "content": "Grün — “vielleicht”."}]},
    {"prompt": [{"role": "user", "content": "Best emoji?"}],
     "chosen": [{"role": "assistant", "content": "🙂"}],
     "rejected": [{"role": "assistant", "content": "none"}]},
]


def _conversational_parquet(records) -> bytes:
    records = [{k: [{"role": m["role"], "content": m["content"]} for m in v] for k, v in r.items()} for r in records]
    return parquet_bytes(records), records


GOOD_FILES = {
    "jsonl": ("good.jsonl", jsonl_bytes(make_pairs(3, tag="ok")), make_pairs(3, tag="ok")),
    "csv": ("good.csv", csv_bytes(make_pairs(3, tag="ok")), make_pairs(3, tag="ok")),
    "parquet": ("good.parquet", parquet_bytes(make_pairs(3, tag="ok")), make_pairs(3, tag="ok")),
    "conversational-jsonl": ("conv.jsonl", jsonl_bytes(CONVERSATIONS), CONVERSATIONS),
    # Parquet structs have one schema per column, so the extra "name" key is not part of this file.
    "conversational-parquet": ("conv.parquet", *_conversational_parquet(CONVERSATIONS)),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", list(GOOD_FILES))
def test_good_files_are_accepted_and_round_trip(kind, entry, owner_a, tmp_path):
    name, data, records = GOOD_FILES[kind]
    result = SUBMIT[entry](owner_a, name, data, "application/octet-stream", tmp_path)
    contribution = Contribution.objects.get(owner=owner_a)
    assert (contribution.status, contribution.n_pairs, contribution.original_name) == ("accepted", len(records), name)
    assert contribution.file_format == name.rsplit(".", 1)[1]
    if entry == "web":
        assert result.status_code == 302 and result["Location"] == f"/contributions/{contribution.pk}/"
    elif entry == "api":
        assert result.status_code == 201
        assert {k: result.json()[k] for k in ("id", "owner", "n_pairs", "status")} == {
            "id": contribution.pk, "owner": "owner_a", "n_pairs": len(records), "status": "accepted"}
    else:
        assert result.strip() == f"imported {len(records)} pairs for 'owner_a' (contribution {contribution.pk})"
    assert PreferencePair.objects.count() == len(records)
    expected_format = "conversational" if kind.startswith("conversational") else "text"
    assert set(PreferencePair.objects.values_list("pair_format", flat=True)) == {expected_format}

    api = APIClient()
    api.force_authenticate(owner_a.user)
    download = api.get(f"/api/contributions/{contribution.pk}/download/")
    assert download.status_code == 200 and download["Content-Type"] == "application/jsonl"
    lines = b"".join(download.streaming_content).decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records  # lossless, in upload order


def test_cli_creates_a_missing_owner(db, tmp_path):
    path = tmp_path / "p.csv"
    path.write_bytes(csv_bytes(GOOD))
    out = io.StringIO()
    call_command("import_pairs", "--owner", "newcomer", str(path), stdout=out)
    assert out.getvalue().startswith("created owner and imported 3 pairs for 'newcomer'")
    assert Contribution.objects.get().owner.user.username == "newcomer"
    assert not Contribution.objects.get().owner.user.has_usable_password()


def test_web_detail_page_shows_the_refusal_reasons(owner_a):
    client = Client()
    client.force_login(owner_a.user)
    client.post("/contributions/", {"file": upload("bad.jsonl", jsonl_bytes(with_row(GOOD, 1, chosen="")))})
    refused = Contribution.objects.get()
    html = client.get(f"/contributions/{refused.pk}/").content.decode()
    assert "Why it was refused" in html and "<td>2</td><td>chosen</td><td>empty</td>" in html
    listing = client.get("/contributions/").content.decode()
    assert "bad.jsonl" in listing and "(1 reason)" in listing
