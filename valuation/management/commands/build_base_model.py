"""Train the tiny reference LM (byte-level BPE + Llama-style model) from a text corpus and register it."""
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from valuation.base_models import TINY_NAME, base_model_import


class Command(BaseCommand):
    help = "Train the tiny base model from a text corpus into a Hugging Face model directory (cached)."

    def add_arguments(self, parser):
        parser.add_argument("--corpus", required=True, type=Path)
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--name", default=TINY_NAME,
                            help=f"the name it is registered under as a base model (default {TINY_NAME})")

    def handle(self, *args, corpus, out, seed, name, **options):
        from valuation.engine.base_model import build_base_model

        if not corpus.is_file():
            raise CommandError(f"no such corpus file: {corpus}")
        info = build_base_model(corpus, out, seed=seed)
        self.stdout.write(self.style.SUCCESS(f"base model in {info.path} (hash {info.model_hash[:16]}); "
                                             f"metrics: {info.metrics}"))
        try:
            registered = base_model_import(name=name, built_dir=info.path).base_model
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        self.stdout.write(f"registered as base model '{registered.name}' ({registered.path})")
