"""Does the round's semantic screen (valuation/engine/similarity.py) catch paraphrased copies of eval pairs,
and how often does it flag distinct pairs? Measured with the project's tiny base model.

Originals: pairs of the synthetic domain (engine/synthetic.py) — a question about (verb, qualifier, object)
with a helpful chosen and an evasive, rude or dangerous rejected response. They play the eval set.
Variants of each original, what an owner would submit to copy it past shingle detection:

* swap      — two adjacent words swapped in the prompt and in each response;
* synonyms  — words replaced from a small table (SYNONYMS), prompt and responses;
* reorder   — the response's sentences in reverse order (the prompt's "Question:"/"Answer:" kept);
* template  — the same question and preference rendered with another phrasing and other response templates.

Distinct: pairs about a (verb, object) that no original asks about, rendered the same way.
Prints, per representation and cosine threshold, the recall on each variant kind (share of variants whose
nearest eval pair is above the threshold) and the false-positive share on distinct pairs; writes
bench/results/similarity_screen.json.

    .venv/bin/python bench/similarity_screen.py [--originals 200] [--work var/bench/similarity]
    .venv/bin/python bench/similarity_screen.py --scale 20000   # time and peak memory of the screen alone
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from valuation.engine import synthetic  # noqa: E402
from valuation.engine.base_model import build_base_model  # noqa: E402
from valuation.engine.data import Pair  # noqa: E402
from valuation.engine.representations import pair_representations  # noqa: E402
from valuation.engine.similarity import REPRESENTATIONS, ScreenConfig, pair_vectors, screen  # noqa: E402

THRESHOLDS = (0.8, 0.9, 0.95, 0.97, 0.99)
KINDS = ("swap", "synonyms", "reorder", "template")
SYNONYMS = {
    "How": "In what way", "best": "ideal", "way": "method", "tips": "advice", "tell": "show", "old": "aged",
    "new": "fresh", "small": "little", "big": "large", "broken": "damaged", "heavy": "weighty", "cheap": "inexpensive",
    "tiny": "miniature", "Happy": "Glad", "help": "assist", "Sure!": "Certainly!", "Good": "Great",
    "question": "query", "Of course.": "Naturally.", "wash": "clean", "warm": "hot", "soapy": "sudsy", "dry": "towel",
    "well": "thoroughly", "Sorry,": "Apologies,", "sure": "certain", "know": "understand", "hard": "difficult",
    "someone": "somebody", "cannot": "can not", "today": "right now", "Maybe": "Perhaps", "fine": "okay",
    "put": "place", "keep": "store", "somewhere": "someplace", "lightly": "gently", "thin": "light",
    "soft": "gentle", "little": "bit of", "stupid": "dense", "idiot": "fool", "dumb": "silly",
}
REJECTED_STYLES = (synthetic.EVASIVE, synthetic.RUDE, synthetic.DANGEROUS)


def render(v, q, o, phrasing, chosen_t, rejected_style, rejected_t) -> Pair:
    fact = synthetic.TASKS[v]
    question = synthetic.PHRASINGS[phrasing].format(v=v, q=q, o=o)

    def fill(template):
        return " " + template.format(v=v, o=o, fact=fact, Fact=fact[0].upper() + fact[1:])

    return Pair(prompt=f"Question: {question}\nAnswer:", chosen=fill(synthetic.HELPFUL[chosen_t]),
                rejected=fill(REJECTED_STYLES[rejected_style][rejected_t]))


def random_spec(rng, v, o):
    return (v, synthetic.QUALIFIERS[rng.integers(len(synthetic.QUALIFIERS))], o, int(rng.integers(4)),
            int(rng.integers(4)), int(rng.integers(3)), int(rng.integers(4)))


def swap_words(text: str, rng) -> str:
    words = text.split(" ")
    movable = [i for i in range(len(words) - 1) if words[i] and words[i + 1] and not words[i].endswith(":")]
    if movable:
        i = movable[int(rng.integers(len(movable)))]
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def synonyms(text: str) -> str:
    for word, other in SYNONYMS.items():
        text = re.sub(rf"(?<![\w]){re.escape(word)}(?![\w])", other, text)
    return text


def reorder(text: str) -> str:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    if len(sentences) < 2:  # one sentence: move its last clause first
        head, _, tail = text.strip().rstrip(".").rpartition(", ")
        return " " + (f"{tail[0].upper()}{tail[1:]}, {head[0].lower()}{head[1:]}." if head else text.strip())
    return " " + " ".join(reversed(sentences))


def variant(kind: str, spec, rng) -> Pair:
    pair = render(*spec)
    if kind == "swap":
        question = pair.prompt[len("Question: "): -len("\nAnswer:")]
        return Pair(prompt=f"Question: {swap_words(question, rng)}\nAnswer:", chosen=swap_words(pair.chosen, rng),
                    rejected=swap_words(pair.rejected, rng))
    if kind == "synonyms":
        return Pair(prompt=synonyms(pair.prompt), chosen=synonyms(pair.chosen), rejected=synonyms(pair.rejected))
    if kind == "reorder":
        return Pair(prompt=pair.prompt, chosen=reorder(pair.chosen), rejected=reorder(pair.rejected))
    v, q, o, phrasing, chosen_t, style, rejected_t = spec  # template: every template index moved on by one or more
    return render(v, q, o, (phrasing + 1 + int(rng.integers(3))) % 4, (chosen_t + 1 + int(rng.integers(3))) % 4,
                  style, (rejected_t + 1 + int(rng.integers(3))) % 4)


def build(n_originals: int, seed: int):
    rng = np.random.default_rng(seed)
    topics = [(v, o) for v in synthetic.TASKS for o in synthetic.OBJECTS]
    order = rng.permutation(len(topics))
    mine, others = [topics[i] for i in order[:n_originals]], [topics[i] for i in order[n_originals:]]
    specs = [random_spec(rng, v, o) for v, o in mine]
    originals = [render(*s) for s in specs]
    variants = {kind: [variant(kind, s, rng) for s in specs] for kind in KINDS}
    distinct = [render(*random_spec(rng, *others[i % len(others)])) for i in range(2 * n_originals)]
    return originals, variants, distinct


def scale(n: int, d: int = 256, n_eval: int = 1000, n_owners: int = 100) -> None:
    """The screen alone on n random unit vectors (d = 2 × the tiny model's hidden size): seconds and peak memory."""
    import resource

    rng = np.random.default_rng(0)
    pool = rng.normal(size=(n, d))
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    evals = pool[:n_eval] + 0.0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    screen(pool, rng.integers(0, n_owners, size=n), evals, ScreenConfig())
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"screen of {n:,} pairs × ({n_eval:,} eval + {n:,} pool), d={d}: {seconds:.1f} s; peak RSS {peak / 1024:.0f} MB "
          f"(inputs {pool.nbytes / 2**20:.0f} MB; grew {max(0, peak - before) / 1024:.0f} MB during the screen)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=0, help="only time the screen on this many random pairs")
    parser.add_argument("--originals", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "similarity")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "similarity_screen.json")
    args = parser.parse_args()
    if args.scale:
        scale(args.scale)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    corpus = args.work / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(args.seed), encoding="utf-8")
    base = build_base_model(corpus, args.work / f"base-{args.seed}", seed=args.seed)
    built = time.perf_counter()
    originals, variants, distinct = build(args.originals, args.seed)
    pool = [p for kind in KINDS for p in variants[kind]] + distinct
    reps = pair_representations(base.path, pool + originals, base_model_hash=base.model_hash,
                                 cache_dir=args.work / "representations")
    embedded = time.perf_counter()
    n = len(pool)
    kind_of = np.array([k for k in KINDS for _ in variants[k]] + ["distinct"] * len(distinct))
    rows, table = [], []
    for representation in REPRESENTATIONS:
        vectors = pair_vectors(reps.chosen, reps.rejected, eval_chosen=reps.chosen[n:], eval_rejected=reps.rejected[n:],
                               representation=representation)
        # Each pool pair its own "owner": only the eval similarities are read here.
        result = screen(vectors[:n], np.arange(n), vectors[n:], ScreenConfig(representation=representation))
        sims = result.eval_similarity
        for threshold in THRESHOLDS:
            row = {"representation": representation, "threshold": threshold}
            for kind in KINDS + ("distinct",):
                row[kind] = float((sims[kind_of == kind] > threshold).mean())
            rows.append(row)
        table.append({"representation": representation,
                      **{f"median_{k}": float(np.median(sims[kind_of == k])) for k in KINDS + ("distinct",)},
                      "p99_distinct": float(np.quantile(sims[kind_of == "distinct"], 0.99))})
    header = f"{'repr':<7} {'cos >':>6} " + " ".join(f"{k:>9}" for k in KINDS) + f" {'FP distinct':>12}"
    print(f"{args.originals} originals (the eval set), {args.originals} variants of each kind, "
          f"{len(distinct)} distinct pairs; tiny base model (hidden 128)")
    print("recall = share of variants whose nearest eval pair is above the threshold; FP = share of distinct pairs")
    print(header)
    for row in rows:
        print(f"{row['representation']:<7} {row['threshold']:>6.2f} " + " ".join(f"{row[k]:>9.1%}" for k in KINDS)
              + f" {row['distinct']:>12.1%}")
    print("median nearest-eval cosine:")
    for t in table:
        print(f"  {t['representation']:<7} " + " ".join(f"{k} {t['median_' + k]:.3f}" for k in KINDS + ("distinct",))
              + f"; distinct p99 {t['p99_distinct']:.3f}")
    timings = {"base_model": round(built - started, 1), "embedding": round(embedded - built, 1),
               "screen": round(time.perf_counter() - embedded, 1)}
    print("seconds:", timings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"originals": args.originals, "seed": args.seed, "rows": rows, "medians": table,
                                    "timings": timings}, indent=2) + "\n")


if __name__ == "__main__":
    main()
