"""Unit tests of the one upload parser (marketplace/parsing.py): every format, every rule.

`parse_upload` never touches the database, so these tests need none. File-level
problems raise UploadRefused; row-level ones are collected, row-numbered, in the result.
"""
import hashlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given, settings as hypothesis_settings, strategies as st

from marketplace.parsing import (
    ParseResult, RowError, UploadLimits, UploadRefused, content_hash, flatten_messages, normalise_text, parse_upload,
)
from tests.conftest import csv_bytes, jsonl_bytes, make_pairs, parquet_bytes

LIMITS = UploadLimits(max_bytes=1_000_000, max_rows=1_000, max_field_chars=200)

CONVERSATIONS = [
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
     "chosen": [{"role": "assistant", "content": "Paris."}],
     "rejected": [{"role": "assistant", "content": "Lyon, I think — “peut-être”."}]},
    {"prompt": [{"role": "user", "content": "2 + 2?"}],
     "chosen": [{"role": "assistant", "content": "4"}],
     "rejected": [{"role": "assistant", "content": "5 🙃"}]},
]


def parse(data: bytes, name: str = "pairs.jsonl", content_type: str | None = None, limits=LIMITS) -> ParseResult:
    return parse_upload(io.BytesIO(data), filename=name, content_type=content_type, limits=limits)


def refusal(data: bytes, name: str = "pairs.jsonl", content_type: str | None = None, limits=LIMITS) -> RowError:
    with pytest.raises(UploadRefused) as info:
        parse(data, name, content_type, limits)
    assert len(info.value.errors) == 1 and info.value.errors[0].row is None
    return info.value.errors[0]


def one_bad_row(records, row_index: int, **changes) -> list[dict]:
    records = [dict(r) for r in records]
    records[row_index].update(changes)
    return records


# --- good files in every format -----------------------------------------------

@pytest.mark.parametrize("fmt, name, build", [
    ("jsonl", "pairs.jsonl", jsonl_bytes), ("jsonl", "PAIRS.NDJSON", jsonl_bytes),
    ("csv", "pairs.csv", csv_bytes), ("parquet", "pairs.parquet", parquet_bytes),
])
def test_explicit_prompt_pairs_parse_in_every_format(fmt, name, build):
    records = make_pairs(3)
    data = build(records)
    result = parse(data, name)
    assert (result.file_format, result.errors, result.n_errors) == (fmt, [], 0)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert [(p.row, p.pair_format, p.prompt, p.chosen, p.rejected) for p in result.pairs] == [
        (i + 1, "text", r["prompt"], r["chosen"], r["rejected"]) for i, r in enumerate(records)]
    assert result.pairs[0].content_hash == content_hash(*(records[0][f] for f in ("prompt", "chosen", "rejected")))


def test_csv_keeps_commas_quotes_newlines_and_skips_a_bom():
    records = [{"prompt": 'He said "hi",\nthen left', "chosen": "a, b", "rejected": "ü\r\nß"}]
    result = parse(b"\xef\xbb\xbf" + csv_bytes(records), "x.csv")
    assert result.errors == []
    assert (result.pairs[0].prompt, result.pairs[0].chosen, result.pairs[0].rejected) == (
        records[0]["prompt"], "a, b", "ü\r\nß")


def test_jsonl_tolerates_a_bom_crlf_and_extra_keys():
    data = b"\xef\xbb\xbf" + jsonl_bytes([{**make_pairs(1)[0], "source": "x"}]).replace(b"\n", b"\r\n")
    result = parse(data)
    assert result.errors == [] and len(result.pairs) == 1 and result.pairs[0].prompt == "p question 0?"


def test_jsonl_accepts_escaped_surrogate_pairs_but_refuses_a_lone_surrogate():
    data = b'{"prompt": "smile \\ud83d\\ude00", "chosen": "a", "rejected": "b"}\n' \
           b'{"prompt": "broken \\ud800", "chosen": "a", "rejected": "b"}\n'
    result = parse(data)
    assert [p.prompt for p in result.pairs] == ["smile 😀"]
    assert [str(e) for e in result.errors] == ["row 2: not valid UTF-8: an unpaired surrogate \\u escape"]


def test_conversational_jsonl_is_stored_losslessly():
    records = [dict(r) for r in CONVERSATIONS]
    result = parse(jsonl_bytes(records))
    assert result.errors == [] and [p.pair_format for p in result.pairs] == ["conversational"] * 2
    for pair, record in zip(result.pairs, records):
        assert {f: json.loads(getattr(pair, f)) for f in ("prompt", "chosen", "rejected")} == record
        flat = (flatten_messages(record[f]) for f in ("prompt", "chosen", "rejected"))
        assert pair.content_hash == content_hash(*flat)
    assert result.pairs[1].rejected == '[{"role":"assistant","content":"5 🙃"}]'  # canonical, not ASCII-escaped


def test_conversational_parquet_list_of_struct_is_stored_losslessly():
    table = pa.Table.from_pylist(CONVERSATIONS)
    chosen_type = table.schema.field("chosen").type
    assert pa.types.is_list(chosen_type) and pa.types.is_struct(chosen_type.value_type)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    result = parse(buf.getvalue(), "conv.parquet")
    assert result.errors == [] and [p.pair_format for p in result.pairs] == ["conversational"] * 2
    for pair, record in zip(result.pairs, CONVERSATIONS):
        assert {f: json.loads(getattr(pair, f)) for f in ("prompt", "chosen", "rejected")} == record


def test_flattened_conversation_hash_ignores_case_and_spacing():
    upper = [{**r, "chosen": [{"role": "assistant", "content": "  PARIS. "}]} for r in CONVERSATIONS[:1]]
    a, b = parse(jsonl_bytes(CONVERSATIONS[:1])).pairs[0], parse(jsonl_bytes(upper)).pairs[0]
    assert a.chosen != b.chosen and a.content_hash == b.content_hash


# --- row-level rules ----------------------------------------------------------

@pytest.mark.parametrize("change, field, message", [
    ({"chosen": None}, "chosen", "missing"),
    ({"chosen": 42}, "chosen", "must be a string, got int"),
    ({"prompt": True}, "prompt", "must be a string, got bool"),
    ({"rejected": {"text": "x"}}, "rejected", "must be a string, got dict"),
    ({"chosen": ""}, "chosen", "empty"),
    ({"chosen": " \t\n "}, "chosen", "empty"),
    ({"prompt": "a\x00b"}, "prompt", "contains a NUL character"),
    ({"chosen": "same", "rejected": "same"}, "rejected", "chosen and rejected are identical"),
    ({"prompt": "x" * 201}, "prompt", "201 characters; the limit is 200"),
])
def test_jsonl_row_rule(change, field, message):
    result = parse(jsonl_bytes(one_bad_row(make_pairs(4), 2, **change)))
    assert result.errors == [RowError(3, field, message)] and result.n_errors == 1
    assert [p.row for p in result.pairs] == [1, 2, 4]


def test_field_exactly_at_the_limit_is_accepted():
    result = parse(jsonl_bytes(one_bad_row(make_pairs(1), 0, prompt="x" * 200)))
    assert result.errors == [] and len(result.pairs[0].prompt) == 200


def test_missing_key_and_every_problem_of_a_row_are_reported():
    data = jsonl_bytes([{"prompt": "", "chosen": 1}])
    assert [str(e) for e in parse(data).errors] == [
        "row 1, field 'prompt': empty", "row 1, field 'chosen': must be a string, got int",
        "row 1, field 'rejected': missing"]


@pytest.mark.parametrize("line, message", [
    (b'{"prompt": "a", "chosen": "b"', "malformed JSON: Expecting ',' delimiter"),
    (b'["a", "b", "c"]', "each line must be a JSON object"),
    (b'"just a string"', "each line must be a JSON object"),
    (b"[" * 100_000, "malformed JSON: nested too deeply"),
    (b'{"prompt": "caf\xe9", "chosen": "b", "rejected": "c"}', "not valid UTF-8 (byte 15)"),
])
def test_jsonl_malformed_lines_are_numbered_by_line(line, message):
    good = jsonl_bytes(make_pairs(2))
    data = good + b"\n\n" + line + b"\n" + jsonl_bytes(make_pairs(1, tag="z"))  # blank lines still count
    result = parse(data, limits=UploadLimits(max_bytes=1_000_000, max_rows=10, max_field_chars=200))
    assert result.n_errors == 1 and result.errors[0].row == 5 and result.errors[0].field is None
    assert result.errors[0].message.startswith(message)
    assert [p.row for p in result.pairs] == [1, 2, 6]


def test_csv_row_rules_number_data_rows_without_the_header():
    records = make_pairs(4)
    records[1]["chosen"] = ""
    records[3]["rejected"] = records[3]["chosen"]
    data = csv_bytes(records) + b"only,two\n" + b"a,b,c,extra\n"
    result = parse(data, "x.csv")
    assert [str(e) for e in result.errors] == [
        "row 2, field 'chosen': empty", "row 4, field 'rejected': chosen and rejected are identical",
        "row 5, field 'rejected': missing", "row 6: more cells than header columns"]


@pytest.mark.parametrize("column, values, message", [
    ("chosen", [1, 2, 3], "must be a string, got int"),
    ("chosen", ["a", None, "c"], "missing"),
    ("rejected", ["x", "", "z"], "empty"),
])
def test_parquet_row_rules(column, values, message):
    records = make_pairs(3)
    table = pa.Table.from_pylist(records).set_column(2 if column == "rejected" else 1, column, pa.array(values))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    errors = parse(buf.getvalue(), "x.parquet").errors
    bad_rows = [i + 1 for i, v in enumerate(values) if v in (None, "") or not isinstance(v, str)]
    assert errors == [RowError(r, column, message) for r in bad_rows]


@pytest.mark.parametrize("change, field, message", [
    ({"chosen": []}, "chosen", "must be a non-empty list of {role, content} messages"),
    ({"prompt": "plain string"}, "prompt", "must be a non-empty list of {role, content} messages"),
    ({"chosen": ["hi"]}, "chosen", "message 1 must be an object with string 'role' and 'content'"),
    ({"chosen": [{"role": "assistant"}]}, "chosen", "message 1 must be an object with string 'role' and 'content'"),
    ({"chosen": [{"role": "assistant", "content": "ok"}, {"role": "robot", "content": "x"}]}, "chosen",
     "message 2 has unknown role 'robot'"),
    ({"chosen": [{"role": "assistant", "content": "  "}]}, "chosen", "message 1 has empty content or a NUL character"),
    ({"rejected": [{"role": "assistant", "content": "Paris."}]}, "rejected", "chosen and rejected are identical"),
    ({"chosen": [{"role": "assistant", "content": "y" * 201}]}, "chosen",
     "201 characters of content; the limit is 200"),
    ({"chosen": [{"role": "assistant", "content": "ok", "name": "x" * 100_000}]}, "chosen",
     "message 1 has key(s) 'name'; only 'role' and 'content' are allowed"),
    ({"prompt": [{"role": "user", "content": "hi"}, {"role": "user", "content": "q", "weight": 2, "a": 1}]}, "prompt",
     "message 2 has key(s) 'a', 'weight'; only 'role' and 'content' are allowed"),
    # 20 one-character messages are 20 characters of content but 701 as stored
    ({"chosen": [{"role": "assistant", "content": "y"}] * 20}, "chosen",
     "701 characters as stored (the messages as JSON); the limit is 200"),
    # quotes and backslashes are escaped in the stored JSON: 90 characters of content, 215 stored
    ({"chosen": [{"role": "assistant", "content": '"\\' * 45}]}, "chosen", "215 characters as stored"),
])
def test_conversational_rules(change, field, message):
    result = parse(jsonl_bytes([{**CONVERSATIONS[0], **change}]))
    assert result.pairs == [] and len(result.errors) == 1
    assert (result.errors[0].row, result.errors[0].field) == (1, field)
    assert result.errors[0].message.startswith(message)


# --- duplicates ---------------------------------------------------------------

def test_in_file_duplicates_are_detected_after_normalising_case_width_and_whitespace():
    base = {"prompt": "What is DPO?", "chosen": "Direct preference optimisation.", "rejected": "A database."}
    variants = [
        base,
        {**base},  # exact copy
        {"prompt": "  what   IS dpo?\n", "chosen": "DIRECT preference\toptimisation.", "rejected": "a database."},
        {**base, "prompt": "Ｗｈａｔ is DPO?"},  # full-width letters (NFKC)
        {**base, "rejected": "A different database."},  # really different
    ]
    result = parse(jsonl_bytes(variants))
    assert [str(e) for e in result.errors] == ["row 2: duplicate of row 1", "row 3: duplicate of row 1",
                                               "row 4: duplicate of row 1"]
    assert [p.row for p in result.pairs] == [1, 5]


def test_normalise_text():
    assert normalise_text("  Hello\u00a0 WORLD\n\tＡＢＣ ") == "hello world abc"
    assert normalise_text("Straße") == normalise_text("STRASSE")


def test_duplicates_are_detected_across_formats_identically():
    records = make_pairs(2) + [{k: v.upper() for k, v in make_pairs(1)[0].items()}]
    for name, build in (("a.jsonl", jsonl_bytes), ("a.csv", csv_bytes), ("a.parquet", parquet_bytes)):
        assert [str(e) for e in parse(build(records), name).errors] == ["row 3: duplicate of row 1"], name


# --- the 100-error cap --------------------------------------------------------

def test_only_the_first_100_errors_are_kept_but_all_are_counted():
    records = [{"prompt": f"q{i}", "chosen": "", "rejected": "r"} for i in range(250)]
    result = parse(jsonl_bytes(records))
    assert result.n_errors == 250 and len(result.errors) == 100
    assert [e.row for e in result.errors] == list(range(1, 101))
    refused = UploadRefused(result.errors, result.n_errors)
    assert refused.as_dict()["n_errors"] == 250 and len(refused.as_dict()["errors"]) == 100
    assert str(refused).startswith("upload refused, 250 problem(s): row 1, field 'chosen': empty;")
    assert str(refused).endswith("(and 245 more)")


def test_reported_error_cap_is_configurable():
    limits = UploadLimits(max_bytes=1_000_000, max_rows=1_000, max_field_chars=200, max_reported_errors=3)
    result = parse(jsonl_bytes([{"prompt": "q", "chosen": "", "rejected": str(i)} for i in range(10)]), limits=limits)
    assert (result.n_errors, [e.row for e in result.errors]) == (10, [1, 2, 3])


# --- file-level rules ---------------------------------------------------------

@pytest.mark.parametrize("name", ["pairs.txt", "pairs.json", "pairs", "pairs.jsonl.exe", "pairs.xlsx", ""])
def test_wrong_extension_is_refused(name):
    error = refusal(jsonl_bytes(make_pairs(1)), name)
    assert error.message.startswith(f"unsupported file extension in '{name}': use one of .csv, .jsonl")


@pytest.mark.parametrize("name, build, content_type", [
    ("a.jsonl", jsonl_bytes, "text/html"),
    ("a.jsonl", jsonl_bytes, "image/png"),
    ("a.csv", csv_bytes, "application/jsonl"),
    ("a.parquet", parquet_bytes, "text/csv"),
])
def test_content_type_must_match_the_extension(name, build, content_type):
    error = refusal(build(make_pairs(1)), name, content_type)
    assert error.message == f"content type '{content_type}' does not match a {name.rsplit('.', 1)[1]} file"


@pytest.mark.parametrize("name, build, content_type", [
    ("a.jsonl", jsonl_bytes, "application/x-ndjson"),
    ("a.jsonl", jsonl_bytes, "text/plain; charset=utf-8"),
    ("a.csv", csv_bytes, "text/csv; charset=UTF-8"),
    ("a.csv", csv_bytes, "application/vnd.ms-excel"),
    ("a.parquet", parquet_bytes, "application/vnd.apache.parquet"),
    ("a.parquet", parquet_bytes, "application/octet-stream"),
    ("a.jsonl", jsonl_bytes, None),
])
def test_accepted_content_types(name, build, content_type):
    assert len(parse(build(make_pairs(2)), name, content_type).pairs) == 2


def test_parquet_needs_its_magic_bytes_and_other_formats_must_not_have_them():
    assert refusal(jsonl_bytes(make_pairs(1)), "a.parquet").message == \
        "the file's content is not parquet (no Parquet magic bytes)"
    assert refusal(parquet_bytes(make_pairs(1)), "a.jsonl").message == "the file's content is not jsonl"
    assert refusal(parquet_bytes(make_pairs(1)), "a.csv").message == "the file's content is not csv"


def test_truncated_parquet_is_refused_not_crashed():
    assert refusal(b"PAR1" + b"\x00" * 64, "a.parquet").message.startswith("unreadable Parquet file:")
    assert refusal(parquet_bytes(make_pairs(50))[:-100], "a.parquet").message.startswith("unreadable Parquet file:")


@pytest.mark.parametrize("name, data, message", [
    ("a.csv", b"prompt,chosen\nq,a\n", "CSV header must have columns prompt, chosen, rejected; missing: rejected"),
    ("a.csv", b"question,good,bad\nq,a,b\n",
     "CSV header must have columns prompt, chosen, rejected; missing: prompt, chosen, rejected"),
    ("a.parquet", parquet_bytes([{"prompt": "q", "chosen": "a"}]),
     "Parquet file must have columns prompt, chosen, rejected; missing: rejected"),
])
def test_missing_columns_are_refused(name, data, message):
    assert refusal(data, name).message == message


def test_malformed_csv_is_refused_with_the_row():
    data = b"prompt,chosen,rejected\n" + csv_bytes(make_pairs(2))[23:] + b'a,b,"' + b"x" * 200_000 + b'"\n'
    with pytest.raises(UploadRefused) as info:
        parse(data, "a.csv")
    assert [str(e) for e in info.value.errors] == ["row 3: a cell is over 131,072 characters; the limit is 200"]
    with pytest.raises(UploadRefused) as info:
        parse(b"prompt,chosen,rejected\n" + b'a,b,"unterminated', "a.csv")
    assert [str(e) for e in info.value.errors] == ["row 1: malformed CSV: unexpected end of data"]


def test_csv_that_is_not_utf8_is_refused_with_the_line():
    data = csv_bytes(make_pairs(3)).replace(b"good answer 1", b"good answer \xe91")
    assert refusal(data, "a.csv").message.startswith("not valid UTF-8 (line 3 of the file")


@pytest.mark.parametrize("data", [b"", b"   \n\n\t"])
def test_empty_file_is_refused(data):
    assert refusal(data).message == "file is empty"


def test_a_file_with_only_a_header_has_no_rows():
    result = parse(b"prompt,chosen,rejected\n", "a.csv")
    assert result.errors == [RowError(None, None, "file has no rows")]
    assert [str(e) for e in parse(_empty_parquet(), "a.parquet").errors] == [
        "file: file has no rows"]


def _empty_parquet() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({f: pa.array([], pa.string()) for f in ("prompt", "chosen", "rejected")}), buf)
    return buf.getvalue()


def test_file_over_the_size_limit_is_refused_with_or_without_a_known_size():
    data = jsonl_bytes(make_pairs(20))
    limits = UploadLimits(max_bytes=len(data) - 1, max_rows=1_000, max_field_chars=200)
    sized = SimpleUploadedFile("a.jsonl", data)
    with pytest.raises(UploadRefused) as info:
        parse_upload(sized, filename="a.jsonl", limits=limits)
    assert str(info.value.errors[0]) == f"file: file is {len(data):,} bytes; the limit is {len(data) - 1:,} bytes"
    assert refusal(data, limits=limits).message == f"file is larger than the limit of {len(data) - 1:,} bytes"
    exact = UploadLimits(max_bytes=len(data), max_rows=1_000, max_field_chars=200)
    assert len(parse(data, limits=exact).pairs) == 20


def test_more_rows_than_the_limit():
    limits = UploadLimits(max_bytes=1_000_000, max_rows=5, max_field_chars=200)
    assert len(parse(jsonl_bytes(make_pairs(5)), limits=limits).pairs) == 5
    result = parse(jsonl_bytes(make_pairs(9)), limits=limits)
    assert [str(e) for e in result.errors] == ["row 6: more than 5 rows; split the file"]
    result = parse(csv_bytes(make_pairs(9)), "a.csv", limits=limits)
    assert [str(e) for e in result.errors] == ["row 6: more than 5 rows; split the file"]
    assert refusal(parquet_bytes(make_pairs(9)), "a.parquet", limits=limits).message == "9 rows; the limit is 5"


# --- limits come from settings ------------------------------------------------

def test_limits_default_to_settings(settings):
    settings.UPLOAD_MAX_BYTES, settings.UPLOAD_MAX_ROWS = 10_000, 3
    settings.UPLOAD_MAX_FIELD_CHARS, settings.UPLOAD_MAX_REPORTED_ERRORS = 12, 2
    assert UploadLimits.from_settings() == UploadLimits(10_000, 3, 12, 2)
    long_field = jsonl_bytes([{"prompt": "x" * 13, "chosen": "a", "rejected": "b"}])
    assert [str(e) for e in parse_upload(io.BytesIO(long_field), filename="a.jsonl").errors] == [
        "row 1, field 'prompt': 13 characters; the limit is 12"]
    short = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(4)]
    rows = parse_upload(io.BytesIO(jsonl_bytes(short)), filename="a.jsonl")
    assert [str(e) for e in rows.errors] == ["row 4: more than 3 rows; split the file"]
    many = parse_upload(io.BytesIO(jsonl_bytes([{"prompt": "q", "chosen": "", "rejected": "r"}] * 3)),
                        filename="a.jsonl")
    assert (many.n_errors, len(many.errors)) == (3, 2)
    settings.UPLOAD_MAX_BYTES = 10
    with pytest.raises(UploadRefused, match="the limit of 10 bytes"):
        parse_upload(io.BytesIO(long_field), filename="a.jsonl")


def test_refusal_formats_for_people_and_machines():
    error = RowError(7, "chosen", "empty")
    assert (str(error), error.as_dict()) == ("row 7, field 'chosen': empty",
                                             {"row": 7, "field": "chosen", "message": "empty"})
    assert str(RowError(None, None, "file is empty")) == "file: file is empty"
    assert UploadRefused([error]).as_dict() == {
        "detail": "The file was refused; nothing was stored. Fix the rows below and upload it again.",
        "n_errors": 1, "errors": [{"row": 7, "field": "chosen", "message": "empty"}]}


# --- never anything but a result or a refusal (so never an HTTP 500) ---------------

def assert_result_or_refusal(data: bytes, name: str) -> None:
    try:
        result = parse(data, name)
    except UploadRefused as refused:  # the whole file, or the row where reading stopped
        assert len(refused.errors) == 1 and (refused.errors[0].row is None or refused.errors[0].row >= 1)
        return
    assert result.n_errors >= len(result.errors) and len(result.errors) <= 100
    assert bool(result.errors) or bool(result.pairs)
    for pair in result.pairs:
        for text in (pair.prompt, pair.chosen, pair.rejected):
            text.encode("utf-8")  # storable in any UTF-8 database
            assert "\x00" not in text and 0 < len(text)


def test_conversational_parquet_with_extra_message_fields_is_refused():
    rows = [{**CONVERSATIONS[0], "chosen": [{"role": "assistant", "content": "Paris.", "meta": "z" * 5000}]}]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    result = parse(buf.getvalue(), "conv.parquet")
    assert result.pairs == []
    assert [(e.row, e.field, e.message) for e in result.errors] == [
        (1, "chosen", "message 1 has key(s) 'meta'; only 'role' and 'content' are allowed")]


@hypothesis_settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600) | st.binary(max_size=600).map(lambda b: b"PAR1" + b),
       name=st.sampled_from(["a.jsonl", "a.csv", "a.parquet"]))
def test_arbitrary_bytes_give_a_result_or_a_refusal(data, name):
    assert_result_or_refusal(data, name)


# A tiny alphabet of the characters that break storage or comparison (lone surrogates, NUL,
# case, width, spacing), so that well-formed rows are common and reach hashing and duplicates.
TRICKY_TEXT = st.text(st.sampled_from(["a", "A", "Ａ", " ", "\n", "é", "ß", "\ud83d", "\ude00", "\udfff", "\x00"]),
                      max_size=5)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "robot"]), "content": TRICKY_TEXT},
                                optional={"name": TRICKY_TEXT})
JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TRICKY_TEXT,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
                          max_leaves=6)
FIELDS3 = ("prompt", "chosen", "rejected")
RECORD = st.one_of(
    st.fixed_dictionaries({f: TRICKY_TEXT for f in FIELDS3}),
    st.fixed_dictionaries({f: st.lists(MESSAGE, min_size=1, max_size=2) for f in FIELDS3}),
    st.dictionaries(st.sampled_from([*FIELDS3, "extra"]), JSON_VALUE, max_size=4),
)


@hypothesis_settings(max_examples=150, deadline=None)
@given(records=st.lists(RECORD, min_size=1, max_size=5), ascii_escapes=st.booleans())
def test_arbitrary_json_lines_give_a_result_or_a_refusal(records, ascii_escapes):
    data = "".join(json.dumps(r, ensure_ascii=ascii_escapes) + "\n" for r in records)
    assert_result_or_refusal(data.encode("utf-8", "surrogatepass"), "a.jsonl")
