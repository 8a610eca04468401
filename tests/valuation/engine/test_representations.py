"""Pair representations: mean-pooled last hidden states of the base model, cached per pair."""
import numpy as np
import pytest

from valuation.engine import synthetic
from valuation.engine.base_model import load_base_model, load_tokenizer
from valuation.engine.representations import (RepresentationCache, RepresentationConfig, pair_key,
                                              pair_representations)
from valuation.engine.scoring import tokenize_pair


@pytest.fixture(scope="module")
def pairs():
    return synthetic.owner_pairs("clean_mix", 12, seed=40)


def _manual_mean(model_dir, pair, response: str):
    import torch

    tokenizer = load_tokenizer(model_dir)
    prompt_ids, chosen_ids, rejected_ids = tokenize_pair(tokenizer, pair)
    ids = prompt_ids + (chosen_ids if response == "chosen" else rejected_ids)
    with torch.no_grad():
        hidden = load_base_model(model_dir).base_model(input_ids=torch.tensor([ids])).last_hidden_state
    return hidden[0].mean(dim=0).numpy()


@pytest.mark.slow
def test_mean_pooled_last_hidden_state_of_prompt_and_response(base_model, pairs, tmp_path):
    reps = pair_representations(base_model.path, pairs, base_model_hash=base_model.model_hash,
                                cache_dir=tmp_path, config=RepresentationConfig(batch_size=5))
    assert reps.chosen.shape == (12, 128) and reps.computed == 12
    for i in (0, 7):  # batched with padding and sorted by length, yet the same as one unpadded sequence
        assert np.allclose(reps.chosen[i], _manual_mean(base_model.path, pairs[i], "chosen"), atol=1e-5)
        assert np.allclose(reps.rejected[i], _manual_mean(base_model.path, pairs[i], "rejected"), atol=1e-5)
    flipped = pair_representations(base_model.path, [p.flipped() for p in pairs], base_model_hash=base_model.model_hash,
                                   cache_dir=tmp_path)
    assert np.allclose(flipped.pairs, -reps.pairs, atol=1e-6)  # a reversed label negates the pair's representation


@pytest.mark.slow
def test_each_pair_is_embedded_once_per_base_model_and_config(base_model, pairs, tmp_path):
    calls = []
    first = pair_representations(base_model.path, pairs[:8], base_model_hash=base_model.model_hash, cache_dir=tmp_path,
                                 on_progress=lambda d, t: calls.append((d, t)))
    assert first.computed == 8 and calls[-1] == (8, 8)
    again = pair_representations(base_model.path, pairs[:8] + pairs[:8] + pairs[8:],
                                 base_model_hash=base_model.model_hash, cache_dir=tmp_path)
    assert again.computed == 4  # the 8 cached pairs and the duplicates are not recomputed
    assert np.array_equal(again.chosen[:8], first.chosen) and np.array_equal(again.chosen[8:16], first.chosen)
    cache = RepresentationCache(tmp_path, base_model_hash=base_model.model_hash, config=RepresentationConfig())
    found, _, _ = cache.lookup([pair_key(p) for p in pairs])
    assert len(found) == 12 and len(list(cache.dir.glob("shard-*"))) == 2
    other = pair_representations(base_model.path, pairs[:2], base_model_hash=base_model.model_hash, cache_dir=tmp_path,
                                 config=RepresentationConfig(max_length=16))
    assert other.computed == 2  # another truncation is another cache


def test_pair_key_is_the_exact_text():
    a = synthetic.owner_pairs("clean_helpful", 2, seed=41)
    assert pair_key(a[0]) == pair_key(type(a[0])(a[0].prompt, a[0].chosen, a[0].rejected))
    assert pair_key(a[0]) != pair_key(a[0].flipped()) != pair_key(a[1])
