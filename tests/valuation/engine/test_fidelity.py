"""Fidelity check engine: coalition sampling and planning, the report's statistics on games with known
answers (fast), and real sequential/pooled coalition training on the tiny model, full fine-tuning and
LoRA (slow)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from valuation.engine import dpo, synthetic
from valuation.engine.dpo import TrainingConfig
from valuation.engine.fidelity import (Member, ModelRef, Setup, TrainedCoalitions, plan, sample_coalitions,
                                       train_coalitions)
from valuation.engine.fidelity_stats import (average_ranks, clip_shares, compare, headline, pearson,
                                             residual_shapley, spearman)
from valuation.engine.scoring import delta_matrix, score_model
from valuation.engine.shapley import exact_shapley
from valuation.engine.utility import coalition_utility_fn


def test_all_coalitions_when_two_to_the_n_fits():
    assert sample_coalitions(4, 16) == list(range(16)) and sample_coalitions(4, None) == list(range(16))
    assert sample_coalitions(3, 100) == list(range(8))


def test_stratified_sample_keeps_empty_singletons_and_grand_coalition_and_spreads_sizes():
    n, k = 8, 40
    masks = sample_coalitions(n, k, seed=3)
    assert len(masks) == k == len(set(masks))
    assert {0, (1 << n) - 1} | {1 << i for i in range(n)} <= set(masks)
    per_size = [sum(1 for m in masks if m.bit_count() == s) for s in range(n + 1)]
    assert per_size[2:n] == [5] * 6  # (40 − 10) spread evenly over sizes 2..7
    assert sample_coalitions(n, k, seed=3) == masks and sample_coalitions(n, k, seed=4) != masks


def test_a_small_size_stratum_is_filled_and_the_rest_goes_elsewhere():
    masks = sample_coalitions(4, 12, seed=0)  # sizes 2 (6 coalitions) and 3 (4): 6 left to spread
    per_size = [sum(1 for m in masks if m.bit_count() == s) for s in range(5)]
    assert per_size == [1, 4, 3, 3, 1]
    with pytest.raises(ValueError, match="at least 6 coalitions"):
        sample_coalitions(4, 5)


def test_plan_trains_every_sequential_prefix_first_and_pools_each_coalition_once():
    steps = plan([0b1011, 0b0110], ("sequential", "pooled"))
    # {0, 1} is not asked for, but it is the sequential prefix of {0, 1, 3}.
    assert steps == [("sequential", 0b0011), ("pooled", 0b0110), ("sequential", 0b0110),
                     ("pooled", 0b1011), ("sequential", 0b1011)]
    assert len(plan(list(range(16)), ("sequential",))) == 11  # 2^n − n − 1 stages for all coalitions


def test_average_ranks_and_spearman_with_ties():
    assert average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [5, 5, 5]) is None  # a constant vector has no correlation
    assert pearson([1, 2], [1, 2]) is None  # too few points


def test_residual_shapley_is_exact_with_every_coalition():
    rng = np.random.default_rng(0)
    n = 5
    r = rng.normal(size=1 << n)
    r[0] = 0.0
    assert residual_shapley(dict(enumerate(r)), n) == pytest.approx(exact_shapley(r), abs=1e-12)


def test_residual_shapley_from_a_sample_trusts_the_arithmetic_where_unsampled():
    n = 4
    assert residual_shapley({0: 0.0, 0b1111: 0.0, 0b0011: 0.0}, n).tolist() == [0.0] * n
    # Only the grand coalition is off, by +0.4: the stratified estimate gives each owner 0.4 / n.
    assert residual_shapley({0: 0.0, 0b1111: 0.4}, n) == pytest.approx([0.1] * n)


def test_clip_shares_follow_the_payout_policy():
    assert clip_shares(np.array([0.3, 0.1, -0.2])).tolist() == pytest.approx([0.75, 0.25, 0.0])


def _fake_trained(D, sizes, masks, modes, composition, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    margins = {}
    for mode in modes:
        margins[mode] = {}
        for mask in masks:
            w = np.array([float(mask >> i & 1) for i in range(D.shape[0])])
            if composition == "mean" and w.sum():
                w = w * sizes / (w * sizes).sum()
            margins[mode][mask] = w @ D + (noise * rng.normal(size=D.shape[1]) if mask.bit_count() > 1 else 0.0)
    return TrainedCoalitions(masks=list(masks), margins=margins,
                             models={mode: {m: f"h{m}" for m in masks} for mode in modes})


@pytest.fixture
def game():
    rng = np.random.default_rng(1)
    D = rng.normal(loc=[[1.0], [0.5], [-0.8]], scale=2.0, size=(3, 60))
    return D, np.array([30, 50, 20])


def test_compare_is_perfect_when_trained_models_are_the_arithmetic(game):
    D, sizes = game
    trained = _fake_trained(D, sizes, list(range(8)), ("sequential",), "sum")
    report = compare(D, sizes, ["a", "b", "c"], beta=0.1, trained=trained)
    assert report["exhaustive"] and len(report["correlations"]) == 4  # 2 utilities × 2 compositions × 1 mode
    row = next(r for r in report["correlations"] if r["composition"] == "sum" and r["utility"] == "bt_loglik")
    assert row["matching"] and row["pearson"] == pytest.approx(1.0) and row["spearman"] == pytest.approx(1.0)
    assert row["mae"] == pytest.approx(0.0, abs=1e-12) and row["shapley_exact"]
    assert row["max_payout_diff"] == pytest.approx(0.0, abs=1e-12)
    values = next(s for s in report["shapley"] if s["composition"] == "sum" and s["utility"] == "bt_loglik")
    expected = exact_shapley(coalition_utility_fn(D, utility="bt_loglik", composition="sum", beta=0.1).table())
    assert values["arithmetic"] == pytest.approx(expected.tolist())
    assert values["trained"] == pytest.approx(expected.tolist())
    entry = report["coalitions"][0b101]
    assert entry["members"] == ["a", "c"] and entry["models"] == {"sequential": "h5"}
    assert entry["trained"]["sequential"]["bt_loglik"] == pytest.approx(entry["arithmetic"]["sum"]["bt_loglik"])
    assert headline(report, utility="bt_loglik", composition="sum")["mode"] == "sequential"


def test_compare_measures_a_gap_and_its_payout_effect(game):
    D, sizes = game
    trained = _fake_trained(D, sizes, list(range(8)), ("sequential", "pooled"), "mean", noise=3.0)
    report = compare(D, sizes, ["a", "b", "c"], beta=0.1, trained=trained)
    assert len(report["correlations"]) == 8
    row = next(r for r in report["correlations"]
               if (r["utility"], r["composition"], r["mode"]) == ("preference_accuracy", "mean", "pooled"))
    assert row["mae"] > 0 and row["n"] == 8 and row["n_multi"] == 4
    values = next(s for s in report["shapley"]
                  if (s["utility"], s["composition"], s["mode"]) == ("preference_accuracy", "mean", "pooled"))
    gap = np.abs(np.array(values["trained_shares"]) - np.array(values["arithmetic_shares"]))
    assert row["max_payout_diff"] == pytest.approx(gap.max())
    table = [report["coalitions"][m]["trained"]["pooled"]["preference_accuracy"] for m in range(8)]
    assert values["trained"] == pytest.approx(exact_shapley(np.array(table)).tolist())
    assert sum(values["trained"]) == pytest.approx(table[7] - table[0])  # efficiency of the trained game


# --- real training (slow) -------------------------------------------------------------------------

FAST = TrainingConfig(epochs=1, seed=0)


@pytest.mark.slow
def test_trained_coalitions_sequential_and_pooled_on_the_tiny_model(tiny_base_model, tmp_path, monkeypatch):
    from valuation.engine.hashing import directory_hash
    from valuation.engine.base_model import RECORD_FILES

    calls = []
    real = dpo.train_owner_model

    def counting(base_dir, pairs, out_dir, config, **kwargs):
        result = real(base_dir, pairs, out_dir, config, **kwargs)
        calls.append((Path(base_dir), len(pairs), result.cached))
        return result

    monkeypatch.setattr("valuation.engine.fidelity.train_owner_model", counting)
    base_hash = directory_hash(tiny_base_model, exclude=RECORD_FILES)
    members = [Member(name="clean", pairs=tuple(synthetic.owner_pairs("clean_mix", 32, 21)),
                      model_dir=tmp_path / "owners" / "clean"),
               Member(name="adversary", pairs=tuple(synthetic.owner_pairs("adversarial", 24, 22)),
                      model_dir=tmp_path / "owners" / "adversary")]
    eval_set = synthetic.eval_pairs(48, 1)
    scored = []

    def score(ref: ModelRef):
        scored.append(ref.model_hash)
        return score_model(ref.path, tiny_base_model, eval_set)

    base_scores = score_model(tiny_base_model, tiny_base_model, eval_set)
    setup = Setup(base_dir=tiny_base_model, base_hash=base_hash, config=FAST, cache_dir=tmp_path / "coalitions")
    progress = []
    trained = train_coalitions(setup, members, [0, 1, 2, 3], modes=("sequential", "pooled"), score=score,
                               base_scores=base_scores, on_progress=lambda d, t: progress.append((d, t)))

    # Two owner models from π₀, one pooled run on the union from π₀, one sequential stage from the clean model.
    assert [(c[1], c[2]) for c in calls] == [(32, False), (24, False), (56, False), (24, False)]
    assert calls[2][0] == tiny_base_model and calls[3][0] == members[0].model_dir
    assert trained.trained == 4 and trained.reused == 0 and progress[-1] == (10, 10)
    assert len(scored) == 4  # each distinct model scored once: singletons are shared by both modes
    seq, pooled = trained.models["sequential"], trained.models["pooled"]
    assert seq[1] == pooled[1] and seq[2] == pooled[2] and seq[3] != pooled[3] and seq[0] == ""
    owners = [score_model(m.model_dir, tiny_base_model, eval_set) for m in members]
    D = delta_matrix(base_scores, owners)
    for mode in ("sequential", "pooled"):
        assert trained.margins[mode][0].tolist() == [0.0] * 48
        assert np.array_equal(trained.margins[mode][1], D[0]) and np.array_equal(trained.margins[mode][2], D[1])
        assert not np.allclose(trained.margins[mode][3], D[0])  # the second stage / the union moved the model

    report = compare(D, np.array([32, 24]), ["clean", "adversary"], beta=FAST.beta, trained=trained)
    assert report["exhaustive"] and {r["n"] for r in report["correlations"]} == {4}
    assert all(math.isfinite(r["mae"]) for r in report["correlations"])

    # A second check finds every model on disk and trains nothing.
    calls.clear()
    again = train_coalitions(setup, members, [0, 1, 2, 3], modes=("sequential", "pooled"), score=score,
                             base_scores=base_scores)
    assert again.trained == 0 and again.reused == 4 and all(cached for _, _, cached in calls)
    assert again.models == trained.models


LORA = TrainingConfig(epochs=1, use_lora=True, lora_r=4, lora_alpha=8, learning_rate=5e-3, seed=0)


def test_lora_sequential_needs_a_scratch_directory_for_its_merged_parents(tmp_path):
    from valuation.engine.fidelity import CoalitionTrainer

    setup = Setup(base_dir=tmp_path / "base", base_hash="b", config=LORA, cache_dir=tmp_path / "c")
    trainer = CoalitionTrainer(setup, [])
    trainer.refs[("sequential", 1)] = ModelRef(tmp_path / "owner", "o")
    with pytest.raises(ValueError, match="need a scratch directory for the merged parent models"):
        trainer._merged(1)


def test_the_method_record_says_how_sequential_stages_were_chained():
    from valuation.engine.fidelity import method_record

    lora = method_record(LORA, ("sequential", "pooled"))
    assert lora["fine_tune"] == "lora" and lora["lora"]["r"] == 4 and lora["sequential_stages"] == "lora_merged"
    assert "merge_and_unload" in lora["sequential"] and "adapter on π₀" in lora["pooled"]
    full = method_record(FAST, ("sequential",))
    assert full == {"fine_tune": "full", "sequential_stages": "full", "sequential": full["sequential"]}


@pytest.mark.slow
def test_lora_coalitions_pooled_and_sequential_on_the_tiny_model(tiny_base_model, tmp_path, monkeypatch):
    from valuation.engine.base_model import RECORD_FILES
    from valuation.engine.hashing import directory_hash
    from valuation.engine.lora_merge import merged_identity
    from valuation.engine.scoring import is_adapter_dir

    calls = []
    real = dpo.train_owner_model

    def counting(base_dir, pairs, out_dir, config, **kwargs):
        result = real(base_dir, pairs, out_dir, config, **kwargs)
        calls.append((Path(base_dir), kwargs["base_model_hash"], result))
        return result

    monkeypatch.setattr("valuation.engine.fidelity.train_owner_model", counting)
    base_hash = directory_hash(tiny_base_model, exclude=RECORD_FILES)
    members = [Member(name=kind, pairs=tuple(synthetic.owner_pairs(kind, size, seed)),
                      model_dir=tmp_path / "owners" / kind)
               for kind, size, seed in (("clean_mix", 16, 41), ("adversarial", 12, 42), ("noisy", 12, 43))]
    eval_set = synthetic.eval_pairs(32, 1)
    scored = {}

    def score(ref: ModelRef):
        if ref.base_path is not None:  # a sequential stage: its adapter on the merged previous stage
            assert ref.base_path.is_dir() and not is_adapter_dir(ref.base_path)
        scored[ref.model_hash] = ref
        return score_model(ref.path, ref.base_path or tiny_base_model, eval_set)

    base_scores = score_model(tiny_base_model, tiny_base_model, eval_set)
    setup = Setup(base_dir=tiny_base_model, base_hash=base_hash, config=LORA, cache_dir=tmp_path / "coalitions")
    masks = list(range(8))
    trained = train_coalitions(setup, members, masks, modes=("sequential", "pooled"), score=score,
                               base_scores=base_scores)

    # 3 owner adapters, 4 pooled adapters on π₀, 4 sequential stages; {0}, {1} and {0, 1} are merged as parents.
    assert trained.trained == 11 and trained.reused == 0 and trained.merged == 3
    assert all(is_adapter_dir(result.path) for _, _, result in calls)
    pooled_starts = [base for base, _, result in calls if result.path.parent == setup.cache_dir]
    assert sum(1 for base in pooled_starts if base == tiny_base_model) == 4  # pooled: from π₀
    stage_parents = {h for base, h, _ in calls if base != tiny_base_model}
    assert len(stage_parents) == 3 and all(base.name in stage_parents for base, h, _ in calls if h in stage_parents)
    owner = {i: calls[i][2].model_hash for i in range(3)}
    seq, pooled = trained.models["sequential"], trained.models["pooled"]
    assert seq[1] == pooled[1] == owner[0] and seq[3] != pooled[3]
    parent_01, stage_01 = next((h, r) for _, h, r in calls if r.path == scored[seq[3]].path)
    assert parent_01 == merged_identity(base_hash, owner[0]) and stage_01.metrics["n_pairs"] == 12
    assert seq[3] == merged_identity(parent_01, stage_01.model_hash)  # {0, 1} = owner 0 ⊕ the {1} stage
    assert scored[seq[7]].base_path.name == seq[3]  # {0,1,2} = the {2} stage on merged {0,1}
    assert not list(setup.cache_dir.glob(".merged-*"))  # scratch merges are gone
    assert trained.method["sequential_stages"] == "lora_merged"

    owners = [score_model(m.model_dir, tiny_base_model, eval_set) for m in members]
    D = delta_matrix(base_scores, owners)
    for mode in ("sequential", "pooled"):
        for i in range(3):
            assert np.array_equal(trained.margins[mode][1 << i], D[i])
        assert not np.allclose(trained.margins[mode][7], trained.margins[mode][1])
    report = compare(D, np.array([16, 12, 12]), [m.name for m in members], beta=LORA.beta, trained=trained)
    assert report["exhaustive"] and all(r["spearman"] is not None for r in report["correlations"])

    # A second check trains nothing; it rebuilds the scratch merges and scores the same models alike.
    calls.clear()
    again = train_coalitions(setup, members, masks, modes=("sequential", "pooled"), score=score,
                             base_scores=base_scores)
    assert again.trained == 0 and again.reused == 11 and again.merged == 3 and again.models == trained.models
    for mode in ("sequential", "pooled"):
        for mask in masks:
            np.testing.assert_allclose(again.margins[mode][mask], trained.margins[mode][mask], atol=1e-6)
