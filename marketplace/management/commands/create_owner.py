"""Create a data-owner account."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from marketplace.services import owner_create


class Command(BaseCommand):
    help = "Create a data owner (a user account with a DataOwner profile)."

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")

    def handle(self, *args, username, password, email, **options):
        try:
            owner = owner_create(username=username, password=password, email=email)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        self.stdout.write(self.style.SUCCESS(f"created data owner '{owner}'"))
