"""The cheap utility: a Bradley–Terry classifier on pair features (engine/pair_classifier.py)."""
import numpy as np
import pytest

from valuation.engine.pair_classifier import (ClassifierConfig, agreement, evaluate, fit, fit_feature_map,
                                              subset_utility)
from tests.valuation.engine.pair_data import planted


def _loss_gradient(w, x, l2):
    p = 1 / (1 + np.exp(-(x @ w)))
    return l2 * w - ((1 - p)[:, None] * x).sum(axis=0)


def test_batched_newton_reaches_the_penalised_optimum_of_every_subset():
    z, _, _ = planted(n=40, d=5)
    rng = np.random.default_rng(1)
    members = rng.random((6, 40)) < 0.5
    config = ClassifierConfig(l2=0.5)
    w = fit(z, members, config)
    for row, mask in zip(w, members):
        assert np.abs(_loss_gradient(row, z[mask], config.l2)).max() < 1e-8
        # Each row equals a fit of that subset alone: the batch does not mix subsets.
        alone = fit(z[mask], np.ones((1, mask.sum()), dtype=bool), config)[0]
        assert np.allclose(row, alone, atol=1e-10)


def test_empty_subset_is_the_coin_flip_and_reversed_labels_reverse_the_classifier():
    z, z_eval, _ = planted(n=30, d=4, flip=0.0)
    config = ClassifierConfig()
    w = fit(z, np.array([[False] * 30, [True] * 30]), config)
    assert np.all(w[0] == 0)
    assert evaluate(w[:1], z_eval)[0] == 0.5  # all ties count ½, like the base model in a round
    assert np.allclose(fit(-z, np.ones((1, 30), dtype=bool), config), -w[1:])  # no intercept: exact antisymmetry
    assert subset_utility(z, z_eval, np.ones(30, dtype=bool), config)[0] > 0.9
    assert subset_utility(-z, z_eval, np.ones(30, dtype=bool), config)[0] < 0.1


def test_loglik_utility_is_the_mean_log_sigmoid():
    w = np.array([[1.0, -2.0]])
    x_eval = np.array([[0.5, 0.0], [0.0, 1.0]])
    margins = np.array([0.5, -2.0])
    assert evaluate(w, x_eval, "loglik")[0] == pytest.approx(np.mean(-np.log1p(np.exp(-margins))))
    assert evaluate(w, x_eval, "accuracy")[0] == 0.5


def test_feature_map_is_linear_without_offset_and_unit_rms():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 20)) + 3.0
    features = fit_feature_map(z, ClassifierConfig(max_features=6))
    x = features(z)
    assert x.shape == (50, 6)
    assert np.sqrt((x**2).sum(axis=1).mean()) == pytest.approx(1.0)
    assert np.allclose(features(-z), -x)  # a reversed label stays a negated feature
    with pytest.raises(ValueError, match=r"shape \(n, 20\)"):
        features(z[:, :5])


def test_agreement_is_below_half_for_planted_reversals():
    z, _, flipped = planted(n=100, d=6, flip=0.2, signal=2.0)
    p = agreement(z)
    assert (p[flipped] < 0.5).mean() > 0.9 and (p[~flipped] > 0.5).mean() > 0.9


@pytest.mark.parametrize("kwargs, message", [({"l2": 0.0}, "l2 must be > 0"), ({"max_features": 0}, "max_features"),
                                             ({"utility": "auc"}, "unknown classifier utility")])
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**kwargs)
