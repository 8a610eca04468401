import json
import time
from dataclasses import replace

import pytest

from valuation.engine import synthetic
from valuation.engine.base_model import load_base_model
from valuation.engine.dpo import RECORD, RECORD_FILES, TrainingConfig, train_owner_model
from valuation.engine.hashing import config_hash, directory_hash, pairs_hash
from valuation.engine.scoring import delta_matrix, score_model

from .conftest import TEST_TRAINING_CONFIG

pytestmark = pytest.mark.slow


def _max_weight_change(model_dir, base_dir) -> float:
    trained = load_base_model(model_dir).state_dict()
    base = load_base_model(base_dir).state_dict()
    assert trained.keys() == base.keys()
    return max((trained[k] - base[k]).abs().max().item() for k in base)


def test_full_fine_tune_changes_the_weights(clean_owner, base_model):
    assert (clean_owner.path / "model.safetensors").is_file()
    assert _max_weight_change(clean_owner.path, base_model.path) > 1e-3
    assert json.loads((clean_owner.path / "config.json").read_text())["use_cache"] is True  # ready to generate


def test_reward_accuracy_and_margin_rose_during_training(clean_owner):
    m = clean_owner.metrics
    assert m["steps"] == 3 * 4  # 3 epochs x ceil(64 / 16) steps
    assert m["rewards_accuracies_last"] >= 0.9 > m["rewards_accuracies_first"]
    assert m["rewards_margins_last"] > 1.0 > abs(m["rewards_margins_first"])
    assert m["loss_last"] < m["loss_first"]


def test_owner_model_prefers_held_out_chosen_answers(clean_owner, base_model, small_eval_pairs):
    base = score_model(base_model.path, base_model.path, small_eval_pairs)
    owner = score_model(clean_owner.path, base_model.path, small_eval_pairs)
    D = delta_matrix(base, [owner])
    assert (D[0] > 0).mean() >= 0.9


def test_run_record_names_every_cache_key(clean_owner, base_model, owner_train_pairs):
    record = json.loads((clean_owner.path / RECORD).read_text())
    assert record["base_model_hash"] == base_model.model_hash
    assert record["data_hash"] == pairs_hash(owner_train_pairs)
    assert record["config_hash"] == config_hash(TEST_TRAINING_CONFIG)
    assert record["model_hash"] == clean_owner.model_hash == directory_hash(clean_owner.path, exclude=RECORD_FILES)
    assert record["artifact"] == "full_model"
    assert TrainingConfig(**{**record["training_config"], "loss_types": tuple(record["training_config"]["loss_types"]), "loss_weights": tuple(record["training_config"]["loss_weights"])}) == TEST_TRAINING_CONFIG


def test_same_seed_same_weights_other_seed_other_weights(clean_owner, base_model, owner_train_pairs, tmp_path):
    again = train_owner_model(base_model.path, owner_train_pairs, tmp_path / "again", TEST_TRAINING_CONFIG)
    assert not again.cached
    assert again.model_hash == clean_owner.model_hash
    assert directory_hash(again.path, exclude=RECORD_FILES) == directory_hash(clean_owner.path, exclude=RECORD_FILES)
    reseeded = replace(TEST_TRAINING_CONFIG, seed=1)
    other = train_owner_model(base_model.path, owner_train_pairs, tmp_path / "other", reseeded)
    assert other.model_hash != clean_owner.model_hash
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]  # no temp dirs left behind


def test_a_finished_model_is_reused(clean_owner, base_model, owner_train_pairs):
    started = time.perf_counter()
    again = train_owner_model(base_model.path, owner_train_pairs, clean_owner.path, TEST_TRAINING_CONFIG)
    assert time.perf_counter() - started < 2.0
    assert again.cached and again.model_hash == clean_owner.model_hash and again.metrics == clean_owner.metrics


def test_lora_saves_only_a_trained_adapter_scored_on_top_of_the_base(base_model, small_eval_pairs, tmp_path):
    from safetensors.torch import load_file

    pairs = synthetic.owner_pairs("clean_mix", 32, seed=1)
    config = replace(TEST_TRAINING_CONFIG, use_lora=True, learning_rate=3e-3)
    result = train_owner_model(base_model.path, pairs, tmp_path / "lora", config)
    assert (result.path / "adapter_config.json").is_file() and not (result.path / "model.safetensors").exists()
    assert json.loads((result.path / RECORD).read_text())["artifact"] == "peft_adapter"
    weights = load_file(result.path / "adapter_model.safetensors")
    lora_b = [tensor for name, tensor in weights.items() if "lora_B" in name]
    assert lora_b and max(t.abs().max().item() for t in lora_b) > 1e-4  # LoRA B starts at zero
    assert result.metrics["rewards_margins_last"] > result.metrics["rewards_margins_first"]
    base = score_model(base_model.path, base_model.path, small_eval_pairs)
    adapted = score_model(result.path, base_model.path, small_eval_pairs)
    assert (delta_matrix(base, [adapted])[0] > 0).mean() > 0.5
    with pytest.raises(ValueError, match="PEFT adapter"):
        score_model(result.path, None, small_eval_pairs)


def test_empty_data_is_refused(base_model, tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        train_owner_model(base_model.path, [], tmp_path / "x", TEST_TRAINING_CONFIG)
    assert not (tmp_path / "x").exists()


def test_config_defaults_match_the_documented_recipe():
    config = TrainingConfig()
    assert config.beta == 0.1 and config.loss_types == ("sigmoid", "sft") and config.loss_weights == (1.0, 1.0)
    assert config.lora_dropout == 0.0
    with pytest.raises(Exception):
        config.beta = 0.2  # frozen


def test_owner_log_ratio_margins_order_clean_noisy_adversarial(clean_owner, base_model, small_eval_pairs, tmp_path):
    """The signal the valuation rests on: D > 0 for clean data, < 0 for flipped labels, noisy in between."""
    trained = [clean_owner.path]
    for index, kind in enumerate(("noisy", "adversarial"), start=1):
        pairs = synthetic.owner_pairs(kind, 64, seed=index)
        trained.append(train_owner_model(base_model.path, pairs, tmp_path / kind, TEST_TRAINING_CONFIG).path)
    base = score_model(base_model.path, base_model.path, small_eval_pairs)
    D = delta_matrix(base, [score_model(path, base_model.path, small_eval_pairs) for path in trained])
    clean, noisy, adversarial = D
    assert (clean > 0).mean() >= 0.9 and (adversarial < 0).mean() >= 0.9
    assert 0 < noisy.mean() < clean.mean()
    print("D means", D.mean(axis=1), "frac>0", (D > 0).mean(axis=1))


def test_the_run_records_trls_step_log_tokens_and_parameters(clean_owner, base_model, owner_train_pairs):
    from valuation.engine.lengths import length_report
    from valuation.engine.model_card import parameter_count
    from valuation.engine.runtime import tokenizer

    m = clean_owner.metrics
    steps = m["log"]["steps"]
    assert m["log"]["every"] == 1 and [s["step"] for s in steps] == list(range(1, 13))
    assert {"loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected",
            "learning_rate"} <= set(steps[0])
    assert steps[-1]["loss"] < steps[0]["loss"] and steps[-1]["epoch"] == pytest.approx(3.0)
    per_epoch = length_report(tokenizer(base_model.path), owner_train_pairs, TEST_TRAINING_CONFIG.max_length).n_tokens
    assert m["tokens"] == per_epoch * TEST_TRAINING_CONFIG.epochs > 0
    assert m["base_parameters"] == parameter_count(base_model.path)
    assert m["lora"] is False  # the kind of fine-tune, which paces the time estimates
    assert json.loads((clean_owner.path / RECORD).read_text())["metrics"]["log"] == m["log"]


def test_a_worker_chooses_activation_checkpointing_by_device_unless_told(monkeypatch):
    from valuation.engine.runtime import CHECKPOINT_MIN_PARAMETERS, activation_checkpointing

    monkeypatch.delenv("VALUATION_ACTIVATION_CHECKPOINTING", raising=False)
    assert activation_checkpointing("cuda") and not activation_checkpointing("cpu", 1_300_000)
    assert activation_checkpointing("cpu", CHECKPOINT_MIN_PARAMETERS)  # a real model: memory binds on a CPU too
    for setting, expected in (("on", True), ("OFF", False), (" auto ", False), ("", False)):
        monkeypatch.setenv("VALUATION_ACTIVATION_CHECKPOINTING", setting)
        assert activation_checkpointing("cpu") is expected
    monkeypatch.setenv("VALUATION_ACTIVATION_CHECKPOINTING", "off")
    assert activation_checkpointing("cuda") is False and activation_checkpointing("cpu", 10**9) is False
    monkeypatch.setenv("VALUATION_ACTIVATION_CHECKPOINTING", "yes")
    with pytest.raises(ValueError, match="must be one of auto, on, off, got 'yes'"):
        activation_checkpointing("cpu")


def test_the_trainer_checkpoints_by_the_size_of_the_model_it_trains(base_model, owner_train_pairs, tmp_path,
                                                                     monkeypatch):
    from valuation.engine import runtime
    from valuation.engine.dpo import build_trainer

    monkeypatch.delenv("VALUATION_ACTIVATION_CHECKPOINTING", raising=False)
    pairs = owner_train_pairs[:8]
    assert not build_trainer(base_model.path, pairs, TEST_TRAINING_CONFIG, str(tmp_path)).args.gradient_checkpointing
    monkeypatch.setattr(runtime, "CHECKPOINT_MIN_PARAMETERS", 1_000)  # the tiny model counts as large
    assert build_trainer(base_model.path, pairs, TEST_TRAINING_CONFIG, str(tmp_path)).args.gradient_checkpointing
    monkeypatch.setenv("VALUATION_ACTIVATION_CHECKPOINTING", "maybe")
    runtime.clear()
    with pytest.raises(ValueError, match="VALUATION_ACTIVATION_CHECKPOINTING must be one of"):
        runtime.prepare_process()  # a worker with a misspelt setting fails when it starts


@pytest.mark.parametrize("use_lora", [False, True])
def test_activation_checkpointing_changes_no_bit_of_the_weights(base_model, owner_train_pairs, tmp_path, monkeypatch,
                                                                use_lora):
    """A worker checkpoints activations or not (runtime.activation_checkpointing: by device and model size, or as
    told); the weights must be the very ones either way, or a cache key would mean two models."""
    from valuation.engine import dpo

    config = TrainingConfig(epochs=1, use_lora=use_lora, seed=0)
    pairs = owner_train_pairs[:32]
    monkeypatch.delenv("VALUATION_ACTIVATION_CHECKPOINTING", raising=False)
    assert dpo._dpo_args(config, str(tmp_path)).gradient_checkpointing is False  # a CPU worker's default here
    plain = train_owner_model(base_model.path, pairs, tmp_path / "plain", config)
    monkeypatch.setenv("VALUATION_ACTIVATION_CHECKPOINTING", "on")
    assert dpo._dpo_args(config, str(tmp_path)).gradient_checkpointing is True
    checkpointed = train_owner_model(base_model.path, pairs, tmp_path / "checkpointed", config)
    assert not checkpointed.cached and checkpointed.model_hash == plain.model_hash


_TRAIN_ONE_ADAPTER = """
import sys
from valuation.engine import synthetic
from valuation.engine.dpo import TrainingConfig, train_owner_model

result = train_owner_model(sys.argv[1], synthetic.owner_pairs("clean_helpful", 8, 3), sys.argv[2],
                           TrainingConfig(epochs=1, use_lora=True, seed=0))
print(result.model_hash)
"""


def test_an_adapter_hashes_the_same_in_every_process(base_model, tmp_path):
    """PEFT writes target_modules in a set's order, which follows the process's string-hash seed, and the base
    model's path; an adapter trained twice, from two copies of the base model, in two processes, must still hash
    the same, or a from-scratch replay of a LoRA round reports a different model."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    hashes, configs = [], []
    for seed in ("1", "2"):
        out, base = tmp_path / f"seed{seed}", shutil.copytree(base_model.path, tmp_path / f"base{seed}")
        env = {**os.environ, "PYTHONHASHSEED": seed, "VALUATION_TORCH_THREADS": "1", "PYTHONPATH": str(root)}
        done = subprocess.run([sys.executable, "-c", _TRAIN_ONE_ADAPTER, str(base), str(out)], env=env,
                              capture_output=True, text=True, cwd=root, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        hashes.append(done.stdout.split()[-1])
        configs.append(json.loads((out / "adapter_config.json").read_text()))
        assert not (out / "README.md").exists()
    assert configs[0]["target_modules"] == sorted(configs[0]["target_modules"])
    assert configs[0]["base_model_name_or_path"] is None
    assert configs[0] == configs[1] and hashes[0] == hashes[1]
