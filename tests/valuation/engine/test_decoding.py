"""Token-level arithmetic decoding: against transformers' own `generate`, against a cache-free reference,
and against the arithmetic computed by hand. Untrained tiny models (engine/conftest.py `random_lms`):
these are tests of the decoding mechanics, which do not depend on what the weights learned."""
import numpy as np
import pytest
import torch

from valuation.engine import synthetic
from valuation.engine.arithmetic import coalition_weights
from valuation.engine.base_model import load_base_model, torch_threads
from valuation.engine.decoding import DecodingConfig, batch_seed, composition_coefficients, decode
from valuation.engine.policies import PolicySet
from valuation.engine.scoring import load_policy

PROMPTS = [p.prompt for p in synthetic.eval_pairs(6, seed=3)] + ["Question: How do I oil it?\nAnswer:"]
SAMPLING = DecodingConfig(max_new_tokens=12, temperature=0.7, top_p=0.9, seed=11, batch_size=16)


def _hf_generate(model, tokenizer, prompts, config: DecodingConfig) -> list[list[int]]:
    """transformers' generate on the same left-padded batch, seeded as the decoder seeds batch 0."""
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(batch_seed(config.seed, 0))
    sample = {} if config.greedy else dict(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=0)
    with torch.inference_mode(), torch_threads():
        out = model.generate(**batch, max_new_tokens=config.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, **({"do_sample": False} | sample))
    rows = out[:, batch["input_ids"].shape[1]:].tolist()
    eos = tokenizer.eos_token_id
    return [row[:row.index(eos) + 1] if eos in row else row for row in rows]


def _weights(members: list[list[bool]], composition="sum", sizes=None) -> np.ndarray:
    return coalition_weights(np.array(members, dtype=bool), composition=composition, sizes=sizes)


@pytest.fixture(scope="module")
def full_set(random_lms):
    return PolicySet(random_lms["base"], random_lms["full"])


@pytest.fixture(scope="module")
def lora_set(random_lms):
    return PolicySet(random_lms["base"], random_lms["lora"])


@pytest.mark.parametrize("config", [SAMPLING, DecodingConfig(max_new_tokens=12, greedy=True)], ids=["sample", "greedy"])
@pytest.mark.parametrize("owner", [0, 2])
def test_a_single_owner_with_weight_one_decodes_exactly_like_that_models_own_generate(full_set, random_lms, owner,
                                                                                      config):
    members = [[i == owner for i in range(3)]]
    for composition in ("sum", "mean"):  # w = 1 either way
        ours = decode(full_set, _weights(members, composition, sizes=[10, 20, 30]), PROMPTS, config).token_ids[0]
        reference = _hf_generate(load_base_model(random_lms["full"][owner]), full_set.tokenizer, PROMPTS, config)
        assert ours == reference
    assert len({len(row) for row in ours}) > 1 or config.greedy  # rows ended at different steps (EOS handling)


def test_the_empty_coalition_decodes_exactly_like_the_base_models_generate(full_set, random_lms):
    ours = decode(full_set, np.zeros((1, 3)), PROMPTS, SAMPLING)
    assert ours.token_ids[0] == _hf_generate(load_base_model(random_lms["base"]), full_set.tokenizer, PROMPTS,
                                             SAMPLING)
    assert ours.n_tokens == sum(len(row) for row in ours.token_ids[0])
    assert ours.texts[0] == [full_set.tokenizer.decode(row, skip_special_tokens=True) for row in ours.token_ids[0]]


def test_a_lora_owner_on_the_shared_base_decodes_exactly_like_its_peft_model(lora_set, random_lms):
    ours = decode(lora_set, _weights([[False, True, False]]), PROMPTS, SAMPLING).token_ids[0]
    peft_model = load_policy(random_lms["lora"][1], random_lms["base"])
    assert ours == _hf_generate(peft_model, lora_set.tokenizer, PROMPTS, SAMPLING)
    base_alone = decode(lora_set, np.zeros((1, 3)), PROMPTS, SAMPLING).token_ids[0]
    assert base_alone == _hf_generate(load_base_model(random_lms["base"]), lora_set.tokenizer, PROMPTS, SAMPLING)
    assert base_alone != ours  # the adapter is really switched on for the owner and off for π₀


def test_lora_owners_share_one_copy_of_the_base_weights(full_set, lora_set):
    base_bytes = full_set.parameter_bytes() / 4  # π₀ + 3 full owners of one size
    assert lora_set.shares_base and not full_set.shares_base
    assert base_bytes < lora_set.parameter_bytes() < 1.5 * base_bytes  # one base + three small adapters


@pytest.mark.parametrize("which", ["full", "lora"])
@pytest.mark.parametrize("config", [SAMPLING, DecodingConfig(max_new_tokens=12, greedy=True)], ids=["sample", "greedy"])
def test_kv_cached_decoding_gives_the_tokens_of_the_cache_free_reference(full_set, lora_set, which, config):
    policies = full_set if which == "full" else lora_set
    members = [[True, True, False], [True, True, True], [False, False, True], [False, False, False]]
    weights = _weights(members)
    cached = decode(policies, weights, PROMPTS, config)
    assert cached.token_ids == decode(policies, weights, PROMPTS, config, use_cache=False).token_ids
    assert len({tuple(map(tuple, c)) for c in cached.token_ids}) == len(members)  # four different policies


def test_each_step_is_the_arithmetic_of_the_models_logits_computed_by_hand(full_set, random_lms):
    """Greedy tokens of {0, 1} under `sum` = argmax(l₀ + (l₁ − l₀) + (l₂ − l₀)) over plain, unpadded forwards."""
    models = [load_base_model(d) for d in [random_lms["base"], *random_lms["full"][:2]]]
    config = DecodingConfig(max_new_tokens=6, greedy=True)
    decoded = decode(full_set, _weights([[True, True, False]]), PROMPTS[:4], config).token_ids[0]
    for prompt, tokens in zip(PROMPTS[:4], decoded):
        ids = full_set.tokenizer(prompt)["input_ids"]
        for token in tokens:
            with torch.inference_mode():
                l0, l1, l2 = (m(input_ids=torch.tensor([ids])).logits[0, -1] for m in models)
            assert int(torch.argmax(l0 + (l1 - l0) + (l2 - l0))) == token
            ids.append(token)


def test_coefficients_put_the_base_model_where_the_weights_leave_it():
    c = composition_coefficients(_weights([[True, True, True], [True, False, False], [False, False, False]]))
    np.testing.assert_array_equal(c, [[-2, 1, 1, 1], [0, 1, 0, 0], [1, 0, 0, 0]])
    mean = composition_coefficients(_weights([[True, True, False]], "mean", sizes=[1, 3, 5]))
    np.testing.assert_allclose(mean, [[0.0, 0.25, 0.75, 0.0]])  # Σ w = 1: π₀ is never run


def test_left_padding_is_invisible_greedy_batches_equal_one_prompt_at_a_time(full_set):
    config = DecodingConfig(max_new_tokens=10, greedy=True)
    weights = _weights([[True, False, True]])
    together = decode(full_set, weights, PROMPTS, config).token_ids[0]
    alone = [decode(full_set, weights, [p], config).token_ids[0][0] for p in PROMPTS]
    assert together == alone
    lengths = {len(full_set.tokenizer(p)["input_ids"]) for p in PROMPTS}
    assert len(lengths) > 1  # the batch really was padded


def test_a_coalitions_samples_do_not_depend_on_what_was_decoded_with_it(full_set):
    members = [[True, False, False], [False, True, True], [True, True, True], [False, True, False]]
    weights = _weights(members)
    grouped = decode(full_set, weights, PROMPTS, DecodingConfig(max_new_tokens=12, seed=4, max_batch_rows=4096))
    one_by_one = decode(full_set, weights, PROMPTS, DecodingConfig(max_new_tokens=12, seed=4, max_batch_rows=1))
    assert grouped.token_ids == one_by_one.token_ids
    reseeded = decode(full_set, weights, PROMPTS, DecodingConfig(max_new_tokens=12, seed=5))
    assert reseeded.token_ids != grouped.token_ids


def test_common_random_numbers_the_same_policy_twice_gives_the_same_responses(full_set):
    """Two coalitions with the same π_S in one call draw the same noise per prompt."""
    weights = np.array([[1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.0, 0.0]])
    out = decode(full_set, weights, PROMPTS, SAMPLING).token_ids
    assert out[0] == out[2] and out[0] != out[1]


@pytest.mark.parametrize("field,value,message", [
    ("temperature", 0.0, "temperature"), ("top_p", 1.5, "top_p"), ("max_new_tokens", 0, "max_new_tokens"),
    ("seed", -1, "seed"), ("batch_size", True, "batch_size")])
def test_bad_decoding_options_are_refused_by_name(field, value, message):
    with pytest.raises(ValueError, match=message):
        DecodingConfig(**{field: value})


def test_prompts_longer_than_the_model_allows_are_refused_naming_the_prompt(full_set):
    long_prompt = "Question: " + "How do I clean the old bike? " * 30
    with pytest.raises(ValueError, match="prompt 1 has .* exceeds the model's 96 positions"):
        decode(full_set, np.zeros((1, 3)), [PROMPTS[0], long_prompt], DecodingConfig(max_prompt_tokens=500))
    with pytest.raises(ValueError, match="weights are for 2 owners, the policies for 3"):
        decode(full_set, np.zeros((1, 2)), PROMPTS, SAMPLING)
