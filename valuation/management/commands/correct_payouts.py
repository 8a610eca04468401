"""Correct an approved round's payouts: a reversal plus a new approved payout per changed owner."""
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from valuation import ledger, selectors
from valuation.models import ValuationRound


class Command(BaseCommand):
    help = ("Correct the approved payouts of a round (by id or name): --set OWNER=AMOUNT for each owner whose "
            "amount changes; the round's total must stay the same. Appends ledger entries, changes none.")

    def add_arguments(self, parser):
        parser.add_argument("round")
        parser.add_argument("--set", dest="amounts", action="append", required=True, metavar="OWNER=AMOUNT")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--by", help="username of the staff member making the correction")

    def handle(self, *args, round, amounts, reason, by=None, **options):
        lookup = {"pk": int(round)} if round.isdigit() else {"name": round}
        valuation_round = ValuationRound.objects.filter(**lookup).first()
        if valuation_round is None:
            raise CommandError(f"no round '{round}'")
        parsed = {}
        for item in amounts:
            owner, sep, amount = item.partition("=")
            if not sep or not owner.strip():
                raise CommandError(f"--set {item!r}: use OWNER=AMOUNT")
            parsed[owner.strip()] = amount.strip()
        user = get_user_model().objects.filter(username=by).first() if by else None
        if by and user is None:
            raise CommandError(f"no user '{by}'")
        try:
            new = ledger.payout_correct(valuation_round=valuation_round, amounts=parsed, reason=reason,
                                        corrected_by=user)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        unit = valuation_round.minor_unit
        for payout in new:
            self.stdout.write(f"{payout.owner.user.username}: now {payout.amount.quantize(unit)} {payout.currency}")
        totals = selectors.round_payout_totals(valuation_round=valuation_round)
        self.stdout.write(f"round '{valuation_round.name}' pays {totals['paid']} of {totals['pool']} {totals['currency']}")
