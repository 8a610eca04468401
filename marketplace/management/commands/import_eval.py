"""Import a held-out eval set through the shared upload parser."""
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from marketplace.parsing import UploadRefused
from marketplace.services import eval_set_create


class Command(BaseCommand):
    help = "Import a held-out evaluation set (JSONL/CSV/Parquet)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("file", type=Path)

    def handle(self, *args, name, file, **options):
        if not file.is_file():
            raise CommandError(f"no such file: {file}")
        try:
            with file.open("rb") as fh:
                eval_set = eval_set_create(name=name, file=fh, filename=file.name)
        except UploadRefused as exc:
            raise CommandError(exc.as_text(file))
        except ValidationError as exc:  # e.g. a name that is not a slug
            raise CommandError("; ".join(exc.messages))
        self.stdout.write(self.style.SUCCESS(f"eval set '{eval_set.name}': {eval_set.n_pairs} pairs"))
