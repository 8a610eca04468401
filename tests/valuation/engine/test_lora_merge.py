"""A LoRA stage merged into its parent (lora_merge.py) is the same model as the adapter on that parent:
the check behind scoring a LoRA sequential coalition as its last adapter on the merged previous stage.
Untrained tiny models with random adapters (conftest.random_lms): no training, fast."""

from __future__ import annotations

import json

import numpy as np
import pytest

from valuation.engine import runtime as rt
from valuation.engine import synthetic
from valuation.engine.lora_merge import RECORD, merge_adapter, merged_identity
from valuation.engine.scoring import is_adapter_dir, score_model


@pytest.fixture(scope="module")
def eval_pairs():
    return synthetic.eval_pairs(12, seed=0)


def test_merged_adapter_scores_like_the_unmerged_adapter(random_lms, eval_pairs, tmp_path):
    base, adapter = random_lms["base"], random_lms["lora"][0]
    merged = merge_adapter(base, adapter, tmp_path / "m1", identity=merged_identity("b", "a"), tokenizer_dir=base)
    assert not is_adapter_dir(merged) and json.loads((merged / RECORD).read_text())["identity"] == merged_identity("b", "a")
    unmerged = score_model(adapter, base, eval_pairs)
    as_model = score_model(merged, merged, eval_pairs)
    plain = score_model(base, base, eval_pairs)
    assert np.abs(unmerged.margin - plain.margin).max() > 1e-2  # the adapter changes the model...
    np.testing.assert_allclose(as_model.chosen, unmerged.chosen, atol=1e-4)  # ...and merging does not
    np.testing.assert_allclose(as_model.rejected, unmerged.rejected, atol=1e-4)


def test_a_second_stage_on_the_merged_model_chains(random_lms, eval_pairs, tmp_path):
    """Stage 2 = adapter on M1; M2 = M1 ⊕ adapter scores like it, and differs from M1."""
    base, first, second = random_lms["base"], random_lms["lora"][0], random_lms["lora"][1]
    m1 = merge_adapter(base, first, tmp_path / "m1", identity="one", tokenizer_dir=base)
    m2 = merge_adapter(m1, second, tmp_path / "m2", identity="two", tokenizer_dir=base)
    on_m1 = score_model(second, m1, eval_pairs)
    np.testing.assert_allclose(score_model(m2, m2, eval_pairs).chosen, on_m1.chosen, atol=1e-4)
    assert np.abs(on_m1.chosen - score_model(m1, m1, eval_pairs).chosen).max() > 1e-2


def test_a_finished_merge_is_reused_and_a_stale_one_replaced(random_lms, tmp_path):
    base, adapter = random_lms["base"], random_lms["lora"][0]
    out = merge_adapter(base, adapter, tmp_path / "m", identity="x", tokenizer_dir=base)
    weights = next(out.glob("*.safetensors"))
    stamp = weights.stat().st_mtime_ns
    assert merge_adapter(base, adapter, out, identity="x", tokenizer_dir=base) == out
    assert weights.stat().st_mtime_ns == stamp  # not written again
    merge_adapter(base, random_lms["lora"][1], out, identity="y", tokenizer_dir=base)
    assert json.loads((out / RECORD).read_text())["identity"] == "y"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp directory left behind


def test_merging_a_full_model_is_refused_and_writes_nothing(random_lms, tmp_path):
    with pytest.raises(ValueError, match="holds no PEFT adapter to merge"):
        merge_adapter(random_lms["base"], random_lms["full"][0], tmp_path / "m", identity="x",
                      tokenizer_dir=random_lms["base"])
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(autouse=True)
def _fresh_warm_cache():
    yield
    rt.clear()  # the merged models above are gone after the test; keep no copy of them warm
