"""Bring the near-duplicate index up to date with the pairs held (the migration that creates it does
this once; run it with --rebuild after changing NEAR_DUP_NUM_PERM or NEAR_DUP_LSH_THRESHOLD)."""
from django.core.management.base import BaseCommand

from marketplace.services import near_index_update


class Command(BaseCommand):
    help = "Index held pairs (owners' and eval) for near-duplicate refusal; idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--rebuild", action="store_true", help="drop the index and index every pair again")

    def handle(self, *args, rebuild, **options):
        n = near_index_update(rebuild=rebuild)
        self.stdout.write(self.style.SUCCESS(f"indexed {n} pairs"))
