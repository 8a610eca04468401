"""`make demo`: a working marketplace in minutes, from nothing.

migrate → demo admin + owners with their uploads (and a copier who is refused), owners verified →
held-out eval set → tiny base model (cached, registered as `tiny-demo`) → a valuation round with progress bars
(preference accuracy, with the data-quality stage) → a second round on the same owner models that
values what their composed models generate, under two objectives (helpfulness, harmlessness: the data
signatures) → web server + Celery worker on 127.0.0.1:8000 (`manage.py serve`). Re-running it reuses
everything already built.
"""
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from marketplace.models import Contribution, EvalSet
from marketplace.parsing import UploadRefused
from marketplace.services import contribution_create, eval_set_create, owner_get_or_create

DEMO_PASSWORD = "marketplace-demo"
ADMIN = ("admin", "admin-demo-pass")
ROUND_NAME = "demo-round"
SIGNATURE_ROUND = "demo-signatures"
# The reward round decodes all 2^5 coalitions on this many eval prompts (≈ 1 min on 2 CPU cores).
# `mean` composition: token-level `sum` over many owners multiplies the changes they share (c₀ = 1 − |S|)
# and the tiny model's generations fall apart (README, "Generation utility").
SIGNATURE_PROMPTS = 128


class Command(BaseCommand):
    help = "Set up the demo marketplace, run a valuation round, and serve the dashboard."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-serve", action="store_true", help="stop after the round")
        parser.add_argument("--serve-only", action="store_true", help="only start the web server and a worker")
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, seed, no_serve, serve_only, addr, **options):
        call_command("migrate", verbosity=0)
        if not serve_only:
            self._setup(seed)
        self._print_logins(addr)
        if not no_serve:
            self._serve(addr)

    def _setup(self, seed: int) -> None:
        from valuation.base_models import TINY_NAME, base_model_import
        from valuation.engine import synthetic
        from valuation.engine.base_model import build_base_model

        demo_dir = Path(settings.VAR_DIR) / "demo"
        files = synthetic.write_demo_files(demo_dir, seed=seed)
        self._admin()
        for username, path in files["owners"].items():
            self._upload(username, path)
        for username, path in files["copiers"].items():
            self._upload(username, path)
        # Only verified owners are paid; the demo's staff vouch for its owners (the copiers stay unverified).
        call_command("verify_owner", *files["owners"], stdout=self.stdout, stderr=self.stderr)
        if not EvalSet.objects.filter(name="demo-eval").exists():
            with open(files["eval"], "rb") as fh:
                eval_set_create(name="demo-eval", file=fh, filename=files["eval"].name)
        self.stdout.write("building the tiny base model (cached after the first run)…")
        base = build_base_model(files["corpus"], Path(settings.ARTIFACTS_DIR) / "base_model", seed=seed)
        self.stdout.write(f"base model: {base.path} ({base.metrics})")
        registered = base_model_import(name=TINY_NAME, built_dir=base.path).base_model  # same build: a no-op
        self.stdout.write(f"registered as base model '{registered.name}'")
        call_command("run_round", name=ROUND_NAME, pool="1000.00", base_model=registered.name,
                     eval_set="demo-eval", seed=seed, data_quality=True, stdout=self.stdout, stderr=self.stderr)
        self.stdout.write("\nvaluing what the composed models generate (helpfulness, harmlessness)…")
        call_command("run_round", "--objective", "helpfulness", "--objective", "harmlessness",
                     name=SIGNATURE_ROUND, pool="1000.00", base_model=registered.name, eval_set="demo-eval",
                     seed=seed, utility="reward", composition="mean", prompts=SIGNATURE_PROMPTS,
                     stdout=self.stdout, stderr=self.stderr)

    def _admin(self) -> None:
        User = get_user_model()
        if not User.objects.filter(username=ADMIN[0]).exists():
            User.objects.create_superuser(username=ADMIN[0], password=ADMIN[1], email="admin@example.com")

    def _upload(self, username: str, path: Path) -> None:
        owner, created = owner_get_or_create(username=username)
        if created:
            owner.user.set_password(DEMO_PASSWORD)
            owner.user.save(update_fields=["password"])
        if Contribution.objects.filter(owner=owner).exists():
            return
        try:
            with open(path, "rb") as fh:
                contribution = contribution_create(owner=owner, file=fh, filename=path.name)
        except UploadRefused as exc:
            self.stdout.write(f"{username}: upload refused as expected — {exc.errors[0]}")
            return
        self.stdout.write(f"{username}: {contribution.n_pairs} pairs accepted")

    def _print_logins(self, addr: str) -> None:
        self.stdout.write(self.style.SUCCESS(
            f"\nDashboard: http://{addr}/\n  admin: {ADMIN[0]} / {ADMIN[1]}\n"
            f"  owners: alice, bob, carol, dave, erin / {DEMO_PASSWORD}\n"))

    def _serve(self, addr: str) -> None:
        call_command("serve", addr=addr, stdout=self.stdout, stderr=self.stderr)  # web + worker; Ctrl-C stops both
