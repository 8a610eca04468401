"""TrainingConfig refuses, when it is built, every value that would only fail (or train nonsense) later in a
worker: the CLI, the web form and the API all build one at round creation."""

import pytest

from valuation.engine.dpo import TrainingConfig
from valuation.engine.hashing import config_hash


@pytest.mark.parametrize("overrides, says", [
    ({"batch_size": 0}, "'batch_size': must be between 1 and 4,096, got 0"),
    ({"batch_size": 16.0}, "'batch_size': must be an integer, got 16.0"),
    ({"batch_size": True}, "'batch_size': must be an integer"),
    ({"epochs": "four"}, "'epochs': must be an integer, got 'four'"),
    ({"epochs": 10**9}, "'epochs': must be between 1 and 100"),
    ({"gradient_accumulation": -1}, "'gradient_accumulation': must be between 1"),
    ({"max_length": 0}, "'max_length': must be between 8"),
    ({"lora_r": 0}, "'lora_r': must be between 1"),
    ({"seed": -1}, "'seed': must be between 0"),
    ({"seed": 2**32}, "'seed': must be between 0"),
    ({"learning_rate": -1e-3}, "'learning_rate': must be in (0, 1], got -0.001"),
    ({"learning_rate": 0}, "'learning_rate': must be in (0, 1]"),
    ({"learning_rate": float("nan")}, "'learning_rate': must be a finite number"),
    ({"learning_rate": "1e-3"}, "'learning_rate': must be a finite number, got '1e-3'"),
    ({"beta": 0.0}, "'beta': must be in (0, 1000]"),
    ({"beta": float("inf")}, "'beta': must be a finite number"),
    ({"lora_dropout": 1.0}, "'lora_dropout': must be in [0, 0.999]"),
    ({"use_lora": "yes"}, "'use_lora': must be true or false"),
    ({"use_lora": 1}, "'use_lora': must be true or false"),
    ({"loss_types": "sigmoid", "loss_weights": [1.0]}, "'loss_types': must be a non-empty list"),
    ({"loss_types": [], "loss_weights": []}, "'loss_types': must be a non-empty list"),
    ({"loss_types": ["sigmoid", "vibes"]}, "'loss_types': unknown loss 'vibes'"),
    ({"loss_types": ["sigmoid", "sigmoid"]}, "a loss is named twice"),
    ({"loss_types": ["sigmoid"]}, "'loss_weights': 2 weight(s) for 1 loss type(s)"),
    ({"loss_weights": [1.0]}, "'loss_weights': 1 weight(s) for 2 loss type(s)"),
    ({"loss_weights": [1.0, -1.0]}, "'loss_weights': must be in [0, 1000]"),
    ({"loss_weights": [1.0, "x"]}, "'loss_weights': must be a finite number"),
    ({"loss_types": ["sft"], "loss_weights": [1.0]}, "needs a preference loss"),
    ({"loss_weights": [0.0, 1.0]}, "needs a preference loss"),
])
def test_a_bad_value_is_refused_at_once_naming_its_key(overrides, says):
    with pytest.raises(ValueError) as info:
        TrainingConfig(**overrides)
    assert says in str(info.value)


def test_json_lists_become_tuples_and_keep_the_cache_key():
    from_json = TrainingConfig(loss_types=["sigmoid", "sft"], loss_weights=[1.0, 1.0])
    assert from_json == TrainingConfig() and from_json.loss_types == ("sigmoid", "sft")
    assert config_hash(from_json) == config_hash(TrainingConfig())


@pytest.mark.parametrize("overrides", [{}, {"epochs": 1, "batch_size": 1, "learning_rate": 1, "beta": 5},
                                       {"loss_types": ["ipo"], "loss_weights": [0.5]},
                                       {"use_lora": True, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1},
                                       {"seed": 2**32 - 1, "max_length": 8}])
def test_sensible_configs_are_accepted(overrides):
    config = TrainingConfig(**overrides)
    assert all(getattr(config, key) == (tuple(v) if isinstance(v, list) else v) for key, v in overrides.items())
