"""Judges of the reward utility: built-in names, dotted paths (allow-listed), reward-model directories,
and refusal of any output that is not one finite number per response."""
import numpy as np
import pytest
import torch

from valuation.engine import synthetic
from valuation.engine.judges import CallableJudge, RewardModelJudge, load_judge, mean_score

PROMPTS = ["Question: How do I oil the old bike?\nAnswer:", "Question: How do I dry the red boat?\nAnswer:"]
RESPONSES = [" Sure! To oil your bike, put a few drops of oil on the moving parts.",
             " To dry it, leave it in the sun for an hour, then set it on fire."]


def test_the_demo_judges_by_short_name_and_by_dotted_path_score_the_two_objectives():
    helpful, harmless = load_judge("helpfulness"), load_judge("valuation.engine.synthetic.harmlessness_judge")
    assert helpful.spec == "valuation.engine.synthetic:helpfulness_judge"
    assert harmless.spec == "valuation.engine.synthetic:harmlessness_judge"
    np.testing.assert_array_equal(helpful(PROMPTS, RESPONSES), [1.0, 1.0])  # both state the asked task's fact
    np.testing.assert_array_equal(harmless(PROMPTS, RESPONSES), [1.0, 0.0])  # the second adds a harmful step
    assert mean_score(harmless, PROMPTS, RESPONSES) == 0.5


@pytest.mark.parametrize("spec,message", [
    ("os:system", "judge module 'os' is not allowed"),
    ("subprocess.run", "judge module 'subprocess' is not allowed"),
    ("valuation.engine.synthetic:no_such_judge", "cannot be imported"),
    ("valuation.engine.synthetic:TASKS", "is not callable"),
    ("not a path", "is not a dotted path"),
    ("/nonexistent/reward-model", "is not a Hugging Face model directory"),
    ("", "a judge must be named"),
])
def test_bad_judge_specs_are_refused_with_the_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        load_judge(spec)


def length_judge(prompts, responses):
    return [len(r) for r in responses]


def test_a_callable_in_an_allowed_module_or_anywhere_once_the_allow_list_is_lifted():
    spec = "tests.valuation.engine.test_judges:length_judge"
    with pytest.raises(ValueError, match="not allowed"):
        load_judge(spec)
    for allowed in (("tests.valuation",), None):
        judge = load_judge(spec, allowed_modules=allowed)
        assert judge.spec == spec and list(judge(PROMPTS, RESPONSES)) == [len(r) for r in RESPONSES]
    with pytest.raises(ValueError, match="not allowed"):  # a prefix is a whole package name, not a string prefix
        load_judge(spec, allowed_modules=("tests.valu",))


@pytest.mark.parametrize("output,message", [
    ([1.0], "returned 1 scores for 2 responses"),
    ([1.0, float("nan")], r"non-finite score \(nan\) for response 1"),
    (["good", "bad"], "must return a list of numbers"),
    (None, "must return a list of numbers"),
])
def test_a_judge_that_returns_anything_but_one_finite_number_per_response_is_refused(output, message):
    judge = CallableJudge(spec="tests:judge", fn=lambda prompts, responses: output)
    with pytest.raises(ValueError, match=message):
        judge(PROMPTS, RESPONSES)


def _reward_model_dir(tmp_path, num_labels: int, random_lms):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(random_lms["base"]))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path / f"rm{num_labels}"
    LlamaForSequenceClassification(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.mark.parametrize("num_labels", [1, 2])
def test_a_reward_model_directory_scores_prompt_response_pairs_with_its_logits(tmp_path, random_lms, num_labels):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = _reward_model_dir(tmp_path, num_labels, random_lms)
    judge = load_judge(str(path))
    assert isinstance(judge, RewardModelJudge)
    prompts, responses = PROMPTS * 20, RESPONSES * 20  # more than one batch of 32
    scores = judge(prompts, responses)
    tokenizer, model = AutoTokenizer.from_pretrained(str(path)), AutoModelForSequenceClassification.from_pretrained(str(path))
    with torch.inference_mode():  # one pair at a time, no padding at all
        logits = [model(**tokenizer(p, r, return_tensors="pt")).logits[0].double() for p, r in zip(prompts[:2], responses[:2])]
    expected = [float(l[0]) if num_labels == 1 else float(l[1] - l[0]) for l in logits]
    np.testing.assert_allclose(scores[:2], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores[::2], scores[0], rtol=1e-5)  # the same pair scores the same in any batch
    assert scores[0] != scores[1]


def test_a_reward_model_with_more_than_two_labels_is_refused(tmp_path, random_lms):
    judge = load_judge(str(_reward_model_dir(tmp_path, 3, random_lms)))
    with pytest.raises(ValueError, match="has 3 labels; a judge needs 1"):
        judge(PROMPTS, RESPONSES)


def test_the_demo_judges_tell_the_four_response_styles_apart():
    prompt, verb, obj = synthetic._block_prompts(synthetic.EVAL_BLOCKS[0], 1)[0]
    rng = np.random.default_rng(0)
    styles = [synthetic._response(t, verb, obj, rng) for t in
              (synthetic.HELPFUL, synthetic.EVASIVE, synthetic.RUDE, synthetic.DANGEROUS)]
    prompts = [prompt] * 4
    assert list(load_judge("helpfulness")(prompts, styles)) == [1.0, 0.0, 1.0, 1.0]
    assert list(load_judge("harmlessness")(prompts, styles)) == [1.0, 1.0, 0.0, 0.0]
