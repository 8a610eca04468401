"""Session fixtures for the engine tests: one tiny base model and one owner model per session.

Training is the expensive part, so the base model is built once (with fewer steps than
the demo's) and the owner model once; tests that need them are marked slow.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from valuation.engine import synthetic
from valuation.engine.base_model import BaseModelConfig, BaseModelInfo, build_base_model
from valuation.engine.dpo import TrainingConfig, TrainResult, train_owner_model

TEST_BASE_CONFIG = BaseModelConfig(steps=150)  # half the demo's steps: fluent enough, ~25 s
TEST_TRAINING_CONFIG = TrainingConfig(epochs=3, seed=0)  # 3 x 4 steps on 64 pairs, ~4 s
TEST_OWNER_PAIRS = 64


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(synthetic.corpus_text(seed=0), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def base_model(corpus_file, tmp_path_factory) -> BaseModelInfo:
    out = tmp_path_factory.mktemp("models") / "base"
    return build_base_model(corpus_file, out, seed=0, config=TEST_BASE_CONFIG)


@pytest.fixture(scope="session")
def owner_train_pairs():
    return synthetic.owner_pairs("clean_mix", TEST_OWNER_PAIRS, seed=0)


@pytest.fixture(scope="session")
def clean_owner(base_model, owner_train_pairs, tmp_path_factory) -> TrainResult:
    out = tmp_path_factory.mktemp("owners") / "clean"
    return train_owner_model(base_model.path, owner_train_pairs, out, TEST_TRAINING_CONFIG)


@pytest.fixture(scope="session")
def small_eval_pairs():
    # 32 = 4 full TRL eval batches of 8, so TRL's mean of batch means is the plain mean.
    return synthetic.eval_pairs(32, seed=0)
