"""The format readers of the one upload parser (parsing.py): each turns the bytes of a file into
(row number, record) pairs, reporting rows it cannot read; parsing.parse_upload validates the records.

JSONL rows are line numbers; CSV and Parquet rows are 1-based data rows. Ambiguous input is refused,
not guessed: a JSON key or a CSV column given twice, an integer too long to read.
"""
from __future__ import annotations

import csv
import io
import json

from .parsing import FIELDS, REQUIRED_COLUMNS, ParseResult, RowError, UploadLimits, UploadRefused, quoted, refuse

UTF8_BOM = b"\xef\xbb\xbf"


def jsonl_records(data: bytes, result: ParseResult, limits: UploadLimits):
    data = data.removeprefix(UTF8_BOM)  # editors on Windows add one; the CSV reader skips it too
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.add_error(RowError(line_no, None, f"not valid UTF-8 (byte {exc.start})"), limits)
            continue
        try:
            record = json.loads(text, object_pairs_hook=_object_once)
        except RecursionError:
            result.add_error(RowError(line_no, None, "malformed JSON: nested too deeply"), limits)
            continue
        except ValueError as exc:  # JSONDecodeError, a key given twice, an integer of > 4,300 digits
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:120]
            if "integer string conversion" in msg:
                msg = "a number with more than 4,300 digits"
            result.add_error(RowError(line_no, None, f"malformed JSON: {msg}"), limits)
            continue
        if not isinstance(record, dict):
            result.add_error(RowError(line_no, None, "each line must be a JSON object"), limits)
            continue
        if "\\u" in text and not _encodes_as_utf8(record):
            # A \ud800-style escape decodes to a lone surrogate, which no UTF-8 store can hold.
            result.add_error(RowError(line_no, None, "not valid UTF-8: an unpaired surrogate \\u escape"), limits)
            continue
        yield line_no, record


def _object_once(pairs: list) -> dict:
    """A JSON object whose keys are unique: {"chosen": "a", "chosen": "b"} means different things to
    different readers (first or last wins), so it is refused rather than guessed."""
    record = {}
    for key, value in pairs:
        if key in record:
            raise ValueError(f"key {quoted(key)} appears twice in one object")
        record[key] = value
    return record


def _encodes_as_utf8(record: dict) -> bool:
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def csv_records(data: bytes, result: ParseResult, limits: UploadLimits):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UploadRefused([RowError(None, None, f"not valid UTF-8 (line {line} of the file, byte {exc.start})")])
    reader_limit = max(limits.max_field_chars * 4, 131072)  # longer cells are cut short by the limit check
    csv.field_size_limit(reader_limit)
    # strict: a stray quote is an error, not a cell that silently swallows the rest of the file
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    row_no, in_header = 0, True
    try:
        header = reader.fieldnames or []
        in_header = False
        missing = [f for f in FIELDS if f not in header]
        if any(f in missing for f in REQUIRED_COLUMNS):  # no prompt column alone: implicit-prompt rows
            raise refuse(f"CSV header must have columns {', '.join(FIELDS)}; missing: {', '.join(missing)}")
        twice = sorted({f for f in FIELDS if header.count(f) > 1})
        if twice:  # which cell counts would be a guess
            raise refuse(f"CSV header names column(s) {', '.join(twice)} more than once")
        for row_no, record in enumerate(reader, start=1):
            if None in record:  # more cells than header columns
                result.add_error(RowError(row_no, None, "more cells than header columns"), limits)
                continue
            yield row_no, record
    except csv.Error as exc:  # an unterminated quote, a cell over the reader's size limit
        message = f"malformed CSV{' header' if in_header else ''}: {str(exc)[:120]}"
        if "field larger than field limit" in str(exc):
            message = f"a cell is over {reader_limit:,} characters; the limit is {limits.max_field_chars:,}"
        raise UploadRefused([RowError(None if in_header else row_no + 1, None, message)])


def parquet_records(data: bytes, result: ParseResult, limits: UploadLimits):
    from .parquet import parquet_records as read  # pyarrow only when a Parquet file arrives

    return read(data, result, limits)


READERS = {"jsonl": jsonl_records, "csv": csv_records, "parquet": parquet_records}
