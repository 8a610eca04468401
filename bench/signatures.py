"""The seed paper's helpfulness/harmlessness figure on the demo domain: data signatures from generations.

The five demo owners (alice clean_helpful, bob clean_harmless, carol noisy, dave adversarial,
erin small clean mix) get their DPO models (the demo's training config, cached under --work);
then every one of the 2^5 coalitions is decoded by token-level arithmetic (engine/decoding.py)
on --prompts eval prompts and judged by the two demo judges, and exact Shapley values are
computed per objective — for `sum` and `mean` composition and several decoding seeds, so the
spread over sampling noise is visible. Prints a table (φ per owner and objective, mean ± sd
over seeds, and v(∅), v(N)), writes bench/results/signatures.json and an offline HTML figure
of the signature plane (plotly, the library inlined: 5 MB, so under --work, not in git).

    .venv/bin/python bench/signatures.py [--prompts 128] [--seeds 0 1 2] [--compositions sum mean]
                                         [--work var/bench/signatures]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from valuation.engine import synthetic  # noqa: E402
from valuation.engine.base_model import build_base_model  # noqa: E402
from valuation.engine.decoding import DecodingConfig  # noqa: E402
from valuation.engine.dpo import TrainingConfig, train_owner_model  # noqa: E402
from valuation.engine.judges import load_judge  # noqa: E402
from valuation.engine.policies import PolicySet  # noqa: E402
from valuation.engine.reward import GenerationGame  # noqa: E402
from valuation.engine.shapley import exact_shapley  # noqa: E402

OBJECTIVES = ("helpfulness", "harmlessness")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--compositions", nargs="+", default=["sum", "mean"], choices=["sum", "mean"])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "signatures")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "signatures.json")
    return parser.parse_args()


def owner_models(work: Path):
    corpus = work / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(0), encoding="utf-8")
    base = build_base_model(corpus, work / "base", seed=0)
    names, dirs, sizes = [], [], []
    for index, (name, kind, n_pairs) in enumerate(synthetic.DEMO_OWNERS):
        pairs = synthetic.owner_pairs(kind, n_pairs, synthetic.demo_owner_seed(0, index))
        result = train_owner_model(base.path, pairs, work / "owners" / name, TrainingConfig(),
                                   base_model_hash=base.model_hash)
        print(f"  {name} ({kind}, {n_pairs} pairs): {'cached' if result.cached else f'{result.seconds:.0f} s'}",
              flush=True)
        names.append(f"{name} ({kind})")
        dirs.append(result.path)
        sizes.append(float(n_pairs))
    return base, names, dirs, np.array(sizes)


def run(policies, prompts, sizes, composition: str, seed: int) -> dict:
    judges = {name: load_judge(name) for name in OBJECTIVES}
    game = GenerationGame(policies=policies, prompts=prompts, judges=judges, composition=composition, sizes=sizes,
                          config=DecodingConfig(seed=seed))
    started = time.perf_counter()
    tables = {name: game.utility({name: 1.0}).table() for name in OBJECTIVES}
    seconds = time.perf_counter() - started
    tokens = sum(r.n_tokens for r in game.records.values())
    return {"composition": composition, "seed": seed, "seconds": seconds, "tokens": tokens,
            "phi": {name: exact_shapley(t).tolist() for name, t in tables.items()},
            "empty": {name: float(t[0]) for name, t in tables.items()},
            "grand": {name: float(t[-1]) for name, t in tables.items()},
            "grand_samples": game.records[(1 << policies.n) - 1].responses[:3]}


def summary(runs: list[dict], names: list[str]) -> None:
    for composition in sorted({r["composition"] for r in runs}):
        mine = [r for r in runs if r["composition"] == composition]
        print(f"\n{composition} composition, {len(mine)} decoding seed(s): φ mean ± sd over seeds")
        print(f"{'owner':<30}" + "".join(f"{name:>22}" for name in OBJECTIVES))
        for i, owner in enumerate(names):
            cells = []
            for name in OBJECTIVES:
                values = np.array([r["phi"][name][i] for r in mine])
                cells.append(f"{values.mean():+.4f} ± {values.std():.4f}")
            print(f"{owner:<30}" + "".join(f"{c:>22}" for c in cells))
        for key, label in (("empty", "v(∅) base model"), ("grand", "v(N) everyone")):
            print(f"{label:<30}" + "".join(
                f"{np.mean([r[key][name] for r in mine]):>22.4f}" for name in OBJECTIVES))
        print(f"{'decoding (all 32 coalitions)':<30}{np.mean([r['seconds'] for r in mine]):>21.1f}s "
              f"{np.mean([r['tokens'] for r in mine]):>14.0f} tokens")
        print(f"everyone composed, seed {mine[0]['seed']}: {mine[0]['grand_samples']}")


def figure(runs: list[dict], names: list[str], path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    compositions = sorted({r["composition"] for r in runs})
    fig = make_subplots(rows=1, cols=len(compositions), subplot_titles=[f"{c} composition" for c in compositions])
    for col, composition in enumerate(compositions, start=1):
        mine = [r for r in runs if r["composition"] == composition]
        x = np.array([r["phi"]["helpfulness"] for r in mine])
        y = np.array([r["phi"]["harmlessness"] for r in mine])
        fig.add_trace(go.Scatter(
            x=x.mean(0), y=y.mean(0), mode="markers+text", text=[n.split()[0] for n in names],
            textposition="top center", error_x={"array": x.std(0)}, error_y={"array": y.std(0)},
            showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text="φ helpfulness", zeroline=True, row=1, col=col)
        fig.update_yaxes(title_text="φ harmlessness", zeroline=True, row=1, col=col)
    fig.update_layout(height=480, width=480 * len(compositions), template=None)
    fig.write_html(str(path), include_plotlyjs=True)  # offline: the library is inlined


def main() -> int:
    args = parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    args.work.mkdir(parents=True, exist_ok=True)
    print("base model and the five demo owners' models (cached after the first run)…", flush=True)
    base, names, dirs, sizes = owner_models(args.work)
    policies = PolicySet(base.path, dirs)
    prompts = [p.prompt for p in synthetic.eval_pairs(synthetic.DEMO_EVAL_PAIRS, 0)][:args.prompts]
    runs = []
    for composition in args.compositions:
        for seed in args.seeds:
            runs.append(run(policies, prompts, sizes, composition, seed))
            print(f"  {composition} seed {seed}: {runs[-1]['seconds']:.0f} s", flush=True)
    summary(runs, names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"owners": names, "prompts": args.prompts, "runs": runs}, indent=2))
    html = args.work / "signatures.html"
    figure(runs, names, html)
    print(f"wrote {args.out} and {html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
