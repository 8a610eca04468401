"""Value every pair of a finished round (TS-DShapley), flag the harmful ones, cluster the data (SHED)."""
import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from valuation import data_quality, quality_selectors
from valuation.management.commands.run_round import _ProgressBars
from valuation.management.commands.verify_round import round_by_ref

# CLI flag -> engine option (engine/data_quality.OPTIONS); unset flags keep the round's recorded config.
FLAGS = {"chain_size": int, "chains": int, "coverage": int, "permutations": int, "tolerance": float, "patience": int,
         "clusters": int, "tau": float, "flag_z": float, "max_features": int, "l2": float}


class Command(BaseCommand):
    help = ("Run a finished round's data-quality stage in the foreground: a value for every pair, flags with "
            "reasons, and clusters with values. Done already with the same options: shows it. New options: "
            "recomputes it (embeddings are cached, so only the valuation runs again).")

    def add_arguments(self, parser):
        parser.add_argument("round", help="round id or name")
        parser.add_argument("--chain-size", type=int, help="s: pairs per sampled chain (64)")
        parser.add_argument("--chains", type=int, help="K: chains in all (default: enough for --coverage)")
        parser.add_argument("--coverage", type=int, help="chains each pair appears in when --chains is not given (6)")
        parser.add_argument("--permutations", type=int, help="TMC permutations per chain (16)")
        parser.add_argument("--tolerance", type=float, help="truncation tolerance in utility units (0.01)")
        parser.add_argument("--patience", type=int, help="prefixes within tolerance before truncating (3)")
        parser.add_argument("--clusters", type=int, help="k-means clusters (default ⌈√N⌉, at most 100)")
        parser.add_argument("--tau", type=float, help="default QWCS temperature for curated sets (1.0)")
        parser.add_argument("--flag-z", type=float, help="flag when value + z·stderr < 0 (1.645)")
        parser.add_argument("--max-features", type=int, help="principal directions the classifier sees (32)")
        parser.add_argument("--l2", type=float, help="ridge penalty of the classifier (1.0)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **opts):
        valuation_round = round_by_ref(opts["round"])
        options = {name: opts[name] for name in FLAGS if opts.get(name) is not None} or None
        bars = _ProgressBars(enabled=not opts["json"])
        try:
            data_quality.data_quality_request(valuation_round=valuation_round, options=options, queue=False)
            report = data_quality.data_quality_run(valuation_round=valuation_round, on_progress=bars.update)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages))
        except Exception as exc:
            raise CommandError(f"data-quality stage failed: {type(exc).__name__}: {exc}")
        finally:
            bars.close()
        summary = report_summary(report)
        self.stdout.write(json.dumps(summary, indent=2) if opts["json"] else format_summary(summary))


def report_summary(report) -> dict:
    clusters = quality_selectors.clusters(report=report)
    return {"round": report.round.name, "status": report.status, "n_pairs": report.n_pairs,
            "n_flagged": report.n_flagged, "n_chains": report.n_chains, "n_fits": report.n_fits,
            "n_embedded": report.n_embedded, "values_seed": report.values_seed, "clusters_seed": report.clusters_seed,
            "classifier_utility": {"all_pairs": report.full_utility, "no_pairs": report.empty_utility},
            "timings": report.timings, "config": report.config,
            "owners": quality_selectors.owner_table(report=report),
            "clusters": [{"index": c.index, "size": c.size, "value": c.value, "stderr": c.stderr,
                          "n_owners": c.n_owners, "n_flagged": c.n_flagged, "examples": c.examples} for c in clusters]}


def format_summary(s: dict) -> str:
    lines = [f"\ndata quality of round '{s['round']}': {s['n_pairs']} pairs, {s['n_flagged']} flagged; "
             f"{s['n_chains']} chains, {s['n_fits']:,} classifier fits, {s['n_embedded']} pairs embedded now; "
             f"seeds {s['values_seed']} / {s['clusters_seed']}",
             "timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in s["timings"].items()),
             f"{'owner':<16}{'pairs':>7}{'flagged':>9}{'swapped?':>10}{'mean value':>13}"]
    for o in s["owners"]:
        lines.append(f"{o['owner']:<16}{o['n_pairs']:>7}{o['flagged']:>9}{o['reversed']:>10}{o['mean']:>+13.5f}")
    lines.append(f"{'cluster':>7}{'size':>6}{'value':>10}{'± se':>8}{'owners':>8}{'flagged':>9}  example prompt")
    for c in s["clusters"]:
        example = (c["examples"] or [""])[0].replace("\n", " ")[:60]
        lines.append(f"{c['index']:>7}{c['size']:>6}{c['value']:>+10.4f}{c['stderr']:>8.4f}{c['n_owners']:>8}"
                     f"{c['n_flagged']:>9}  {example}")
    return "\n".join(lines)
