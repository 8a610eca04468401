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


# --- untrained tiny language models: decoding mechanics in seconds, no training ----------------------

RANDOM_OWNERS = 3  # full-model owners (different random weights) and as many LoRA adapters


def _random_llama(tokenizer, seed: int, max_positions: int = 96):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=64, max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.5)  # peaked logits: no near-ties for float rounding to flip
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # EOS a few times per dozen steps, so rows finish at different steps
        model.lm_head.weight[tokenizer.eos_token_id] *= 2.5
    return model


@pytest.fixture(scope="session")
def random_lms(tmp_path_factory):
    """{"base": dir, "full": [dirs], "lora": [adapter dirs]}: untrained Llama models sharing one tokenizer."""
    from peft import LoraConfig, get_peft_model

    from valuation.engine.base_model import corpus_documents, train_tokenizer

    root = tmp_path_factory.mktemp("random-lms")
    tokenizer = train_tokenizer(corpus_documents(synthetic.corpus_text(0))[:400], vocab_size=320)
    out = {"base": root / "base", "full": [], "lora": []}
    for path, seed in [(out["base"], 0)] + [(root / f"full{i}", i + 1) for i in range(RANDOM_OWNERS)]:
        _random_llama(tokenizer, seed).save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
        if path != out["base"]:
            out["full"].append(path)
    for i in range(RANDOM_OWNERS):
        import torch

        torch.manual_seed(100 + i)
        base = _random_llama(tokenizer, 0)
        lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                          init_lora_weights=False, task_type="CAUSAL_LM")  # random B: the adapter changes the model
        get_peft_model(base, lora).save_pretrained(str(root / f"lora{i}"))
        out["lora"].append(root / f"lora{i}")
    return out


@pytest.fixture(scope="session")
def chat_lm(tmp_path_factory):
    """An untrained tiny Llama whose tokenizer has a ChatML-like chat template (chat_fixtures.CHATML)."""
    from valuation.engine.base_model import corpus_documents, train_tokenizer

    from .chat_fixtures import CHATML

    path = tmp_path_factory.mktemp("chat-lm")
    tokenizer = train_tokenizer(corpus_documents(synthetic.corpus_text(0))[:400], vocab_size=320)
    tokenizer.chat_template = CHATML
    _random_llama(tokenizer, 7, max_positions=160).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
