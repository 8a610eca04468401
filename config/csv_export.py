"""CSV downloads that are safe to open in a spreadsheet.

A text cell starting with = + - @ (or a tab / carriage return) is run as a formula by Excel,
LibreOffice and Google Sheets; owner and round names are user input, so such a cell is
neutralised with a leading apostrophe (OWASP "CSV injection"). Numbers are written as numbers:
a negative Shapley value stays a number.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence

from django.http import HttpResponse

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return "" if value is None else value


def csv_response(*, filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return response
