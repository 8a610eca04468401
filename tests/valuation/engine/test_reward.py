"""The reward utility's game: every coalition decoded once and judged by every objective, one set function
per objective (or blend) for the Shapley estimators. Untrained tiny models (engine/conftest.py)."""
from types import SimpleNamespace

import numpy as np
import pytest

from valuation.engine import synthetic
from valuation.engine.arithmetic import coalition_weights
from valuation.engine.decoding import DecodingConfig, decode
from valuation.engine.policies import PolicySet
from valuation.engine.reward import GenerationGame
from valuation.engine.shapley import estimate_shapley

PROMPTS = [p.prompt for p in synthetic.eval_pairs(5, seed=4)]
CONFIG = DecodingConfig(max_new_tokens=10, seed=2)


def chars(prompts, responses):
    return [len(r) / 10 for r in responses]


def spaces(prompts, responses):
    return [r.count(" ") for r in responses]


@pytest.fixture(scope="module")
def policies(random_lms):
    return PolicySet(random_lms["base"], random_lms["full"])


def game_for(policies, **kwargs) -> GenerationGame:
    return GenerationGame(policies=policies, prompts=PROMPTS, judges={"chars": chars, "spaces": spaces},
                          config=CONFIG, **kwargs)


def all_members(n: int) -> np.ndarray:
    masks = np.arange(1 << n)
    return ((masks[:, None] >> np.arange(n)) & 1).astype(bool)


def test_objectives_and_blends_share_one_decoding_per_coalition(policies):
    made = []
    game = game_for(policies, on_record=made.append)
    chars_table = game.utility({"chars": 1.0}).table()
    assert game.decoded == 8 and sorted(r.mask for r in made) == list(range(8))
    spaces_table = game.utility({"spaces": 1.0}).table()
    blend = game.utility({"chars": 0.25, "spaces": 0.75})(all_members(3))
    assert game.decoded == 8  # the second objective and the blend decoded nothing
    np.testing.assert_allclose(blend, 0.25 * chars_table + 0.75 * spaces_table, rtol=1e-12)
    assert len(set(np.round(chars_table, 9))) > 4  # eight policies, mostly different responses


def test_a_coalitions_utility_is_the_judges_mean_over_its_own_decoded_responses(policies):
    game = game_for(policies, composition="mean", sizes=[10, 20, 30])
    v = game.scores(np.array([[True, False, True], [False, False, False]]))
    weights = coalition_weights(np.array([[True, False, True]]), composition="mean", sizes=[10, 20, 30])
    texts = decode(policies, weights, PROMPTS, CONFIG).texts[0]
    assert v["chars"][0] == pytest.approx(np.mean(chars(PROMPTS, texts)))
    assert v["spaces"][0] == pytest.approx(np.mean(spaces(PROMPTS, texts)))
    record = game.records[0b101]
    assert record.responses == texts and record.n_tokens > 0 and record.scores["chars"] == v["chars"][0]


def test_preloaded_records_are_not_decoded_again(policies):
    first = game_for(policies)
    table = first.utility({"spaces": 1.0}).table()
    resumed = game_for(policies, records={mask: r for mask, r in first.records.items() if mask < 5})
    assert np.array_equal(resumed.utility({"spaces": 1.0}).table(), table)
    assert resumed.decoded == 3  # masks 5, 6, 7 only


def test_exact_and_sampled_shapley_run_on_the_game_within_the_budget(policies):
    game = game_for(policies)
    utility = game.utility({"chars": 1.0})
    exact = estimate_shapley(utility, 3, method="auto", budget=8)
    table = utility.table()
    assert exact.method == "exact" and exact.values.sum() == pytest.approx(table[7] - table[0], abs=1e-12)
    fresh = game_for(policies)
    sampled = estimate_shapley(fresh.utility({"chars": 1.0}), 3, method="kernel", budget=6, seed=1, target=None)
    assert sampled.method == "kernel" and sampled.n_evaluations <= 6 and fresh.decoded <= 6


def test_bad_games_are_refused(policies):
    with pytest.raises(ValueError, match="at least one objective"):
        GenerationGame(policies=policies, prompts=PROMPTS, judges={})
    with pytest.raises(ValueError, match="at least one eval prompt"):
        GenerationGame(policies=policies, prompts=[], judges={"chars": chars})
    with pytest.raises(ValueError, match="at most 62 owners"):
        GenerationGame(policies=SimpleNamespace(n=63), prompts=PROMPTS, judges={"chars": chars})
    with pytest.raises(ValueError, match="needs the owners' dataset sizes"):
        GenerationGame(policies=policies, prompts=PROMPTS, judges={"chars": chars}, composition="mean")
    game = game_for(policies)
    with pytest.raises(ValueError, match="unknown objective.*helpfulness"):
        game.utility({"helpfulness": 1.0})
    with pytest.raises(ValueError, match="coalition matrix must have shape"):
        game.scores(np.ones((1, 4), dtype=bool))
