"""Training presets resolve to exact configs: tiny is today's TrainingConfig(), auto goes by parameter count."""
import json
import struct
from dataclasses import asdict

import pytest

from valuation.engine import presets
from valuation.engine.dpo import TrainingConfig


def weights_of(path, n_parameters: int):
    """A model directory whose safetensors header declares ``n_parameters`` (the count reads only the header)."""
    path.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_parameters], "data_offsets": [0, 0]}}).encode()
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def test_tiny_is_todays_default_config():
    assert presets.preset_config("tiny") == TrainingConfig()
    assert presets.effective_config("tiny", {}) == TrainingConfig()


def test_lora_preset_fields():
    cfg = presets.preset_config("lora")
    assert (cfg.use_lora, cfg.lora_r, cfg.lora_alpha, cfg.beta) == (True, 8, 16, 0.1)
    assert (cfg.loss_types, cfg.loss_weights) == (("sigmoid",), (1.0,))
    assert (cfg.learning_rate, cfg.epochs, cfg.batch_size, cfg.max_length) == (
        presets.LORA_LEARNING_RATE, presets.LORA_EPOCHS, presets.LORA_BATCH_SIZE, presets.LORA_MAX_LENGTH)
    assert cfg.seed == TrainingConfig().seed and cfg.lora_dropout == TrainingConfig().lora_dropout


def test_auto_goes_by_parameter_count(tmp_path):
    small = weights_of(tmp_path / "small", presets.LORA_MIN_PARAMETERS - 1)
    large = weights_of(tmp_path / "large", presets.LORA_MIN_PARAMETERS)
    assert presets.resolve("auto", small) == "tiny"
    assert presets.resolve("auto", large) == "lora"
    assert presets.resolve("lora", small) == "lora"  # a named preset is taken as named


def test_auto_without_weights_says_so(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="holds no safetensors weights"):
        presets.resolve("auto", tmp_path)


def test_overrides_replace_single_keys_and_lists_become_tuples():
    cfg = presets.effective_config("lora", {"epochs": 3, "loss_types": ["sigmoid", "sft"], "loss_weights": [1, 0.5]})
    assert asdict(cfg) == {**asdict(presets.preset_config("lora")), "epochs": 3, "loss_types": ("sigmoid", "sft"),
                           "loss_weights": (1, 0.5)}


def test_unknown_preset_and_bad_override_are_refused():
    with pytest.raises(ValueError, match="unknown training preset 'huge'; choose one of: tiny, lora, auto"):
        presets.resolve("huge", "/nowhere")
    with pytest.raises(ValueError, match="training option 'lora_r': must be between 1"):
        presets.effective_config("lora", {"lora_r": 0})
