"""The demo domain with planted bad labels, embedded and assessed: shared by bench/pair_values.py and
bench/curation.py so both measure the pipeline a round's data-quality stage runs.

Owners are the demo's (valuation.engine.synthetic.DEMO_OWNERS: alice clean_helpful, bob
clean_harmless, carol noisy = 30% reversed, dave adversarial = all reversed, erin small_clean),
except that 20% of alice's labels are reversed (synthetic.flip_labels): the planted pairs the
benches look for. Pair values are measured on a *validation* eval set; DPO models are judged on a
disjoint *test* eval set, so selecting data by the validation set is not graded on it.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from valuation.engine import synthetic  # noqa: E402
from valuation.engine.base_model import BaseModelInfo, build_base_model  # noqa: E402
from valuation.engine.data import Pair  # noqa: E402
from valuation.engine.data_quality import Assessment, DataQualityConfig, assess_pairs  # noqa: E402
from valuation.engine.representations import pair_representations  # noqa: E402

PLANTED_OWNER = "alice"
PLANTED_RATE = 0.2
VALIDATION_SEED, TEST_SEED = 0, 1  # eval blocks: disjoint prompts


@dataclass
class Domain:
    base: BaseModelInfo
    names: list[str]
    kinds: list[str]
    pairs: list[Pair]  # every owner's pairs, owner by owner
    owner: np.ndarray  # owner index of each pair
    reversed: np.ndarray  # bool: the pair's label is reversed (planted, noisy or adversarial)
    planted: np.ndarray  # bool: one of the planted reversals of PLANTED_OWNER
    validation: list[Pair]
    test: list[Pair]
    seconds: dict


def build(work: Path, *, seed: int = 0, n_eval: int = synthetic.DEMO_EVAL_PAIRS, flip_seed: int = 0) -> Domain:
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(seed), encoding="utf-8")
    started = time.perf_counter()
    base = build_base_model(corpus, work / f"base-{seed}", seed=seed)
    names, kinds, pairs, owner, rev, planted = [], [], [], [], [], []
    for index, (name, kind, n_pairs) in enumerate(synthetic.DEMO_OWNERS):
        mine, flags = synthetic.owner_pairs_with_flags(kind, n_pairs, synthetic.demo_owner_seed(seed, index))
        plant = np.zeros(len(mine), dtype=bool)
        if name == PLANTED_OWNER:
            mine, plant = synthetic.flip_labels(mine, PLANTED_RATE, seed=flip_seed)
            flags = flags ^ plant
        names.append(name)
        kinds.append(kind)
        pairs += mine
        owner += [index] * len(mine)
        rev.append(flags)
        planted.append(plant)
    return Domain(base=base, names=names, kinds=kinds, pairs=pairs, owner=np.asarray(owner),
                  reversed=np.concatenate(rev), planted=np.concatenate(planted),
                  validation=synthetic.eval_pairs(n_eval, VALIDATION_SEED), test=synthetic.eval_pairs(n_eval, TEST_SEED),
                  seconds={"base_model": time.perf_counter() - started})


def embed(domain: Domain, work: Path) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(z of the pool, z of the validation set, pairs embedded now, seconds)."""
    started = time.perf_counter()
    reps = pair_representations(domain.base.path, domain.pairs + domain.validation,
                                base_model_hash=domain.base.model_hash, cache_dir=work / "representations")
    z = reps.pairs
    return z[: len(domain.pairs)], z[len(domain.pairs):], reps.computed, time.perf_counter() - started


def assess(z_pool, z_val, config: DataQualityConfig) -> tuple[Assessment, float]:
    started = time.perf_counter()
    return assess_pairs(z_pool, z_val, config), time.perf_counter() - started


def lowest(values: np.ndarray, idx: np.ndarray, fraction: float) -> np.ndarray:
    """The round(fraction · |idx|) lowest-valued of the pairs idx (ties: pool order)."""
    k = int(round(fraction * len(idx)))
    return idx[np.argsort(values[idx], kind="stable")[:k]]
