import numpy as np
import pytest

from valuation.engine.data import Pair
from valuation.engine.dpo import build_trainer
from valuation.engine.scoring import (
    ScoreResult,
    delta_matrix,
    load_policy,
    score_model,
    sequence_logps,
    tokenize_pair,
)

from .conftest import TEST_TRAINING_CONFIG


def test_delta_matrix_is_the_owner_log_ratio_margin():
    base = ScoreResult(chosen=np.array([-10.0, -20.0]), rejected=np.array([-12.0, -15.0]))
    owners = [
        ScoreResult(chosen=np.array([-9.0, -20.0]), rejected=np.array([-14.0, -15.0])),
        ScoreResult(chosen=np.array([-11.0, -25.0]), rejected=np.array([-12.0, -10.0])),
    ]
    D = delta_matrix(base, owners)
    np.testing.assert_array_equal(D, [[3.0, 0.0], [-1.0, -10.0]])
    assert D.dtype == np.float64
    assert delta_matrix(base, []).shape == (0, 2)
    with pytest.raises(ValueError, match="owner 0"):
        delta_matrix(base, [ScoreResult(chosen=np.zeros(3), rejected=np.zeros(3))])


def _trl_trainer(model_dir, pairs, tmp_path):
    return build_trainer(model_dir, pairs, TEST_TRAINING_CONFIG, str(tmp_path / "scratch"), eval_pairs=pairs)


def _trl_per_example(trainer) -> tuple[np.ndarray, np.ndarray]:
    """Per-example log-probs from TRL's own collator and fused forward."""
    dataset = trainer.eval_dataset
    chosen, rejected = [], []
    for start in range(0, len(dataset), 8):
        batch = trainer.data_collator([dataset[i] for i in range(start, min(start + 8, len(dataset)))])
        c, r = trainer.compute_ref_log_probs(trainer.model, batch)
        chosen.append(c.numpy())
        rejected.append(r.numpy())
    return np.concatenate(chosen), np.concatenate(rejected)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["base", "owner"])
def test_log_probs_match_trl_per_example_and_in_its_eval_metrics(which, base_model, clean_owner, small_eval_pairs, tmp_path):
    model_dir = base_model.path if which == "base" else clean_owner.path
    ours = score_model(model_dir, base_model.path, small_eval_pairs)
    trainer = _trl_trainer(model_dir, small_eval_pairs, tmp_path)
    trl_chosen, trl_rejected = _trl_per_example(trainer)
    np.testing.assert_allclose(ours.chosen, trl_chosen, atol=1e-3, rtol=0)
    np.testing.assert_allclose(ours.rejected, trl_rejected, atol=1e-3, rtol=0)
    metrics = trainer.evaluate()
    assert metrics["eval_logps/chosen"] == pytest.approx(ours.chosen.mean(), abs=1e-3)
    assert metrics["eval_logps/rejected"] == pytest.approx(ours.rejected.mean(), abs=1e-3)
    assert ours.chosen.max() < 0 and ours.rejected.max() < 0


@pytest.mark.slow
def test_batch_size_does_not_change_the_numbers(clean_owner, base_model, small_eval_pairs):
    from valuation.engine.base_model import load_tokenizer

    model, tokenizer = load_policy(clean_owner.path), load_tokenizer(base_model.path)
    reference = sequence_logps(model, tokenizer, small_eval_pairs, batch_size=1)
    for batch_size in (5, 32):
        chosen, rejected = sequence_logps(model, tokenizer, small_eval_pairs, batch_size=batch_size)
        np.testing.assert_allclose(chosen, reference[0], atol=1e-5, rtol=0)
        np.testing.assert_allclose(rejected, reference[1], atol=1e-5, rtol=0)
    assert reference[0].dtype == np.float64 and reference[0].shape == (len(small_eval_pairs),)
    assert not model.training


class _WidthRecorder:
    """A stand-in causal LM whose logits at a position depend only on that position's token, so any batching
    gives the same numbers exactly; it records each batch's padded width and the tokens it was given."""

    def __init__(self, vocab: int = 11):
        import torch

        self.table = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0))
        self.widths: list[int] = []
        self.tokens = 0
        self.training = False
        self.device = torch.device("cpu")

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def __call__(self, *, input_ids, attention_mask, use_cache):
        from types import SimpleNamespace

        self.widths.append(input_ids.shape[1])
        self.tokens += input_ids.numel()
        return SimpleNamespace(logits=self.table[input_ids])


def test_scoring_by_length_batches_similar_lengths_and_returns_the_eval_order():
    from types import SimpleNamespace

    from valuation.engine.scoring import sequences_logps

    lengths = [(3, 9), (12, 4), (5, 5), (10, 2), (7, 11), (2, 6)]  # (chosen, rejected) tokens per pair
    chosen = [([1 + i % 9] * c, [0] + [1] * (c - 1)) for i, (c, _) in enumerate(lengths)]
    rejected = [([2 + i % 8] * r, [0] + [1] * (r - 1)) for i, (_, r) in enumerate(lengths)]
    tokenizer = SimpleNamespace(pad_token_id=0, eos_token_id=0)
    by_input, by_length = _WidthRecorder(), _WidthRecorder()
    expected = sequences_logps(by_input, tokenizer, chosen, rejected, batch_size=4)
    got = sequences_logps(by_length, tokenizer, chosen, rejected, batch_size=4, order="length")
    np.testing.assert_array_equal(got[0], expected[0])  # each number back at its pair, chosen and rejected
    np.testing.assert_array_equal(got[1], expected[1])
    assert by_input.widths == [12, 7, 9, 11]  # chosen 3 12 5 10 | 7 2, then rejected 9 4 5 2 | 11 6
    assert by_length.widths == [12, 7, 4]  # all 12 longest first: 12 11 10 9 | 7 6 5 5 | 4 3 2 2
    assert (by_input.tokens, by_length.tokens) == (120, 92)  # through the model, for 76 real tokens
    with pytest.raises(ValueError, match="order must be one of input, length"):
        sequences_logps(by_input, tokenizer, chosen, rejected, order="random")
    with pytest.raises(ValueError, match="order must be one of input, length, got 'shortest'"):
        score_model("/nonexistent", "/nonexistent", [], order="shortest")  # refused before any model is read


@pytest.mark.slow
def test_scoring_by_length_agrees_with_eval_order_to_float_noise(clean_owner, base_model, small_eval_pairs):
    from valuation.engine.base_model import load_tokenizer

    model, tokenizer = load_policy(clean_owner.path), load_tokenizer(base_model.path)
    reference = sequence_logps(model, tokenizer, small_eval_pairs, batch_size=5)
    chosen, rejected = sequence_logps(model, tokenizer, small_eval_pairs, batch_size=5, order="length")
    np.testing.assert_allclose(chosen, reference[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(rejected, reference[1], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_model_directory_scores_with_its_own_tokenizer(clean_owner, base_model, small_eval_pairs):
    by_path = sequence_logps(clean_owner.path, None, small_eval_pairs[:4])
    by_score = score_model(clean_owner.path, base_model.path, small_eval_pairs[:4])
    np.testing.assert_allclose(by_path[0], by_score.chosen, atol=1e-9)


@pytest.mark.slow
def test_response_starts_where_prompt_and_full_text_diverge(base_model):
    from valuation.engine.base_model import load_tokenizer

    tokenizer = load_tokenizer(base_model.path)
    pair = Pair(prompt="Question: How do I oil the fan?\nAnswer: ", chosen="Sure.", rejected="No idea.<eos>")
    prompt_ids, chosen_ids, rejected_ids = tokenize_pair(tokenizer, pair)
    assert prompt_ids + chosen_ids == tokenizer(text=pair.prompt + "Sure.<eos>")["input_ids"]
    assert prompt_ids + rejected_ids == tokenizer(text=pair.prompt + "No idea.<eos>")["input_ids"]  # EOS not doubled
    assert tokenizer.decode(chosen_ids) == " Sure.<eos>"  # the prompt's trailing space merged into the response
    assert chosen_ids[-1] == rejected_ids[-1] == tokenizer.eos_token_id
    # Only response tokens count: a longer prompt leaves the response log-prob finite and negative.
    chosen, _ = sequence_logps(load_policy(base_model.path), tokenizer, [pair])
    assert -100 < chosen[0] < 0
