"""On the real SmolLM2-135M-Instruct (its own ChatML template), conversational pairs tokenise exactly as TRL 1.16's
`_prepare_dataset` and their cached log-probs equal TRL's `logps/chosen` and `logps/rejected`."""
import numpy as np
import pytest

from valuation.engine.dpo import TrainingConfig, build_trainer
from valuation.engine.scoring import score_model, tokenize_pair

from .chat_fixtures import chat_pairs

pytestmark = pytest.mark.slow


def test_smollm2_chat_scoring_equals_trl_evaluate(smollm2_dir, tmp_path):
    from valuation.engine.base_model import load_tokenizer

    pairs = chat_pairs()  # 8 pairs: one eval batch of 8, so TRL's mean is the plain mean
    config = TrainingConfig(epochs=1, seed=0, batch_size=8, max_length=256)
    trainer = build_trainer(smollm2_dir, pairs, config, str(tmp_path / "scratch"), eval_pairs=pairs)
    tokenizer = load_tokenizer(smollm2_dir)
    for pair, row in zip(pairs, trainer.eval_dataset, strict=True):
        assert tokenize_pair(tokenizer, pair) == (row["prompt_ids"], row["chosen_ids"], row["rejected_ids"])
    assert tokenizer.decode(tokenize_pair(tokenizer, pairs[0])[1]) == "Yes, twice a year.<|im_end|>\n"
    ours = score_model(smollm2_dir, smollm2_dir, pairs, max_length=config.max_length)
    batch = trainer.data_collator([trainer.eval_dataset[i] for i in range(len(pairs))])
    trl_chosen, trl_rejected = trainer.compute_ref_log_probs(trainer.model, batch)  # TRL's own forward, per pair
    np.testing.assert_allclose(ours.chosen, trl_chosen.numpy(), atol=1e-3, rtol=0)
    np.testing.assert_allclose(ours.rejected, trl_rejected.numpy(), atol=1e-3, rtol=0)
    metrics = trainer.evaluate()
    assert metrics["eval_logps/chosen"] == pytest.approx(ours.chosen.mean(), abs=1e-3)
    assert metrics["eval_logps/rejected"] == pytest.approx(ours.rejected.mean(), abs=1e-3)
    assert np.all(ours.chosen < 0) and np.all(ours.rejected < 0)
