"""Check a finished round's language-model arithmetic against coalition models trained for real."""
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from valuation import fidelity
from valuation.models import FidelityReport, ValuationRound


def round_by_ref(ref: str) -> ValuationRound:
    lookup = {"pk": int(ref)} if ref.isdigit() else {"name": ref}
    found = ValuationRound.objects.filter(**lookup).first()
    if found is None:
        raise CommandError(f"no round '{ref}'")
    return found


class Command(BaseCommand):
    help = ("Train K coalitions' models for real (sequential and/or pooled DPO), score them, and compare their "
            "utilities and Shapley values with the round's arithmetic. The report is stored on the round.")

    def add_arguments(self, parser):
        parser.add_argument("round", help="round id or name")
        parser.add_argument("--coalitions", type=int, default=None,
                            help="coalitions to compare, ∅ and singletons included (default 32: all up to 5 owners; "
                                 "a size-stratified sample above)")
        parser.add_argument("--mode", choices=FidelityReport.Mode.values, default=FidelityReport.Mode.BOTH)
        parser.add_argument("--seed", type=int, default=0, help="seed of the coalition sample")
        parser.add_argument("--json", action="store_true", help="print the whole report as JSON")

    def handle(self, *args, **opts):
        valuation_round = round_by_ref(opts["round"])
        bar = None
        if not opts["json"]:
            from tqdm import tqdm

            bar = tqdm(desc="  models", unit="model")

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total, bar.n = total, done
                bar.refresh()

        try:
            report = fidelity.round_verify(valuation_round=valuation_round, mode=opts["mode"],
                                           coalitions=opts["coalitions"], seed=opts["seed"], on_progress=progress)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        except Exception as exc:
            raise CommandError(f"fidelity check failed: {type(exc).__name__}: {exc}")
        finally:
            if bar is not None:
                bar.close()
        if opts["json"]:
            self.stdout.write(json.dumps(report_dict(report), indent=2))
        else:
            self.stdout.write(format_report(report))


def report_dict(report: FidelityReport) -> dict:
    return {"report": report.pk, "round": report.round.name, "mode": report.mode, "exhaustive": report.exhaustive,
            "trainings": {k: v for k, v in report.trainings.items() if k != "stages"}, "headline": report.headline,
            "correlations": report.correlations, "shapley": report.shapley, "coalitions": report.coalitions}


def _fmt(x) -> str:
    return "—" if x is None else f"{x:+.3f}"


def _method_lines(method: dict) -> list[str]:
    """How the coalition models were made: full fine-tuning or LoRA, and how sequential stages were chained."""
    if not method:
        return []
    lora = method.get("lora")
    lines = [f"LoRA round (r {lora['r']}, α {lora['alpha']})" if lora else "full fine-tuning round"]
    lines += [f"  {mode}: {method[mode]}" for mode in ("pooled", "sequential") if mode in method]
    return lines


def format_report(report: FidelityReport) -> str:
    t, h = report.trainings, report.headline
    lines = [f"\nfidelity check {report.pk} of round '{report.round.name}': {report.n_coalitions} coalitions "
             f"({'all' if report.exhaustive else 'stratified sample'}), {t['trained']} models trained now, "
             f"{t['reused']} found on disk, {t['total_seconds']:.0f} s",
             *_method_lines(t.get("method") or {}),
             f"{'utility':<20}{'comp':<6}{'trained':<13}{'pearson':>8}{'spearman':>9}{'MAE':>8}{'ρ(φ)':>8}"
             f"{'max Δshare':>11}"]
    for r in report.correlations:
        lines.append(f"{r['utility']:<20}{r['composition']:<6}{r['mode'] + (' *' if r['matching'] else ''):<13}"
                     f"{_fmt(r['pearson']):>8}{_fmt(r['spearman']):>9}{r['mae']:>8.4f}"
                     f"{_fmt(r['shapley_spearman']):>8}{r['max_payout_diff']:>11.3f}")
    lines.append("* the pair the composition approximates (sum ↔ sequential, mean ↔ pooled)")
    if h:
        lines.append(f"round's {h['utility']} / {h['composition']} vs {h['mode']}: Spearman ρ {_fmt(h['spearman'])}, "
                     f"largest payout difference {h['max_payout_diff']:.1%} of the pool "
                     f"({h['max_payout_diff_amount']} {h['currency']}, {h['max_payout_diff_owner']})")
    return "\n".join(lines)
