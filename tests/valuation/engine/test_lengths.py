"""engine/lengths.py predicts exactly what TRL's DPOTrainer trains on: compared with TRL's own prepared
dataset and collator on a tiny model, for pairs kept whole, cut, and dropped."""
from dataclasses import replace

import pytest

from valuation.engine import synthetic
from valuation.engine.data import Pair
from valuation.engine.dpo import TrainingConfig, build_trainer
from valuation.engine.lengths import PairLength, length_report, pair_length, trained_sequences

from .conftest import _random_llama

MAX_LENGTH = 96  # the tiny model's positions; the short pairs below have < 90 tokens


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from valuation.engine.base_model import corpus_documents, load_tokenizer, train_tokenizer

    path = tmp_path_factory.mktemp("lengths-lm") / "base"
    tokenizer = train_tokenizer(corpus_documents(synthetic.corpus_text(0))[:400], vocab_size=320)
    _random_llama(tokenizer, 0).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path, load_tokenizer(path)


def _pairs():
    short = synthetic.owner_pairs("clean_mix", 6, seed=1)
    words = " ".join(p.chosen for p in short)
    long_prompt = Pair(prompt=short[0].prompt + " " + words * 3, chosen=short[0].chosen, rejected=short[0].rejected)
    long_answer = Pair(prompt=short[1].prompt, chosen=short[1].chosen + " " + words, rejected=short[1].rejected)
    both_long = Pair(prompt=short[2].prompt, chosen=short[2].chosen + " " + words, rejected=words)
    return short[3:] + [long_prompt, long_answer, both_long, replace(long_prompt, chosen="yes")]


def _trl_sequences(trainer) -> list[tuple[list[int], list[int]]]:
    out = []
    for example in trainer.train_dataset:
        batch = trainer.data_collator([{k: example[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}])
        for row in range(2):
            keep = batch["attention_mask"][row].bool()
            out.append((batch["input_ids"][row][keep].tolist(), batch["completion_mask"][row][keep].tolist()))
    return out


@pytest.mark.parametrize("max_length", [MAX_LENGTH, 4096])  # 4096: longer than any pair, nothing is cut
def test_predicted_tokens_are_the_tokens_trl_trains_on(tiny_lm, tmp_path, max_length):
    path, tokenizer = tiny_lm
    pairs = _pairs()
    trainer = build_trainer(path, pairs, TrainingConfig(max_length=max_length), str(tmp_path))
    report = length_report(tokenizer, pairs, max_length)

    assert trained_sequences(tokenizer, pairs, max_length) == _trl_sequences(trainer)
    assert len(trainer.train_dataset) == report.n_usable
    if max_length == MAX_LENGTH:  # the fixture really exercises every case
        assert (report.n_dropped, report.n_truncated) == (2, 2)
        assert report.n_usable == len(pairs) - 2 and report.longest_prompt >= MAX_LENGTH
    else:
        assert (report.n_dropped, report.n_truncated, report.n_usable) == (0, 0, len(pairs))


def test_an_owner_whose_every_prompt_fills_max_length_leaves_trl_nothing(tiny_lm, tmp_path):
    path, tokenizer = tiny_lm
    pairs = [p for p in _pairs() if pair_length(tokenizer, p, MAX_LENGTH).dropped]
    assert len(pairs) == 2
    report = length_report(tokenizer, pairs, MAX_LENGTH)
    assert not report.trainable and report.n_dropped == 2
    trainer = build_trainer(path, pairs, TrainingConfig(max_length=MAX_LENGTH), str(tmp_path))
    assert len(trainer.train_dataset) == 0  # what made the whole round fail (num_samples=0)


def test_a_prompt_one_token_short_of_max_length_keeps_one_response_token():
    edge = PairLength(prompt=MAX_LENGTH - 1, chosen=5, rejected=3, max_length=MAX_LENGTH)
    assert not edge.dropped and edge.truncated
    assert PairLength(prompt=MAX_LENGTH, chosen=1, rejected=1, max_length=MAX_LENGTH).dropped
    assert not PairLength(prompt=MAX_LENGTH - 2, chosen=2, rejected=1, max_length=MAX_LENGTH).truncated
    # keep_end keeps the end of every sequence: the response survives, nothing is dropped
    assert not PairLength(prompt=500, chosen=2, rejected=2, max_length=MAX_LENGTH, truncation_mode="keep_end").dropped


def test_an_unknown_truncation_mode_is_refused(tiny_lm):
    with pytest.raises(ValueError, match="truncation_mode"):
        pair_length(tiny_lm[1], _pairs()[0], MAX_LENGTH, truncation_mode="middle")
