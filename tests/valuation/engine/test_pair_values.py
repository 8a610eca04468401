"""TS-DShapley pair values (engine/pair_values.py) on small synthetic inputs."""
import itertools
import math

import numpy as np
import pytest

from valuation.engine.pair_classifier import ClassifierConfig, subset_utility
from valuation.engine.pair_values import (PairValueConfig, chain_values, draw_chains, pair_values,
                                          permutation_marginals)
from tests.valuation.engine.pair_data import planted


@pytest.mark.parametrize("n, s, chains, coverage", [(100, 16, 0, 1), (100, 16, 0, 3), (37, 10, 4, 1), (37, 10, 9, 1),
                                                    (5, 16, 0, 2)])
def test_chains_cover_every_pair_with_distinct_members(n, s, chains, coverage):
    config = PairValueConfig(chain_size=s, chains=chains, coverage=coverage)
    drawn = draw_chains(n, config, np.random.default_rng(0))
    per_pass = math.ceil(n / min(s, n))
    assert len(drawn) == (chains or coverage * per_pass)
    assert all(len(c) == min(s, n) and len(set(c.tolist())) == len(c) for c in drawn)
    counts = np.bincount(np.concatenate(drawn), minlength=n)
    assert counts.min() >= 1  # every pair is valued
    if not chains:
        assert counts.min() >= coverage  # automatic K: each pair in at least `coverage` chains


def test_too_few_chains_is_refused_with_the_minimum():
    with pytest.raises(ValueError, match="cannot cover 100 pairs; use chains >= 7"):
        draw_chains(100, PairValueConfig(chain_size=16, chains=6), np.random.default_rng(0))


def _setup(n=12, seed=0):
    z, z_eval, flipped = planted(n=n, d=4, flip=0.25, n_eval=150, seed=seed)
    return z, z_eval, flipped


def test_marginals_are_prefix_utility_differences_without_truncation():
    z, z_eval, _ = _setup()
    config = PairValueConfig(tolerance=0.0, patience=10**6)
    order = np.random.default_rng(3).permutation(len(z))
    full = subset_utility(z, z_eval, np.ones(len(z), dtype=bool))[0]
    marginals, fits = permutation_marginals(z, z_eval, order, full, 0.5, config)
    prefixes = np.arange(len(z) + 1)[:, None] > np.arange(len(z))[None, :]  # row j: the first j of `order`
    members = np.zeros_like(prefixes)
    members[:, order] = prefixes
    expected = np.diff(subset_utility(z, z_eval, members))
    assert np.allclose(marginals, expected, atol=1e-12)
    assert fits == len(z) - 1  # the empty and the whole chain are known already


def test_shapley_within_a_chain_sums_to_the_chain_utility_gain_even_when_truncated():
    z, z_eval, _ = _setup(n=40)
    config = PairValueConfig(tolerance=0.02, patience=2, permutations=12)
    chain = np.arange(40)
    values, marginals, gain, _ = chain_values(z, z_eval, chain, config, np.random.default_rng(0))
    full = subset_utility(z, z_eval, np.ones(40, dtype=bool))[0]
    assert gain == pytest.approx(full - 0.5)
    assert np.allclose(marginals.sum(axis=1), gain, atol=1e-12)  # every permutation, truncated or not
    assert values.sum() == pytest.approx(gain, abs=1e-12)
    assert (marginals == 0).any()  # truncation did cut some permutations short


def test_many_permutations_converge_to_exact_shapley_on_a_tiny_chain():
    z, z_eval, _ = _setup(n=5)
    masks = np.array(list(itertools.product([False, True], repeat=5)))
    utility = dict(zip(map(tuple, masks), subset_utility(z, z_eval, masks)))
    exact = np.zeros(5)
    for i in range(5):
        for mask, value in utility.items():
            if not mask[i]:
                with_i = tuple(True if j == i else m for j, m in enumerate(mask))
                k = sum(mask)
                exact[i] += math.factorial(k) * math.factorial(4 - k) / math.factorial(5) * (utility[with_i] - value)
    config = PairValueConfig(tolerance=0.0, patience=10**6, permutations=3000)
    values, marginals, _, _ = chain_values(z, z_eval, np.arange(5), config, np.random.default_rng(1))
    stderr = marginals.std(axis=0) / np.sqrt(len(marginals))
    assert np.all(np.abs(values - exact) < 4 * stderr + 1e-9), (values, exact)


def test_planted_reversals_get_the_lowest_values_and_errors_are_reported():
    z, z_eval, flipped = planted(n=150, d=8, flip=0.2, seed=2)
    result = pair_values(z, z_eval, PairValueConfig(chain_size=30, coverage=4, permutations=8, seed=5))
    assert result.seed == 5 and len(result.chains) == 4 * 5 and result.n_fits > 0
    assert result.n_chains.min() >= 4 and np.all(result.stderr > 0)
    lowest = np.argsort(result.values)[: flipped.sum()]
    assert flipped[lowest].mean() >= 0.9
    assert result.values[flipped].mean() < 0 < result.values[~flipped].mean()


def test_same_seed_same_values_and_a_drawn_seed_is_recorded():
    z, z_eval, _ = _setup(n=30)
    config = PairValueConfig(chain_size=10, coverage=2, permutations=3, seed=11)
    first, second = pair_values(z, z_eval, config), pair_values(z, z_eval, config)
    assert np.array_equal(first.values, second.values) and np.array_equal(first.stderr, second.stderr)
    drawn = pair_values(z, z_eval, PairValueConfig(chain_size=10, coverage=2, permutations=3))
    replay = pair_values(z, z_eval, PairValueConfig(chain_size=10, coverage=2, permutations=3, seed=drawn.seed))
    assert np.array_equal(drawn.values, replay.values)


def test_loglik_utility_also_ranks_the_planted_pairs_last():
    z, z_eval, flipped = planted(n=80, d=6, flip=0.2, seed=4)
    config = PairValueConfig(chain_size=20, coverage=3, permutations=6, seed=0,
                             classifier=ClassifierConfig(utility="loglik"))
    values = pair_values(z, z_eval, config).values
    assert flipped[np.argsort(values)[: flipped.sum()]].mean() >= 0.9


@pytest.mark.parametrize("kwargs, message", [({"chain_size": 0}, "chain_size"), ({"chains": -1}, "chains"),
                                             ({"tolerance": -0.1}, "tolerance")])
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PairValueConfig(**kwargs)


def test_eval_features_must_match():
    z, z_eval, _ = _setup()
    with pytest.raises(ValueError, match="eval features"):
        pair_values(z, z_eval[:, :2])
