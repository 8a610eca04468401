"""The assessment a round's data-quality stage runs (engine/data_quality.py)."""
import json

import numpy as np
import pytest

from valuation.engine.data_quality import (HARMFUL, REVERSED, DataQualityConfig, assess_pairs, config_from_dict,
                                           config_from_options, config_to_dict, reason_text)
from tests.valuation.engine.pair_data import planted

SMALL = {"chain_size": 30, "coverage": 4, "permutations": 6, "clusters": 6, "proxy_permutations": 40}


def test_options_map_onto_the_nested_config_and_survive_json():
    config = config_from_options({"chain_size": 32, "l2": 0.5, "tau": 2.0, "flag_z": 1.0}, seed=7)
    assert config.values.chain_size == 32 and config.values.classifier.l2 == 0.5
    assert config.curation.tau == 2.0 and config.flag_z == 1.0
    assert config.values.seed == 7 and config.curation.seed == 7
    assert config_from_dict(json.loads(json.dumps(config_to_dict(config)))) == config


@pytest.mark.parametrize("options, message", [
    ({"chain_sise": 3}, "unknown data-quality option.*chain_sise.*valid are.*chain_size"),
    ({"chain_size": 0}, "chain_size must be >= 1"),
    ({"tau": -1.0}, "tau must be a positive number"),
    ({"classifier_utility": "f1"}, "unknown classifier utility"),
    ({"flag_z": -1}, "flag_z must be >= 0"),
])
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        config_from_options(options, seed=0)


def test_assessment_flags_planted_reversals_and_says_why():
    z, z_eval, flipped = planted(n=150, d=8, flip=0.2, seed=1, signal=1.5)
    a = assess_pairs(z, z_eval, config_from_options(SMALL, seed=0))
    assert a.flagged.sum() >= 0.8 * flipped.sum()
    assert flipped[a.flagged].mean() >= 0.9  # what is flagged was planted
    planted_and_flagged = np.flatnonzero(a.flagged & flipped)
    assert np.mean([a.reasons[i] == REVERSED for i in planted_and_flagged]) >= 0.9  # most read as swapped labels
    assert all(r == "" for r, f in zip(a.reasons, a.flagged) if not f)
    assert a.full_utility > 0.9 and a.empty_utility == 0.5
    assert a.features.shape == (150, 8) and len(a.clusters.values) == 6


def test_a_clean_pool_flags_little():
    z, z_eval, _ = planted(n=120, d=8, flip=0.0, seed=2, signal=1.5)
    a = assess_pairs(z, z_eval, config_from_options(SMALL, seed=0))
    assert a.flagged.mean() < 0.05


def test_reason_texts_name_the_evidence():
    reversed_text = reason_text(REVERSED, value=-0.0123, stderr=0.002, n_chains=6, agreement=0.23)
    assert "swapped" in reversed_text and "23%" in reversed_text and "0.0123" in reversed_text
    assert "6 random subsets" in reversed_text
    harmful = reason_text(HARMFUL, value=-0.01, stderr=0.003, n_chains=5, agreement=0.8)
    assert "agrees" in harmful and "80%" in harmful and "adding it lowered" in harmful
    assert reason_text("", value=0.1, stderr=0.0, n_chains=5, agreement=0.9) == ""


def test_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="no pairs"):
        assess_pairs(np.zeros((0, 4)), np.ones((3, 4)), DataQualityConfig())
    with pytest.raises(ValueError, match="eval set has no pairs"):
        assess_pairs(np.ones((3, 4)), np.zeros((0, 4)), DataQualityConfig())
