"""engine/runtime.py: the device/precision setting and the warm per-process caches. The warm caches
must change nothing but time: a fine-tune from the cached base model gives the very model a cold
process trains, and the cached eval tokenisation the very scores."""
import numpy as np
import pytest
import torch

from valuation.engine import runtime, scoring, synthetic
from valuation.engine.dpo import TrainingConfig, train_owner_model
from valuation.engine.runtime import Runtime
from tests.valuation.engine.conftest import TEST_TRAINING_CONFIG


@pytest.mark.parametrize("kwargs, message", [
    ({"device": "tpu"}, "device must be one of cpu, cuda, got 'tpu'"),
    ({"dtype": "int8"}, "dtype must be one of float32, bfloat16, float16, got 'int8'"),
    ({"dtype": "float16"}, "float16 needs device cuda"),
])
def test_bad_settings_are_refused_with_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Runtime(**kwargs)


def test_float32_keys_are_the_old_keys_and_other_precisions_are_not():
    assert Runtime().key_suffix() == "" and Runtime(dtype="bfloat16").key_suffix() == ":bfloat16"


def test_device_comes_from_the_worker_environment(monkeypatch):
    monkeypatch.setenv("VALUATION_DEVICE", "cuda")
    assert Runtime.from_env(dtype="bfloat16") == Runtime(device="cuda", dtype="bfloat16")
    monkeypatch.delenv("VALUATION_DEVICE")
    assert Runtime.from_env() == Runtime()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_that_is_not_there_says_so():
    with pytest.raises(RuntimeError, match="VALUATION_DEVICE=cuda but torch .* sees no GPU"):
        Runtime(device="cuda").check_device()


def test_a_changed_model_directory_is_read_again(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "weights.bin").write_bytes(b"1234")
    before = runtime._stamp(model_dir)
    (model_dir / "weights.bin").write_bytes(b"123456")
    assert runtime._stamp(model_dir) != before


@pytest.mark.slow
def test_warm_copies_train_the_same_model_as_a_cold_process(base_model, owner_train_pairs, tmp_path):
    runtime.clear()
    cold = train_owner_model(base_model.path, owner_train_pairs, tmp_path / "cold", TEST_TRAINING_CONFIG)
    shared = runtime.shared_base_model(base_model.path)
    copy = runtime.base_model_copy(base_model.path)
    assert copy is not shared and all(torch.equal(a, b) for a, b in zip(copy.state_dict().values(),
                                                                         shared.state_dict().values()))
    warm = train_owner_model(base_model.path, owner_train_pairs, tmp_path / "warm", TEST_TRAINING_CONFIG)
    assert not warm.cached and warm.model_hash == cold.model_hash
    # training mutated neither the shared base model nor its tokenizer: a third run agrees too
    third = train_owner_model(base_model.path, list(reversed(owner_train_pairs)), tmp_path / "third",
                              TEST_TRAINING_CONFIG)
    runtime.clear()
    again = train_owner_model(base_model.path, list(reversed(owner_train_pairs)), tmp_path / "again",
                              TEST_TRAINING_CONFIG)
    assert third.model_hash == again.model_hash


@pytest.mark.slow
def test_warm_scoring_equals_scoring_from_the_files(base_model, clean_owner, small_eval_pairs):
    runtime.clear()
    tokenizer = runtime.tokenizer(base_model.path)
    for model_dir in (base_model.path, clean_owner.path):
        warm = scoring.score_model(model_dir, base_model.path, small_eval_pairs)
        cold = scoring.sequence_logps(scoring.load_policy(model_dir), tokenizer, small_eval_pairs)
        assert np.array_equal(warm.chosen, cold[0]) and np.array_equal(warm.rejected, cold[1])
    assert runtime.eval_sequences(base_model.path, small_eval_pairs, None) is runtime.eval_sequences(
        base_model.path, list(small_eval_pairs), None)  # tokenised once per process


@pytest.mark.slow
def test_bfloat16_trains_a_different_model_that_records_its_precision(base_model, tmp_path):
    pairs = synthetic.owner_pairs("clean_helpful", 16, 5)
    bf16 = train_owner_model(base_model.path, pairs, tmp_path / "bf16", TEST_TRAINING_CONFIG,
                             runtime=Runtime(dtype="bfloat16"))
    fp32 = train_owner_model(base_model.path, pairs, tmp_path / "fp32", TEST_TRAINING_CONFIG)
    assert bf16.model_hash != fp32.model_hash
    assert '"dtype": "bfloat16"' in (bf16.path / "owner_model.json").read_text()
    assert '"dtype"' not in (fp32.path / "owner_model.json").read_text()
    # the float32 artifact is not mistaken for the bfloat16 one
    again = train_owner_model(base_model.path, pairs, tmp_path / "fp32", TEST_TRAINING_CONFIG,
                              runtime=Runtime(dtype="bfloat16"))
    assert not again.cached
    scores = scoring.score_model(bf16.path, base_model.path, synthetic.eval_pairs(8, 0),
                                 runtime=Runtime(dtype="bfloat16"))
    assert np.isfinite(scores.chosen).all() and (scores.chosen < 0).all()


@pytest.mark.slow
def test_adapters_are_scored_on_the_one_shared_base_and_leave_it_as_loaded(base_model, small_eval_pairs, tmp_path):
    """A CPU worker reads every adapter on its single warm base model: the same numbers as a private copy, and
    afterwards the shared model has no adapter layers left, the very weights it was loaded with, and every
    weight still trainable (PEFT freezes them; a frozen copy would make a later full fine-tune a no-op)."""
    from peft import PeftModel

    pairs = synthetic.owner_pairs("clean_helpful", 16, 3)
    adapter = train_owner_model(base_model.path, pairs, tmp_path / "lora",
                                TrainingConfig(epochs=1, use_lora=True, seed=0))
    runtime.clear()
    shared = runtime.shared_base_model(base_model.path)
    loaded = {name: tensor.clone() for name, tensor in shared.state_dict().items()}
    modules = [type(module).__name__ for module in shared.modules()]
    trainable = {name: weight.requires_grad for name, weight in shared.named_parameters()}
    first = scoring.score_model(adapter.path, base_model.path, small_eval_pairs)
    assert runtime.shared_base_model(base_model.path) is shared  # not reloaded, not copied
    assert [type(module).__name__ for module in shared.modules()] == modules
    assert {name: weight.requires_grad for name, weight in shared.named_parameters()} == trainable
    assert all(trainable.values())
    assert shared.state_dict().keys() == loaded.keys()
    assert all(torch.equal(tensor, loaded[name]) for name, tensor in shared.state_dict().items())
    private = PeftModel.from_pretrained(runtime.base_model_copy(base_model.path), str(adapter.path))
    tokenizer = runtime.tokenizer(base_model.path)
    chosen, rejected = scoring.sequence_logps(private, tokenizer, small_eval_pairs)
    assert np.array_equal(first.chosen, chosen) and np.array_equal(first.rejected, rejected)
    again = scoring.score_model(adapter.path, base_model.path, small_eval_pairs)  # a second adapter pass
    assert np.array_equal(again.chosen, first.chosen)
    base = scoring.score_model(base_model.path, base_model.path, small_eval_pairs)
    assert not np.array_equal(base.chosen, first.chosen)  # the adapter was on, then off again
    full = train_owner_model(base_model.path, pairs, tmp_path / "full", TrainingConfig(epochs=1, seed=0))
    after = scoring.score_model(full.path, base_model.path, small_eval_pairs)
    assert not np.array_equal(after.chosen, base.chosen)  # a full fine-tune on the same worker still learns
