import json
import time

import pytest
import torch

from valuation.engine import synthetic
from valuation.engine.base_model import (
    MARKER,
    RECORD_FILES,
    BaseModelConfig,
    _cached_build,
    build_base_model,
    load_base_model,
    load_tokenizer,
)
from valuation.engine.hashing import config_hash, directory_hash, sha256_file
from valuation.engine.scoring import sequence_logps

from .conftest import TEST_BASE_CONFIG

pytestmark = pytest.mark.slow


def test_directory_loads_with_the_auto_classes(base_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_model.path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base_model.path)
    assert model.config.model_type == "llama"
    assert 500 < model.config.vocab_size == len(tokenizer) <= TEST_BASE_CONFIG.vocab_size
    assert 0.8e6 < sum(p.numel() for p in model.parameters()) < 3e6
    ids = tokenizer("Question: How do I oil the fan?")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_training_loss_went_down_and_records_sit_next_to_the_model(base_model):
    metrics = base_model.metrics
    assert metrics["loss_first"] > 5.0  # ~log(vocab) at initialisation
    assert metrics["loss_last"] < 0.25 * metrics["loss_first"]
    assert metrics["steps"] == TEST_BASE_CONFIG.steps
    assert json.loads((base_model.path / "metrics.json").read_text()) == metrics
    saved_config = json.loads((base_model.path / "base_model_config.json").read_text())
    assert BaseModelConfig(**saved_config) == TEST_BASE_CONFIG
    assert base_model.model_hash == directory_hash(base_model.path, exclude=RECORD_FILES)


def test_the_model_learned_the_domain(base_model):
    """A well-formed answer is far likelier than the same words shuffled."""
    pair = synthetic.eval_pairs(1, seed=0)[0]
    words = pair.chosen.split()
    shuffled = " " + " ".join(reversed(words))
    tokenizer, model = load_tokenizer(base_model.path), load_base_model(base_model.path)
    from valuation.engine.data import Pair

    chosen, rejected = sequence_logps(model, tokenizer, [Pair(pair.prompt, pair.chosen, shuffled)])
    assert chosen[0] > rejected[0] + 20


def test_demo_responses_fit_in_thirty_tokens(base_model):
    tokenizer = load_tokenizer(base_model.path)
    pairs = synthetic.owner_pairs("clean_mix", 300, seed=9) + synthetic.eval_pairs(200, seed=0)
    lengths = [len(tokenizer(text=text)["input_ids"]) for p in pairs for text in (p.chosen, p.rejected)]
    assert max(lengths) <= 31  # 30 response tokens + <bos>


def test_a_finished_build_is_returned_without_training(base_model, corpus_file):
    started = time.perf_counter()
    again = build_base_model(corpus_file, base_model.path, seed=0, config=TEST_BASE_CONFIG)
    assert time.perf_counter() - started < 2.0
    assert again.cached and again.model_hash == base_model.model_hash and again.metrics == base_model.metrics


def test_cache_key_covers_corpus_config_and_seed(base_model, corpus_file):
    expected = {"corpus_hash": sha256_file(corpus_file), "config_hash": config_hash(TEST_BASE_CONFIG), "seed": 0}
    assert _cached_build(base_model.path, expected) is not None
    assert _cached_build(base_model.path, {**expected, "seed": 1}) is None
    assert _cached_build(base_model.path, {**expected, "config_hash": config_hash(BaseModelConfig())}) is None
    assert _cached_build(base_model.path, {**expected, "corpus_hash": "0" * 64}) is None


def test_a_directory_without_marker_or_with_altered_files_is_not_trusted(base_model, corpus_file, tmp_path):
    import shutil

    expected = json.loads((base_model.path / MARKER).read_text())
    expected.pop("model_hash")
    copy = tmp_path / "copy"
    shutil.copytree(base_model.path, copy)
    assert _cached_build(copy, expected) is not None
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    assert _cached_build(copy, expected) is None
    (copy / MARKER).unlink()
    assert _cached_build(copy, expected) is None


def test_build_is_deterministic_given_the_seed(corpus_file, tmp_path):
    tiny = BaseModelConfig(steps=3, hidden_size=32, intermediate_size=64, num_layers=1)
    first = build_base_model(corpus_file, tmp_path / "a", seed=5, config=tiny)
    second = build_base_model(corpus_file, tmp_path / "b", seed=5, config=tiny)
    other = build_base_model(corpus_file, tmp_path / "c", seed=6, config=tiny)
    assert first.model_hash == second.model_hash != other.model_hash
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temp dirs left behind


def test_an_unusable_corpus_is_refused_with_a_reason(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(ValueError, match="holds no text"):
        build_base_model(empty, tmp_path / "out", config=BaseModelConfig(steps=1))
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("Question: hi?\nAnswer: hello.")
    with pytest.raises(ValueError, match="needs more than seq_len"):
        build_base_model(tiny, tmp_path / "out", config=BaseModelConfig(steps=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt", "tiny.txt"]  # nothing half-written
