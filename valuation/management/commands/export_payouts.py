"""Export a round's payouts as CSV or JSON (stdout)."""
import csv
import json

from django.core.management.base import BaseCommand, CommandError

from config.csv_export import safe_cell
from valuation import selectors
from valuation.models import ValuationRound


class Command(BaseCommand):
    help = "Export the payouts of a round (by id or name) as CSV or JSON."

    def add_arguments(self, parser):
        parser.add_argument("round")
        parser.add_argument("--format", choices=["csv", "json"], default="csv")

    def handle(self, *args, round, format, **options):
        lookup = {"pk": int(round)} if round.isdigit() else {"name": round}
        valuation_round = ValuationRound.objects.filter(**lookup).first()
        if valuation_round is None:
            raise CommandError(f"no round '{round}'")
        if valuation_round.status != ValuationRound.Status.DONE:
            raise CommandError(f"round '{valuation_round.name}' is {valuation_round.status}; nothing to export")
        values = {v.owner_id: v.shapley for v in selectors.round_values(valuation_round=valuation_round)}
        unit = valuation_round.minor_unit
        rows = [{"round": valuation_round.name, "owner": p.owner.name, "shapley": values.get(p.owner_id),
                 "share": str(p.share), "amount": str(p.amount.quantize(unit)), "currency": p.currency,
                 "status": p.status}
                for p in selectors.round_payouts(valuation_round=valuation_round)]
        if format == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        writer = csv.DictWriter(self.stdout, fieldnames=list(rows[0]) if rows else ["round"])
        writer.writeheader()
        writer.writerows({key: safe_cell(value) for key, value in row.items()} for row in rows)
