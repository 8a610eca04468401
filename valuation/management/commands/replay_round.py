"""Replay a finished round from its recorded evidence and say whether values and payouts match exactly."""
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from valuation import replay

from .verify_round import round_by_ref


class Command(BaseCommand):
    help = ("Recompute a finished round from its stored artifacts (hash-checked models, fresh scoring) or, with "
            "--from-scratch, after retraining every owner model; report whether values and payouts match exactly. "
            "Exits non-zero when they do not.")

    def add_arguments(self, parser):
        parser.add_argument("round", help="round id or name")
        parser.add_argument("--from-scratch", action="store_true", help="retrain every owner model first")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        valuation_round = round_by_ref(opts["round"])

        def progress(stage: str, done: int, total: int) -> None:
            if not opts["json"]:
                self.stderr.write(f"  {stage} {done + 1}/{total}")

        try:
            report = replay.round_replay(valuation_round=valuation_round, from_scratch=opts["from_scratch"],
                                         on_progress=progress)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        self.stdout.write(json.dumps(report.to_dict(), indent=2) if opts["json"] else format_replay(report))
        if not report.matches:
            raise CommandError("the replay does not reproduce the round's values and payouts")


def format_replay(report) -> str:
    how = "after retraining every owner model" if report.from_scratch else "from the stored artifacts"
    lines = [f"\nreplay of round {report.round_id} {how}:"]
    lines += [f"  [{c.status:>7}] {c.what}: {c.detail}" for c in report.checks]
    if report.values:
        lines.append(f"  {'owner':<16}{'recorded φ':>22}{'replayed φ':>22}{'payout':>12}{'replayed':>12}")
        for v, p in zip(report.values, report.payouts):
            mark = "" if v["equal"] and p["equal"] else "  ≠"
            lines.append(f"  {v['owner']:<16}{v['recorded']!r:>22}{v['replayed']!r:>22}{p['recorded']:>12}"
                         f"{p['replayed']:>12}{mark}")
    lines.append("values and payouts match exactly" if report.matches else "values or payouts DO NOT match")
    return "\n".join(lines)
