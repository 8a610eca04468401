"""A GPU worker (VALUATION_DEVICE=cuda, VALUATION_DTYPE=bfloat16) trains and scores the tiny model: the
run records its device and precision, DPO moves the model the way it does on a CPU, and the scores it
writes agree with a CPU worker's to bf16 rounding (docs/gpu.md). CI has no GPU, so these skip there."""
import json

import numpy as np
import pytest
import torch

from valuation.engine import runtime
from valuation.engine.dpo import RECORD, train_owner_model
from valuation.engine.runtime import Runtime
from valuation.engine.scoring import delta_matrix, score_model
from tests.valuation.engine.conftest import TEST_TRAINING_CONFIG

NO_GPU = (f"no CUDA GPU visible to torch {torch.__version__} on this machine; CI runs on CPU "
          "(run on a GPU worker with VALUATION_DEVICE=cuda to check, docs/gpu.md)")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)]
GPU_BF16 = Runtime(device="cuda", dtype="bfloat16")


@pytest.fixture(scope="module")
def gpu_owner(base_model, owner_train_pairs, tmp_path_factory):
    runtime.clear()
    return train_owner_model(base_model.path, owner_train_pairs, tmp_path_factory.mktemp("gpu") / "owner",
                             TEST_TRAINING_CONFIG, runtime=GPU_BF16)


def test_a_gpu_fine_tune_records_its_device_and_precision(gpu_owner):
    record = json.loads((gpu_owner.path / RECORD).read_text())
    assert record["dtype"] == "bfloat16" and gpu_owner.metrics["device"] == "cuda"
    assert gpu_owner.metrics["loss_last"] < gpu_owner.metrics["loss_first"]
    assert gpu_owner.metrics["rewards_accuracies_last"] >= 0.9


def test_gpu_scores_prefer_held_out_chosen_answers_and_agree_with_the_cpu(gpu_owner, base_model, small_eval_pairs):
    base = score_model(base_model.path, base_model.path, small_eval_pairs, runtime=GPU_BF16)
    owner = score_model(gpu_owner.path, base_model.path, small_eval_pairs, runtime=GPU_BF16)
    assert np.isfinite(owner.chosen).all() and (owner.chosen < 0).all()
    assert (delta_matrix(base, [owner])[0] > 0).mean() >= 0.9
    on_cpu = score_model(gpu_owner.path, base_model.path, small_eval_pairs, runtime=Runtime(dtype="bfloat16"))
    # bf16 keeps 8 mantissa bits: per-token log-probs differ by ~1e-2 between kernels, ~30 tokens per answer.
    assert np.allclose(owner.chosen, on_cpu.chosen, atol=1.0, rtol=0.05)


def test_a_gpu_artifact_is_not_mistaken_for_a_float32_one(gpu_owner, base_model, owner_train_pairs):
    again = train_owner_model(base_model.path, owner_train_pairs, gpu_owner.path, TEST_TRAINING_CONFIG,
                              runtime=GPU_BF16)
    assert again.cached and again.model_hash == gpu_owner.model_hash
    fp32 = train_owner_model(base_model.path, owner_train_pairs, gpu_owner.path.parent / "fp32",
                             TEST_TRAINING_CONFIG, runtime=Runtime(device="cuda"))
    assert fp32.model_hash != gpu_owner.model_hash and "dtype" not in json.loads((fp32.path / RECORD).read_text())
