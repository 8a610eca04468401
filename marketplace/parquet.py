"""Reading an uploaded Parquet file without trusting it (the Parquet reader of parsing.py).

Parquet is compressed: a 7 KB file can expand to 200 MB of text (a "zip bomb" that passes the upload
size limit). Everything that can be bounded is checked from the file's footer *before* a page is
decompressed: the footer's own size, the row count, and the uncompressed size of the three columns
read, which may not exceed EXPANSION × the upload limit — the text a JSONL or CSV file under the limit
could hold, with room for Parquet's own overhead. Rows are then read in small batches.

What the footer cannot vouch for: a hand-written file whose footer understates its pages' sizes. Arrow
then decompresses a page to the size its page header declares (≤ 2 GiB); deployments that fear that
cap the web workers' memory (docs/deployment.md).
"""
from __future__ import annotations

import io
import struct

from .parsing import FIELDS, PARQUET_MAGIC, REQUIRED_COLUMNS, ParseResult, RowError, UploadLimits, UploadRefused, refuse

EXPANSION = 2  # uncompressed column data ≤ EXPANSION × UploadLimits.max_bytes
MAX_FOOTER_BYTES = 1 << 20  # the metadata of a file with 3 text columns is a few KB
MAX_COLUMNS = 1_000
BATCH_ROWS = 256  # ≤ 256 × 3 × max_field_chars of text in memory at once from a well-formed file


def parquet_records(data: bytes, result: ParseResult, limits: UploadLimits):
    """Yield (row number, {field: value}) of a Parquet upload; UploadRefused when the file is unusable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _check_footer(data)
    row_no = 0
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        _check_metadata(parquet.metadata, parquet.schema_arrow.names, limits)
        columns = [f for f in FIELDS if f in parquet.schema_arrow.names]  # no prompt: implicit-prompt rows
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            for record in batch.to_pylist():
                row_no += 1
                yield row_no, record
    except UploadRefused:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError, IndexError, OverflowError,
            MemoryError) as exc:
        row = row_no + 1 if row_no else None
        where = f" near data row {row}" if row else ""
        raise UploadRefused([RowError(row, None, f"unreadable Parquet file{where}: {str(exc)[:200]}")])


def _check_footer(data: bytes) -> None:
    if len(data) < 12 or not data.endswith(PARQUET_MAGIC):
        raise refuse("unreadable Parquet file: truncated (no footer)")
    (footer,) = struct.unpack("<I", data[-8:-4])
    if footer > MAX_FOOTER_BYTES or footer > len(data) - 12:
        raise refuse(f"unreadable Parquet file: its metadata claims {footer:,} bytes")


def _check_metadata(metadata, names: list[str], limits: UploadLimits) -> None:
    if metadata.num_columns > MAX_COLUMNS:
        raise refuse(f"Parquet file has {metadata.num_columns:,} columns; at most {MAX_COLUMNS:,} are read")
    missing = [f for f in FIELDS if f not in names]
    if any(f in missing for f in REQUIRED_COLUMNS):  # no prompt column alone: implicit-prompt rows
        raise refuse(f"Parquet file must have columns {', '.join(FIELDS)}; missing: {', '.join(missing)}")
    if len(set(names) & set(FIELDS)) != sum(1 for n in names if n in FIELDS):
        raise refuse("Parquet file names one of the columns prompt, chosen, rejected twice")
    if metadata.num_rows > limits.max_rows:
        raise refuse(f"{metadata.num_rows:,} rows; the limit is {limits.max_rows:,}")
    wanted = {i for i in range(metadata.num_columns) if metadata.schema.column(i).path.split(".")[0] in FIELDS}
    expanded = sum(metadata.row_group(g).column(i).total_uncompressed_size
                   for g in range(metadata.num_row_groups) for i in wanted)
    budget = EXPANSION * limits.max_bytes
    if expanded > budget:
        raise refuse(f"the Parquet file expands to {expanded:,} bytes of text; the limit is {budget:,} "
                     f"({EXPANSION} × the upload limit)")
