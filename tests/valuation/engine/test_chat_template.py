"""Conversational pairs go through the base model's chat template exactly as TRL 1.16 does it: token ids equal
`DPOTrainer._prepare_dataset`'s and its collator's, cached log-probs equal TRL's `logps/chosen`/`logps/rejected`."""
import dataclasses

import numpy as np
import pytest

from marketplace.parsing import flatten_messages
from valuation.engine.data import Pair, pairs_to_dataset, read_jsonl, write_jsonl
from valuation.engine.decoding import DecodingConfig, encode_prompts
from valuation.engine.dpo import TrainingConfig, build_trainer
from valuation.engine.hashing import pairs_hash
from valuation.engine.lengths import length_report, trained_sequences
from valuation.engine.scoring import score_model, tokenize_pair

from .chat_fixtures import assistant, chat_pairs, user

CONFIG = TrainingConfig(epochs=1, seed=0, batch_size=4)


def _tokenizer(path):
    from valuation.engine.base_model import load_tokenizer

    return load_tokenizer(path)


def _trainer(path, pairs, tmp_path, config=CONFIG):
    return build_trainer(path, pairs, config, str(tmp_path / "scratch"), eval_pairs=pairs)


def test_tokenisation_equals_trl_prepare_dataset_token_for_token(chat_lm, tmp_path):
    pairs = chat_pairs()
    trainer = _trainer(chat_lm, pairs, tmp_path)
    tokenizer = _tokenizer(chat_lm)
    assert len(trainer.eval_dataset) == len(pairs)
    for pair, row in zip(pairs, trainer.eval_dataset):
        assert tokenize_pair(tokenizer, pair) == (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"])
    prompt_ids, chosen_ids, _ = tokenize_pair(tokenizer, pairs[0])
    # The generation prompt ends the prompt; the turn closes with the template's EOS, none is appended.
    assert tokenizer.decode(prompt_ids).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(chosen_ids) == "Yes, twice a year.<eos>\n"


def test_cached_log_probs_equal_trl_evaluate(chat_lm, tmp_path):
    pairs = chat_pairs()  # 8 = 1 eval batch of 8, so TRL's mean is the plain mean
    ours = score_model(chat_lm, chat_lm, pairs)
    trainer = _trainer(chat_lm, pairs, tmp_path)
    batch = trainer.data_collator([trainer.eval_dataset[i] for i in range(len(pairs))])
    trl_chosen, trl_rejected = trainer.compute_ref_log_probs(trainer.model, batch)  # TRL's own forward, per pair
    np.testing.assert_allclose(ours.chosen, trl_chosen.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours.rejected, trl_rejected.numpy(), atol=1e-4, rtol=0)
    metrics = trainer.evaluate()
    assert metrics["eval_logps/chosen"] == pytest.approx(ours.chosen.mean(), abs=1e-3)
    assert metrics["eval_logps/rejected"] == pytest.approx(ours.rejected.mean(), abs=1e-3)
    assert np.all(ours.chosen < 0) and not np.allclose(ours.chosen, ours.rejected)


def test_keep_start_cut_and_dropped_prompts_match_trl_collator(chat_lm, tmp_path):
    long_prompt = Pair(prompt=user("Tell me everything about the red bike and the old fan. " * 2),
                       chosen=assistant("Fine."), rejected=assistant("No."))
    pairs = chat_pairs()[:3] + [long_prompt]
    tokenizer = _tokenizer(chat_lm)
    # Longer than every short prompt, shorter than their answers: they are cut, the long one is dropped.
    max_length = max(len(tokenize_pair(tokenizer, pair)[0]) for pair in pairs[:3]) + 2
    report = length_report(tokenizer, pairs, max_length)
    assert report.n_dropped == 1 and report.n_truncated == 3
    trainer = _trainer(chat_lm, pairs, tmp_path, dataclasses.replace(CONFIG, max_length=max_length))
    assert len(trainer.train_dataset) == 3  # TRL dropped the pair whose prompt fills max_length
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    ours = trained_sequences(tokenizer, pairs, max_length)
    chosen, rejected = ours[0::2], ours[1::2]
    for row, (ids, mask) in enumerate(chosen + rejected):
        n = int(batch["attention_mask"][row].sum())
        assert batch["input_ids"][row][:n].tolist() == ids
        assert batch["completion_mask"][row][:n].tolist() == mask


def test_generation_prompt_goes_through_the_template(chat_lm):
    tokenizer = _tokenizer(chat_lm)
    pair = chat_pairs()[0]
    encoded = encode_prompts(tokenizer, [pair.prompt, "plain text"], DecodingConfig(), None)
    assert encoded[0] == tokenize_pair(tokenizer, pair)[0]
    assert tokenizer.decode(encoded[0]).endswith("<|im_start|>assistant\n")
    assert encoded[1] == tokenizer("plain text")["input_ids"]


def test_conversational_pairs_reach_trl_as_message_columns(tmp_path):
    pairs = chat_pairs()[:2]
    row = pairs_to_dataset(pairs)[0]
    assert row["prompt"] == [{"role": "user", "content": "Oil the fan?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "Yes, twice a year."}]
    assert read_jsonl(write_jsonl(pairs, tmp_path / "p.jsonl")) == pairs
    mixed = pairs_to_dataset([pairs[0], Pair("a", "b", "c")])  # a pool of two owners' kinds: one kind, text
    assert mixed[0] == {"prompt": "user: Oil the fan?", "chosen": "assistant: Yes, twice a year.",
                        "rejected": "assistant: No."}
    assert pairs[0].flattened().prompt == flatten_messages([{"role": "user", "content": "Oil the fan?"}])
    with pytest.raises(ValueError, match="all text or all messages"):
        Pair(prompt="a", chosen=assistant("b"), rejected="c")


def test_text_pair_hashes_are_unchanged_and_differ_from_conversations():
    text = Pair(prompt="Q: sky? A:", chosen=" Blue.", rejected=" Green.")
    # The digest every round before conversational pairs existed recorded for this pair.
    assert pairs_hash([text]) == pairs_hash([{"prompt": "Q: sky? A:", "chosen": " Blue.", "rejected": " Green."}])
    assert pairs_hash([text]) == "dca46ecfbc4763352fac7f8b2e66a6716ee2fd834476d511ef4592a9d9eafa12"
    chat = Pair(prompt=user("Q: sky? A:"), chosen=assistant(" Blue."), rejected=assistant(" Green."))
    assert pairs_hash([chat]) != pairs_hash([text])


@pytest.mark.slow  # a real (if tiny) DPO run
def test_an_owner_model_trains_on_conversations_and_moves_their_margins(chat_lm, tmp_path):
    import json

    from valuation.engine.dpo import RECORD, train_owner_model

    pairs = chat_pairs()
    result = train_owner_model(chat_lm, pairs, tmp_path / "owner", dataclasses.replace(CONFIG, epochs=2))
    record = json.loads((result.path / RECORD).read_text())
    assert record["data_hash"] == pairs_hash(pairs)
    base, owner = score_model(chat_lm, chat_lm, pairs), score_model(result.path, chat_lm, pairs)
    assert (owner.margin - base.margin).mean() > 0  # DPO raised chosen over rejected on its own data
