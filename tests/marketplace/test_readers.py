"""Format readers (marketplace/readers.py, parquet.py): ambiguous or hostile input is refused with the
row or the limit named, and user text inside a message is quoted (no NUL reaches the database)."""
import io
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketplace.models import Contribution
from marketplace.parsing import UploadLimits, UploadRefused, parse_upload
from marketplace.services import contribution_create, display_filename
from tests.conftest import jsonl_bytes, make_pairs, parquet_bytes

LIMITS = UploadLimits(max_bytes=10_000, max_rows=100, max_field_chars=200)


def errors_of(data: bytes, name: str) -> list[str]:
    try:
        result = parse_upload(io.BytesIO(data), filename=name, limits=LIMITS)
    except UploadRefused as refused:
        return [str(e) for e in refused.errors]
    return [str(e) for e in result.errors]


def test_json_keys_given_twice_and_unreadable_numbers_are_row_errors():
    data = (b'{"prompt": "a", "chosen": "b", "rejected": "c", "chosen": "d"}\n'
            b'{"prompt": ' + b"7" * 5000 + b', "chosen": "b", "rejected": "c"}\n')
    assert errors_of(data, "x.jsonl") == ["row 1: malformed JSON: key 'chosen' appears twice in one object",
                                          "row 2: malformed JSON: a number with more than 4,300 digits"]


def test_csv_columns_given_twice_and_stray_quotes_are_refused():
    assert errors_of(b"prompt,chosen,rejected,chosen\na,b,c,d\n", "x.csv") == [
        "file: CSV header names column(s) chosen more than once"]
    assert errors_of(b'prompt,chosen,rejected\na,b,c\nd,"e"f,g\n', "x.csv") == [
        "row 2: malformed CSV: ',' expected after '\"'"]


def test_a_parquet_zip_bomb_is_refused_before_decompression():
    big = "A" * 50_000  # 50 KB of text, a few hundred bytes compressed: over 2 × the 10 KB limit
    buf = io.BytesIO()
    pq.write_table(pa.table({"prompt": [big], "chosen": ["a"], "rejected": ["b"]}), buf, compression="zstd")
    assert len(buf.getvalue()) < 2_000
    [error] = errors_of(buf.getvalue(), "x.parquet")
    assert re.fullmatch(r"file: the Parquet file expands to 50,\d{3} bytes of text; the limit is 20,000 "
                        r"\(2 × the upload limit\)", error), error


def test_a_parquet_footer_that_lies_about_its_size_is_refused():
    data = parquet_bytes(make_pairs(2))
    forged = data[:-8] + (1 << 30).to_bytes(4, "little") + b"PAR1"
    assert errors_of(forged, "x.parquet") == ["file: unreadable Parquet file: its metadata claims 1,073,741,824 bytes"]
    assert errors_of(data[:-3], "x.parquet") == ["file: unreadable Parquet file: truncated (no footer)"]


def test_user_text_in_messages_is_quoted_and_names_are_cleaned(owner_a):
    bad_role = jsonl_bytes([{"prompt": [{"role": "ro\x00ot" * 30, "content": "x"}],
                             "chosen": [{"role": "assistant", "content": "a"}],
                             "rejected": [{"role": "assistant", "content": "b"}]}])
    with pytest.raises(UploadRefused):
        contribution_create(owner=owner_a, file=io.BytesIO(bad_role), filename="evil\x00\u202egpj.jsonl")
    refused = Contribution.objects.get()
    assert refused.original_name == "evilgpj.jsonl"
    message = refused.row_errors[0]["message"]
    assert "\x00" not in message and message.startswith("message 1 has unknown role 'ro\\x00otro") and "…" in message
    assert display_filename("a\tb\nc.csv") == "abc.csv"
