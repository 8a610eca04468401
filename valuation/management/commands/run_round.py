"""Create (or resume) a valuation round and run it in the foreground with progress bars."""
import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from marketplace.models import EvalSet
from valuation import base_models, selectors, services
from valuation.engine.presets import PRESETS
from valuation.models import Composition, Estimator, PayoutPolicy, Utility, ValuationRound


class Command(BaseCommand):
    help = ("Run a valuation round in the foreground. An existing round of the same name that has not "
            "finished is resumed where it stopped.")

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--pool", required=True)
        parser.add_argument("--base-model", required=True, metavar="NAME|DIR",
                            help="a registered base model's name (import_base_model) or a local HF model directory")
        parser.add_argument("--eval-set", required=True)
        parser.add_argument("--utility", default=Utility.PREFERENCE_ACCURACY, choices=Utility.values)
        parser.add_argument("--composition", default=Composition.SUM, choices=Composition.values)
        parser.add_argument("--estimator", default=Estimator.AUTO, choices=Estimator.values)
        parser.add_argument("--payout-policy", default=PayoutPolicy.CLIP, choices=PayoutPolicy.values,
                            help="what the pool is split by: the Shapley value (clip) or the split-proof margin share")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--budget", type=int, default=None,
                            help="utility evaluations for the Shapley estimator (default 2^20: exact up to 20 owners)")
        parser.add_argument("--target", type=float, default=None,
                            help="stop sampling once at most this share of the pool may be misallocated (0.01)")
        parser.add_argument("--currency", default="USD")
        parser.add_argument("--owner", action="append", default=None, metavar="NAME",
                            help="a player: a verified payee, by its name or one of its accounts' usernames; repeat "
                                 "for several (default: every verified payee with accepted data)")
        reward = parser.add_argument_group("reward utility (judged generations of each coalition's composed model)")
        reward.add_argument("--objective", action="append", default=None, metavar="NAME=JUDGE",
                            help="an objective and its judge: a dotted path to score(prompts, responses), a "
                                 "reward-model directory, or a built-in name (helpfulness, harmlessness); repeat "
                                 "for several objectives")
        reward.add_argument("--payout-objective", default=None, metavar="NAME|NAME=W,...",
                            help="what the pool is split by: one objective or a weighted blend (default: equal blend)")
        reward.add_argument("--prompts", type=int, default=None,
                            help="eval prompts decoded per coalition (default 128)")
        reward.add_argument("--max-new-tokens", type=int, default=None)
        reward.add_argument("--temperature", type=float, default=None)
        reward.add_argument("--top-p", type=float, default=None)
        reward.add_argument("--greedy", action="store_true", help="decode greedily instead of sampling")
        parser.add_argument("--data-quality", action="store_true",
                            help="after valuing, value every pair and cluster the data (see value_pairs)")
        parser.add_argument("--preset", default=None, choices=PRESETS,
                            help="training preset (valuation/engine/presets.py): tiny (the demo model's config), "
                                 "lora (a real instruct model), auto (lora from 20M base-model parameters, else tiny; "
                                 "the default)")
        parser.add_argument("--training", type=json.loads, default=None, metavar="JSON",
                            help='training config overrides on top of the preset, e.g. \'{"epochs": 1}\' '
                                 '(valuation.engine.dpo.TrainingConfig)')
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, **opts):
        try:
            valuation_round = self._round(opts)
            bars = _ProgressBars(enabled=not opts["json"])
            valuation_round = services.round_execute(round_id=valuation_round.pk, on_progress=bars.update)
            bars.close()
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        except Exception as exc:
            raise CommandError(f"round failed: {type(exc).__name__}: {exc}")
        result = round_summary(valuation_round)
        if opts["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            self.stdout.write(format_summary(valuation_round, result))

    def _round(self, opts) -> ValuationRound:
        existing = ValuationRound.objects.filter(name=opts["name"]).first()
        if existing is not None:
            verb = "showing" if existing.status == ValuationRound.Status.DONE else "resuming"
            self.stderr.write(f"round '{existing.name}' already exists ({existing.status}): {verb} it with its "
                              "recorded config; other options are ignored (use a new --name for a new round)")
            return existing
        eval_set = EvalSet.objects.filter(name=opts["eval_set"]).first()
        if eval_set is None:
            raise ValidationError(f"no eval set named '{opts['eval_set']}' (import one with import_eval)")
        return services.round_create(
            name=opts["name"], pool=opts["pool"], eval_set=eval_set, **_base_model_option(opts["base_model"]),
            utility=opts["utility"], composition=opts["composition"], estimator=opts["estimator"],
            seed=opts["seed"], currency=opts["currency"], budget=opts["budget"], target=opts["target"],
            objectives=opts["objective"], payout_objective=opts["payout_objective"], prompts=opts["prompts"],
            decoding=_decoding_options(opts), data_quality=opts["data_quality"], training=opts["training"],
            preset=opts["preset"], owners=opts["owner"] or None, payout_policy=opts["payout_policy"])


def _base_model_option(value: str) -> dict:
    """An existing directory is a path (registered or not); anything else must be a registered name."""
    if Path(value).expanduser().is_dir():
        return {"base_model_dir": value}
    return {"base_model": base_models.base_model_get(value)}


def _decoding_options(opts) -> dict | None:
    """Only the decoding options given on the command line (the rest keep the engine's defaults)."""
    given = {key: opts[key] for key in ("max_new_tokens", "temperature", "top_p") if opts[key] is not None}
    if opts["greedy"]:
        given["greedy"] = True
    return given or None


class _ProgressBars:
    """One tqdm bar per stage, fed by the round runner's progress callback."""

    def __init__(self, *, enabled: bool):
        self.enabled, self.bars = enabled, {}

    def update(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            self.close()  # the previous stage is over: one live bar at a time keeps the terminal tidy
            bar = self.bars[stage] = tqdm(total=total, desc=f"{stage:>8}", unit="step", leave=True)
        bar.total = total
        bar.n = done
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()  # closing twice is harmless


def round_summary(valuation_round) -> dict:
    values = selectors.round_values(valuation_round=valuation_round)
    payouts = selectors.round_payouts(valuation_round=valuation_round)
    unit = valuation_round.minor_unit
    return {
        "round": valuation_round.name,
        "id": valuation_round.pk,
        "status": valuation_round.status,
        "estimator": valuation_round.estimator_used,
        "n_evaluations": valuation_round.n_evaluations,
        "stopped_because": valuation_round.stopped_because,
        "misallocation_bound": valuation_round.misallocation_bound,
        "ci95": {v.owner.name: [v.ci_low, v.ci_high] for v in values},
        "values": {v.owner.name: v.shapley for v in values},
        "payouts": {p.owner.name: str(p.amount.quantize(unit)) for p in payouts},
        "utilities": {"+".join(c["members"]) or "{}": c["value"]
                      for c in selectors.round_coalitions(valuation_round=valuation_round)},
        "timings": valuation_round.timings,
        "note": valuation_round.payout_note,
        **_objective_summary(valuation_round),
        **_data_quality(valuation_round),
        **_screen(valuation_round),
    }


def _screen(valuation_round) -> dict:
    from valuation.screening import approval_blockers, screen_report

    report = screen_report(valuation_round)
    if report is None:
        return {}
    flagged = report.owners.filter(flagged=True).select_related("owner__user")
    return {"screen": {"status": report.status, "flagged": sorted(row.owner.name for row in flagged),
                       "error": report.error.split("\n", 1)[0], "approval_blockers": approval_blockers(valuation_round)}}


def _objective_summary(valuation_round) -> dict:
    """A reward round's per-objective values and payout objective (nothing for other utilities)."""
    reward = valuation_round.config.get("reward")
    if not reward:
        return {}
    table = selectors.round_objective_values(valuation_round=valuation_round)
    return {"payout_objective": reward["payout"],
            "objectives": {name: {row["owner"]: row["values"][name]["shapley"] for row in table["rows"]}
                           for name in table["objectives"]}}


def _data_quality(valuation_round) -> dict:
    report = getattr(valuation_round, "data_quality_report", None) if valuation_round.data_quality else None
    if report is None:
        return {}
    return {"data_quality": {"status": report.status, "n_pairs": report.n_pairs, "n_flagged": report.n_flagged,
                             "error": report.error.split("\n", 1)[0]}}


def format_summary(valuation_round, result: dict) -> str:
    lines = [f"\nround '{valuation_round.name}' {valuation_round.status}: {valuation_round.utility}, "
             f"{valuation_round.composition} composition, {result['estimator']} Shapley",
             f"{'owner':<16}{'shapley':>12}{'payout':>14}"]
    for owner, value in result["values"].items():
        lines.append(f"{owner:<16}{value:>12.5f}{result['payouts'].get(owner, '-'):>14} {valuation_round.currency}")
    for name, values in result.get("objectives", {}).items():
        lines.append(f"{name}: " + ", ".join(f"{owner} {value:+.4f}" for owner, value in values.items()))
    lines.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result["timings"].items()))
    if result["note"]:
        lines.append(result["note"])
    if "data_quality" in result:
        dq = result["data_quality"]
        lines.append(f"data quality: {dq['status']}, {dq['n_flagged']} of {dq['n_pairs']} pairs flagged"
                     + (f" ({dq['error']})" if dq["error"] else "") + f"; details: manage.py value_pairs {valuation_round.pk}")
    if "screen" in result:
        screen = result["screen"]
        lines.append(f"semantic screen: {screen['status']}"
                     + (f", above threshold: {', '.join(screen['flagged'])}" if screen["flagged"] else "")
                     + (f" ({screen['error']})" if screen["error"] else "")
                     + ("; acknowledge on the round page before approving" if screen["approval_blockers"] else ""))
    return "\n".join(lines)
