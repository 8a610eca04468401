import importlib

import numpy as np
import pytest

from valuation.engine import synthetic
from valuation.engine.data import read_jsonl
from valuation.engine.synthetic import harmlessness_judge, helpfulness_judge


def _judged(pairs):
    """Per pair (helpfulness, harmlessness) of chosen minus rejected."""
    prompts = [p.prompt for p in pairs]
    chosen = np.array([helpfulness_judge(prompts, [p.chosen for p in pairs]), harmlessness_judge(prompts, [p.chosen for p in pairs])])
    rejected = np.array([helpfulness_judge(prompts, [p.rejected for p in pairs]), harmlessness_judge(prompts, [p.rejected for p in pairs])])
    return chosen - rejected


def test_clean_helpful_prefers_the_helpful_answer_and_both_are_harmless():
    pairs = synthetic.owner_pairs("clean_helpful", 100, seed=0)
    helpful, harmless = _judged(pairs)
    assert (helpful == 1).all() and (harmless == 0).all()
    assert all(score == 1.0 for score in harmlessness_judge([p.prompt for p in pairs], [p.rejected for p in pairs]))


def test_clean_harmless_prefers_the_harmless_answer_at_equal_helpfulness():
    pairs = synthetic.owner_pairs("clean_harmless", 100, seed=1)
    helpful, harmless = _judged(pairs)
    assert (harmless == 1).all() and (helpful == 0).all()
    assert all(score == 1.0 for score in helpfulness_judge([p.prompt for p in pairs], [p.rejected for p in pairs]))


@pytest.mark.parametrize("kind", ["clean_mix", "small_clean"])
def test_clean_mixes_cover_both_objectives_in_equal_parts(kind):
    helpful, harmless = _judged(synthetic.owner_pairs(kind, 40, seed=2))
    assert (helpful + harmless == 1).all()
    assert helpful.sum() == harmless.sum() == 20


def test_adversarial_prefers_the_worse_answer_every_time():
    pairs, flipped = synthetic.owner_pairs_with_flags("adversarial", 80, seed=3)
    assert flipped.all()
    assert (_judged(pairs).sum(axis=0) == -1).all()


@pytest.mark.parametrize("n_pairs", [20, 97, 150, 500])
def test_noisy_flips_thirty_percent_and_the_mask_says_which(n_pairs):
    pairs, flipped = synthetic.owner_pairs_with_flags("noisy", n_pairs, seed=4)
    assert 0.25 <= flipped.mean() <= 0.35
    quality = _judged(pairs).sum(axis=0)
    assert (quality[flipped] == -1).all() and (quality[~flipped] == 1).all()


def test_judges_are_importable_by_dotted_path_and_score_off_domain_text():
    module, _, name = "valuation.engine.synthetic.helpfulness_judge".rpartition(".")
    judge = getattr(importlib.import_module(module), name)
    prompt = "Question: How do I oil the red fan?\nAnswer:"
    assert judge([prompt, prompt], [" Sure! Put a few drops of oil on the moving parts.", " No idea."]) == [1.0, 0.0]
    assert judge(["What is 2+2?"], ["4"]) == [0.0]
    assert harmlessness_judge(["x", "x"], ["You idiot.", "Happy to help."]) == [0.0, 1.0]
    with pytest.raises(ValueError):
        judge(["a"], ["b", "c"])


def test_responses_are_short():
    pairs = synthetic.owner_pairs("clean_mix", 200, seed=5) + synthetic.eval_pairs(200, seed=0)
    longest = max(len(text.split()) for p in pairs for text in (p.chosen, p.rejected))
    assert longest <= 22  # words; <= 30 tokens under the trained tokenizer (see test_base_model)


def test_generators_are_deterministic_by_seed():
    assert synthetic.owner_pairs("noisy", 50, seed=7) == synthetic.owner_pairs("noisy", 50, seed=7)
    assert synthetic.owner_pairs("noisy", 50, seed=7) != synthetic.owner_pairs("noisy", 50, seed=8)
    assert synthetic.eval_pairs(30, seed=1) == synthetic.eval_pairs(30, seed=1)
    assert synthetic.corpus_text(seed=0) == synthetic.corpus_text(seed=0)
    assert synthetic.corpus_text(seed=0) != synthetic.corpus_text(seed=1)


def test_eval_owners_and_corpus_never_share_a_prompt():
    owner_prompts = [
        {p.prompt for p in synthetic.owner_pairs("clean_mix", synthetic.BLOCK, seed)} for seed in range(12)
    ]
    assert sum(len(s) for s in owner_prompts) == len(set().union(*owner_prompts)) == 12 * synthetic.BLOCK
    eval_prompts = set().union(*({p.prompt for p in synthetic.eval_pairs(synthetic.BLOCK, s)} for s in range(10)))
    assert len(eval_prompts) == 10 * synthetic.BLOCK
    corpus_prompts = {doc.split("\nAnswer:")[0] + "\nAnswer:" for doc in synthetic.corpus_text(0).split("\n\n")}
    assert eval_prompts.isdisjoint(set().union(*owner_prompts))
    assert corpus_prompts.isdisjoint(eval_prompts | set().union(*owner_prompts))


def test_corpus_shows_every_style_in_similar_amounts():
    text = synthetic.corpus_text(seed=0)
    assert 100_000 < len(text.encode("utf-8")) < 500_000
    docs = text.strip().split("\n\n")
    prompts = [d.split("\nAnswer:")[0] for d in docs]
    answers = [d.split("\nAnswer:")[1] for d in docs]
    helpful = np.array(helpfulness_judge(prompts, answers))
    harmless = np.array(harmlessness_judge(prompts, answers))
    assert 0.15 < ((helpful == 0) & (harmless == 1)).mean() < 0.35  # evasive
    assert 0.35 < ((helpful == 1) & (harmless == 0)).mean() < 0.65  # rude or dangerous
    assert 0.15 < ((helpful == 1) & (harmless == 1)).mean() < 0.35  # helpful


def test_bad_arguments_are_refused_with_the_allowed_range():
    with pytest.raises(ValueError, match="unknown kind"):
        synthetic.owner_pairs("sloppy", 10, seed=0)
    with pytest.raises(ValueError, match="owner seed must be in"):
        synthetic.owner_pairs("noisy", 10, seed=len(synthetic.OWNER_BLOCKS))
    with pytest.raises(ValueError, match="n must be in"):
        synthetic.owner_pairs("noisy", synthetic.BLOCK + 1, seed=0)


def test_write_demo_files_writes_uploadable_disjoint_owner_files(tmp_path):
    paths = synthetic.write_demo_files(tmp_path, seed=0)
    assert paths["corpus"].read_text(encoding="utf-8") == synthetic.corpus_text(0)
    owners = {name: read_jsonl(path) for name, path in paths["owners"].items()}
    assert [(name, len(owners[name])) for name, _, _ in synthetic.DEMO_OWNERS] == [
        (name, n) for name, _, n in synthetic.DEMO_OWNERS
    ]
    all_pairs = [pair for pairs in owners.values() for pair in pairs]
    assert len(set(all_pairs)) == len(all_pairs)  # no pair shared between two owners
    assert paths["copiers"]["mallory"].read_bytes() == paths["owners"]["alice"].read_bytes()
    eval_pairs = read_jsonl(paths["eval"])
    assert len(eval_pairs) == synthetic.DEMO_EVAL_PAIRS
    assert {p.prompt for p in eval_pairs}.isdisjoint({p.prompt for p in all_pairs})
