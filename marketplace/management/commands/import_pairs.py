"""Import an owner's preference file through the same parser as the web and the API."""
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from marketplace.parsing import UploadRefused
from marketplace.services import contribution_create, owner_get_or_create


class Command(BaseCommand):
    help = "Import preference pairs (JSONL/CSV/Parquet) for an owner, creating the owner if missing."

    def add_arguments(self, parser):
        parser.add_argument("--owner", required=True, help="username of the data owner")
        parser.add_argument("file", type=Path)

    def handle(self, *args, owner, file, **options):
        if not file.is_file():
            raise CommandError(f"no such file: {file}")
        try:
            data_owner, created = owner_get_or_create(username=owner)
        except ValidationError as exc:
            raise CommandError(f"cannot create owner '{owner}': {'; '.join(exc.messages)}")
        try:
            with file.open("rb") as fh:
                contribution = contribution_create(owner=data_owner, file=fh, filename=file.name)
        except UploadRefused as exc:
            raise CommandError(exc.as_text(file))
        verb = "created owner and imported" if created else "imported"
        self.stdout.write(self.style.SUCCESS(
            f"{verb} {contribution.n_pairs} pairs for '{data_owner}' (contribution {contribution.pk})"))
