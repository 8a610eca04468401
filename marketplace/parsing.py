"""The one upload parser: JSONL, CSV and Parquet preference files (docs/design.md §6).

Web form, REST API and `manage.py import_pairs` / `import_eval` all call
`parse_upload`. It never touches the database: it returns every row it could read
plus every row-numbered problem it found, and the caller (services.py) refuses the
whole file when there is any. Rows are numbered the way a person finds them:
the line number in a JSONL file, the 1-based data row (header excluded) in CSV
and Parquet.

Pairs are TRL's explicit-prompt preference format (`prompt`/`chosen`/`rejected`
strings) or its conversational form (lists of `{role, content}` messages), which
is stored losslessly as canonical JSON. TRL's implicit-prompt form (no `prompt`:
`chosen` and `rejected` are whole texts or conversations sharing their beginning) is
accepted too: the prompt is extracted exactly as `trl.data_utils.extract_prompt` does
and the pair stored in explicit form, so it hashes (and is refused as a copy) like the
explicit pair it equals.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from django.conf import settings

from .normalise import content_hash, normalise_text  # noqa: F401  (normalise_text: part of this module's API)

FIELDS = ("prompt", "chosen", "rejected")
REQUIRED_COLUMNS = ("chosen", "rejected")  # without a prompt column every row is in implicit-prompt form
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
# Browsers and HTTP clients label these files many ways; anything else is a wrong file.
CONTENT_TYPES = {
    "jsonl": {"application/jsonl", "application/x-jsonlines", "application/x-ndjson", "application/json",
              "text/plain", "application/octet-stream", "text/jsonl"},
    "csv": {"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel", "application/octet-stream"},
    "parquet": {"application/vnd.apache.parquet", "application/x-parquet", "application/parquet",
                "application/octet-stream"},
}
PARQUET_MAGIC = b"PAR1"
ROLES = {"system", "user", "assistant", "tool"}
MESSAGE_KEYS = {"role", "content"}


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_rows: int
    max_field_chars: int
    max_reported_errors: int = 100

    @classmethod
    def from_settings(cls) -> UploadLimits:
        return cls(
            max_bytes=settings.UPLOAD_MAX_BYTES,
            max_rows=settings.UPLOAD_MAX_ROWS,
            max_field_chars=settings.UPLOAD_MAX_FIELD_CHARS,
            max_reported_errors=settings.UPLOAD_MAX_REPORTED_ERRORS,
        )


@dataclass(frozen=True)
class RowError:
    row: int | None  # None: the problem is with the whole file
    field: str | None
    message: str

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class ParsedPair:
    row: int
    pair_format: str  # "text" | "conversational"
    prompt: str
    chosen: str
    rejected: str
    content_hash: str


@dataclass
class ParseResult:
    file_format: str
    sha256: str
    pairs: list[ParsedPair] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    n_errors: int = 0  # all problems found; `errors` keeps the first max_reported_errors

    def add_error(self, error: RowError, limits: UploadLimits) -> None:
        self.n_errors += 1
        if len(self.errors) < limits.max_reported_errors:
            self.errors.append(error)


class UploadRefused(Exception):
    """The whole file is refused; nothing of it is stored."""

    def __init__(self, errors: list[RowError], n_errors: int | None = None, *, contribution=None):
        self.errors = errors
        self.n_errors = n_errors if n_errors is not None else len(errors)
        self.n_rows = self.n_errors  # rows submitted, when known (services.contribution_create sets it)
        self.contribution = contribution
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {self.n_errors - 5} more)" if self.n_errors > 5 else ""
        super().__init__(f"upload refused, {self.n_errors} problem(s): {shown}{more}")

    def as_text(self, source) -> str:
        """For the CLI: one line per reason, under a header naming the file."""
        lines = [f"{source}: refused, nothing stored ({self.n_errors} problem(s)):"]
        return "\n".join(lines + [f"  {e}" for e in self.errors])

    def as_dict(self) -> dict:
        return {
            "detail": "The file was refused; nothing was stored. Fix the rows below and upload it again.",
            "n_errors": self.n_errors,
            "errors": [e.as_dict() for e in self.errors],
        }


def refuse(message: str, *, field_name: str | None = None) -> UploadRefused:
    return UploadRefused([RowError(None, field_name, message)])


def quoted(value, limit: int = 60) -> str:
    """User input inside a message: short, and with control characters (NUL included) escaped, so the
    message can be shown and stored anywhere (PostgreSQL text refuses NUL)."""
    text = str(value)
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def detect_format(filename: str, content_type: str | None, head: bytes) -> str:
    name = (filename or "").lower()
    ext = next((e for e in EXTENSIONS if name.endswith(e)), None)
    if ext is None:
        raise refuse(f"unsupported file extension in {quoted(filename)}: use one of {', '.join(sorted(EXTENSIONS))}")
    fmt = EXTENSIONS[ext]
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype and ctype not in CONTENT_TYPES[fmt]:
        raise refuse(f"content type {quoted(ctype)} does not match a {fmt} file")
    if (fmt == "parquet") != head.startswith(PARQUET_MAGIC):
        raise refuse(f"the file's content is not {fmt}" + (" (no Parquet magic bytes)" if fmt == "parquet" else ""))
    return fmt


def read_limited(fileobj, limits: UploadLimits) -> bytes:
    """Read at most max_bytes + 1 so an oversized upload is refused without reading it all."""
    size = getattr(fileobj, "size", None)
    if size is not None and size > limits.max_bytes:
        raise refuse(f"file is {size:,} bytes; the limit is {limits.max_bytes:,} bytes")
    data = fileobj.read(limits.max_bytes + 1)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > limits.max_bytes:
        raise refuse(f"file is larger than the limit of {limits.max_bytes:,} bytes")
    if not data.strip():
        raise refuse("file is empty")
    return data


def parse_upload(fileobj, *, filename: str, content_type: str | None = None,
                 limits: UploadLimits | None = None) -> ParseResult:
    """Parse and validate a whole file. Raises UploadRefused for file-level problems;
    row-level problems are collected in the result (the caller refuses if any)."""
    limits = limits or UploadLimits.from_settings()
    data = read_limited(fileobj, limits)
    fmt = detect_format(filename, content_type, data[:4])
    result = ParseResult(file_format=fmt, sha256=hashlib.sha256(data).hexdigest())
    from .readers import READERS  # the format readers; pyarrow is imported only for a Parquet file

    reader = READERS[fmt]
    first_row_of: dict[str, int] = {}
    n_records = 0
    for row, record in reader(data, result, limits):
        n_records += 1
        if n_records > limits.max_rows:
            result.add_error(RowError(row, None, f"more than {limits.max_rows:,} rows; split the file"), limits)
            break
        pair = _validate_record(row, record, result, limits)
        if pair is None:
            continue
        if pair.content_hash in first_row_of:
            result.add_error(RowError(row, None, f"duplicate of row {first_row_of[pair.content_hash]}"), limits)
            continue
        first_row_of[pair.content_hash] = row
        result.pairs.append(pair)
    if n_records == 0 and not result.errors:
        result.add_error(RowError(None, None, "file has no rows"), limits)
    return result


def _validate_record(row: int, record: dict, result: ParseResult, limits: UploadLimits) -> ParsedPair | None:
    record, problems = explicit_record(row, record, limits)
    if problems:
        for problem in problems:
            result.add_error(problem, limits)
        return None
    return _validate_explicit(row, record, result, limits)


def _validate_explicit(row: int, record: dict, result: ParseResult, limits: UploadLimits) -> ParsedPair | None:
    values, problems = {}, []
    conversational = any(isinstance(record.get(f), list) for f in FIELDS)
    for name in FIELDS:
        value = record.get(name)
        if name not in record or value is None:
            problems.append(RowError(row, name, "missing"))
        elif conversational:
            err = _check_messages(value, limits)
            stored = "" if err else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            if not err and len(stored) > limits.max_field_chars:
                # What is stored and downloaded is the JSON, not only the contents: many short messages
                # would otherwise multiply a field's size past the limit.
                err = (f"{len(stored):,} characters as stored (the messages as JSON); "
                       f"the limit is {limits.max_field_chars:,}")
            if err:
                problems.append(RowError(row, name, err))
            else:
                values[name] = stored
        elif not isinstance(value, str):
            problems.append(RowError(row, name, f"must be a string, got {type(value).__name__}"))
        elif not value.strip():
            problems.append(RowError(row, name, "empty"))
        elif len(value) > limits.max_field_chars:
            problems.append(RowError(row, name, f"{len(value):,} characters; the limit is {limits.max_field_chars:,}"))
        elif "\x00" in value:
            problems.append(RowError(row, name, "contains a NUL character"))
        else:
            values[name] = value
    if not problems and _flat(values["chosen"], conversational) == _flat(values["rejected"], conversational):
        problems.append(RowError(row, "rejected", "chosen and rejected are identical"))
    for problem in problems:
        result.add_error(problem, limits)
    if problems:
        return None
    flat = [_flat(values[f], conversational) for f in FIELDS]
    return ParsedPair(row=row, pair_format="conversational" if conversational else "text",
                      prompt=values["prompt"], chosen=values["chosen"], rejected=values["rejected"],
                      content_hash=content_hash(*flat))


def explicit_record(row: int, record: dict, limits: UploadLimits) -> tuple[dict, list[RowError]]:
    """The row in explicit-prompt form: as it is when it has a `prompt`, else with the prompt extracted from
    `chosen` and `rejected` (TRL's implicit-prompt form); or the problems that stop the extraction."""
    if "prompt" in record:
        return record, _ambiguous_prompt(row, record)
    chosen, rejected = record.get("chosen"), record.get("rejected")
    texts = isinstance(chosen, str) and isinstance(rejected, str)
    if not texts and not (isinstance(chosen, list) and isinstance(rejected, list)):
        return record, [RowError(row, "chosen", "without a 'prompt', chosen and rejected must both be whole texts or "
                                                "both be whole conversations (lists of {role, content} messages)")]
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        err = (None if value.strip() else "empty") if texts else _check_messages(value, limits)
        if err:
            return record, [RowError(row, name, err)]
    if chosen == rejected:
        return record, [RowError(row, "rejected", "chosen and rejected are identical")]
    extracted = extract_prompt(chosen, rejected) if chosen[0] == rejected[0] else {"prompt": ""}
    if not extracted["prompt"] or (texts and not extracted["prompt"].strip()):
        return record, [RowError(row, "prompt", "no 'prompt', and chosen and rejected share no beginning to take as "
                                                "the prompt: add a 'prompt' field, or start both with the same "
                                                + ("text" if texts else "conversation turns"))]
    return extracted, []


def _ambiguous_prompt(row: int, record: dict) -> list[RowError]:
    """A `prompt` together with whole conversations in chosen and rejected (both opening with the same
    non-assistant turn): which turns are the prompt would be a guess."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if not (isinstance(chosen, list) and isinstance(rejected, list) and chosen and rejected):
        return []
    first = chosen[0]
    if first == rejected[0] and isinstance(first, dict) and first.get("role") != "assistant":
        return [RowError(row, "prompt", "given, yet chosen and rejected are whole conversations opening with the "
                                        "same turn: give either 'prompt' with the answers only, or no 'prompt' and "
                                        "the whole conversations")]
    return []


def extract_prompt(chosen, rejected) -> dict:
    """`trl.data_utils.extract_prompt` (TRL 1.16), to the letter: the longest common prefix of chosen and
    rejected (characters or messages) is the prompt, less a space it ends on, which starts the answers.
    Callers check first that the two differ and share a beginning (TRL has no answer for either)."""
    for idx in range(min(len(chosen), len(rejected))):
        if chosen[idx] != rejected[idx]:
            if chosen[idx - 1] == " ":  # remove space before the prompt
                idx -= 1
            break
    return {"prompt": chosen[:idx], "chosen": chosen[idx:], "rejected": rejected[idx:]}


def _check_messages(value, limits: UploadLimits) -> str | None:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of {role, content} messages (or all three fields plain strings)"
    total = 0
    for k, message in enumerate(value, start=1):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str) \
                or not isinstance(message.get("role"), str):
            return f"message {k} must be an object with string 'role' and 'content'"
        extra = sorted(set(message) - MESSAGE_KEYS)
        if extra:  # stored and served back verbatim, yet neither valued nor counted against the limits
            shown = ", ".join(quoted(key, 30) for key in extra[:3]) + (" …" if len(extra) > 3 else "")
            return f"message {k} has key(s) {shown}; only 'role' and 'content' are allowed"
        if message["role"] not in ROLES:
            return f"message {k} has unknown role {quoted(message['role'])} (use {', '.join(sorted(ROLES))})"
        if not message["content"].strip() or "\x00" in message["content"]:
            return f"message {k} has empty content or a NUL character"
        total += len(message["content"])
    if total > limits.max_field_chars:
        return f"{total:,} characters of content; the limit is {limits.max_field_chars:,}"
    return None


def _flat(value: str, conversational: bool) -> str:
    return flatten_messages(json.loads(value)) if conversational else value


def flatten_messages(messages: list[dict]) -> str:
    """Plain-text rendering of a conversation, used for hashing and for the tiny base
    model (which has no chat template)."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
