"""`manage.py export_payouts`: amounts in the minor unit, spreadsheet formulas neutralised."""
import csv
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from valuation.models import OwnerValue, Payout, ValuationRound
from valuation.services import round_create
from valuation.engine import synthetic
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_round(fake_model_dir):
    add_owner("+cmd", synthetic.owner_pairs("clean_mix", 3, 1))
    add_owner("@sum", synthetic.owner_pairs("noisy", 3, 2))
    eval_set = add_eval_set("eval", synthetic.eval_pairs(3, 0))
    r = round_create(name="-r1", pool="9.99", eval_set=eval_set, base_model_dir=str(fake_model_dir))
    for p, (value, amount) in zip(r.participants.order_by("index"), [(0.3, "6.66"), (0.15, "3.33")]):
        OwnerValue.objects.create(round=r, owner=p.owner, shapley=value, ci_low=value, ci_high=value)
        Payout.objects.create(round=r, owner=p.owner, amount=Decimal(amount), share=Decimal("0.5"), currency="USD")
    ValuationRound.objects.filter(pk=r.pk).update(status="done")
    return r


def test_csv_neutralises_formulas_and_uses_minor_units(finished_round):
    out = io.StringIO()
    call_command("export_payouts", str(finished_round.pk), stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["round"], r["owner"], r["amount"]) for r in rows] == [("'-r1", "'+cmd", "6.66"), ("'-r1", "'@sum", "3.33")]


def test_json_keeps_names_verbatim(finished_round):
    out = io.StringIO()
    call_command("export_payouts", str(finished_round.pk), "--format", "json", stdout=out)
    assert [(r["owner"], r["amount"]) for r in json.loads(out.getvalue())] == [("+cmd", "6.66"), ("@sum", "3.33")]


def test_unfinished_round_is_refused(finished_round):
    ValuationRound.objects.filter(pk=finished_round.pk).update(status="scoring")
    with pytest.raises(CommandError, match="is scoring; nothing to export"):
        call_command("export_payouts", str(finished_round.pk))
