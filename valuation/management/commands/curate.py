"""Write a curated training set (SHED's QOCS or QWCS over a round's valued clusters) as upload-format JSONL."""
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from valuation import quality_selectors
from valuation.engine.curation import METHODS
from valuation.management.commands.verify_round import round_by_ref
from valuation.models import DataQualityReport, ValuationRound


class Command(BaseCommand):
    help = ("Pick SIZE pairs from a round's clusters — qocs: whole clusters in descending value; qwcs: clusters "
            "drawn with probability ∝ exp(value/τ) — and write them as JSONL in the upload format.")

    def add_arguments(self, parser):
        parser.add_argument("--size", type=int, required=True, help="pairs in the curated set")
        parser.add_argument("--method", choices=METHODS, required=True)
        parser.add_argument("--round", help="round id or name (default: the latest round with a data-quality report)")
        parser.add_argument("--tau", type=float, default=None,
                            help="qwcs temperature in standard deviations of the cluster values (default: the report's)")
        parser.add_argument("--seed", type=int, default=0, help="same seed, same subset")
        parser.add_argument("--out", type=Path, help="file to write (default: standard output)")

    def handle(self, *args, **opts):
        valuation_round = round_by_ref(opts["round"]) if opts["round"] else _latest_valued_round()
        try:
            report = quality_selectors.report_get_done(valuation_round=valuation_round)
            pairs = quality_selectors.curated_pairs(report=report, size=opts["size"], method=opts["method"],
                                                    tau=opts["tau"], seed=opts["seed"])
        except Http404:
            raise CommandError(f"round '{valuation_round.name}' has no finished data-quality report; "
                               f"run manage.py value_pairs {valuation_round.pk} first")
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        text = quality_selectors.curated_jsonl(pairs)
        if opts["out"]:
            opts["out"].parent.mkdir(parents=True, exist_ok=True)
            opts["out"].write_text(text, encoding="utf-8")
            self.stderr.write(f"{len(pairs)} pairs ({opts['method']}) from round '{valuation_round.name}' "
                              f"written to {opts['out']}")
        else:
            self.stdout.write(text, ending="")


def _latest_valued_round() -> ValuationRound:
    found = ValuationRound.objects.filter(data_quality_report__status=DataQualityReport.Status.DONE) \
        .order_by("-data_quality_report__finished_at", "-pk").first()
    if found is None:
        raise CommandError("no round has a finished data-quality report; run manage.py value_pairs ROUND first")
    return found
