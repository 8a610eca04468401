"""Verify (or suspend) data owners: only verified owners' data enters valuation rounds."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from marketplace.models import Payee
from marketplace.payees import owner_set_status, owners_by_username


class Command(BaseCommand):
    help = ("Verify data owners (their payee becomes a round player), or suspend them. --payee NAME puts the "
            "accounts under one payee: several accounts of one person are then one player, paid once.")

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="+", metavar="USERNAME")
        parser.add_argument("--suspend", action="store_true",
                            help="suspend the owners' payee instead: its data enters no round until verified again")
        parser.add_argument("--payee", metavar="NAME",
                            help="the payee the accounts belong to (created if new; default: the account's own)")

    def handle(self, *args, usernames, suspend, payee, **options):
        status = Payee.Status.SUSPENDED if suspend else Payee.Status.VERIFIED
        try:
            with transaction.atomic():  # all the accounts or none
                for owner in owners_by_username(usernames):
                    result = owner_set_status(owner=owner, status=status, payee_name=payee)
                    self.stdout.write(f"{owner.user.get_username()}: payee '{result.name}' "
                                      f"{result.get_status_display()}")
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
