"""CSV downloads never hand a spreadsheet a formula (config/csv_export.py): any text a user chose —
owner display names, round names — is written so that no cell starts with = + - @ tab or CR, and reads
back as the same text behind one apostrophe."""
import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client
from hypothesis import given, strategies as st

from config.csv_export import FORMULA_PREFIXES, csv_response
from tests.isolation_world import world  # noqa: F401  (the fixture)
from tests.marketplace.fuzz_cases import HOSTILE

FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", '=HYPERLINK("http://x","y")']


def cells(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8"), newline="")))


@given(st.lists(st.one_of(st.text(), st.sampled_from(HOSTILE + FORMULAS)), min_size=1, max_size=6))
def test_no_cell_starts_a_formula_and_the_text_survives(values):
    [header, row] = cells(csv_response(filename="x.csv", header=["h"] * len(values), rows=[values]))
    for written, original in zip(row, values):
        assert not written.startswith(FORMULA_PREFIXES)
        assert written == ("'" + original if original.startswith(FORMULA_PREFIXES) else original)


def test_numbers_stay_numbers():
    [_, row] = cells(csv_response(filename="x.csv", header=["a", "b"], rows=[[-0.25, Decimal("-3.50")]]))
    assert row == ["-0.25", "-3.50"]


@pytest.mark.django_db
def test_owner_and_round_names_are_neutralised_in_every_export(world, staff_user):
    from valuation.models import ValuationRound

    ValuationRound.objects.filter(pk=world.round.pk).update(name="=cmd|' /C calc'!A0")
    payee = world.users["a"].data_owner.payee  # players are shown by their payee's name
    payee.name = '@SUM(1)+HYPERLINK("http://evil")'
    payee.save()
    staff = Client()
    staff.force_login(staff_user)
    exports = [staff.get(f"/rounds/{world.round.pk}/payouts.csv").content.decode()]
    a = Client()
    a.force_login(world.users["a"])
    exports.append(a.get(f"/rounds/{world.round.pk}/statement.csv").content.decode())
    out = io.StringIO()
    call_command("export_payouts", str(world.round.pk), "--format", "csv", stdout=out)
    exports.append(out.getvalue())
    for text in exports:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert all(not cell.startswith(FORMULA_PREFIXES) for row in rows for cell in row if not _number(cell)), rows
        assert any("'=cmd|' /C calc'!A0" in row for row in rows)
    assert any("'@SUM(1)+HYPERLINK(\"http://evil\")" in row for row in csv.reader(io.StringIO(exports[0])))


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
