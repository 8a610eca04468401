"""SHED curation (engine/curation.py): k-means, proxies, proxy Shapley values, QOCS and QWCS."""
import numpy as np
import pytest

from valuation.engine.curation import (CurationConfig, cluster_probabilities, cluster_values, curate, kmeans,
                                       n_clusters, nearest_to_centroids, qocs, qwcs)
from valuation.engine.pair_values import PairValueConfig
from tests.valuation.engine.pair_data import planted


def blobs(sizes=(30, 20, 10), d=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.eye(d)[: len(sizes)] * 10
    x = np.concatenate([c + rng.normal(scale=0.3, size=(n, d)) for c, n in zip(centers, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return x, truth


def test_kmeans_recovers_separated_blobs_and_proxies_are_nearest_to_centres():
    x, truth = blobs()
    labels, centroids = kmeans(x, 3, rng=np.random.default_rng(0))
    # Same partition up to renaming: each found cluster is exactly one true blob.
    assert {frozenset(np.flatnonzero(labels == c)) for c in range(3)} == \
           {frozenset(np.flatnonzero(truth == c)) for c in range(3)}
    proxies = nearest_to_centroids(x, labels, centroids)
    for c, p in enumerate(proxies):
        members = np.flatnonzero(labels == c)
        assert labels[p] == c
        assert np.linalg.norm(x[p] - centroids[c]) == pytest.approx(np.linalg.norm(x[members] - centroids[c], axis=1).min())


def test_cluster_count_rule_and_limits():
    assert n_clusters(640, CurationConfig()) == 26  # ⌈√640⌉
    assert n_clusters(10**6, CurationConfig()) == 100
    assert n_clusters(50, CurationConfig(clusters=7)) == 7
    with pytest.raises(ValueError, match="12 clusters for 10 pairs"):
        n_clusters(10, CurationConfig(clusters=12))


def test_qocs_takes_whole_clusters_in_value_order_then_part_of_the_next():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 4 + [3] * 2)
    values = np.array([0.1, 0.5, -0.2, 0.3])  # order: 1, 3, 0, 2
    picked = qocs(labels, values, 7, rng=np.random.default_rng(0))
    assert len(picked) == 7
    assert set(np.flatnonzero(labels == 1)) | set(np.flatnonzero(labels == 3)) <= set(picked)
    assert np.sum(labels[picked] == 0) == 2 and not np.any(labels[picked] == 2)
    assert np.array_equal(qocs(labels, values, 5, rng=np.random.default_rng(1)),
                          np.sort(np.flatnonzero((labels == 1) | (labels == 3))))


def test_qwcs_at_tiny_tau_is_greedy_like_qocs():
    labels = np.repeat(np.arange(6), [8, 5, 7, 6, 4, 9])
    values = np.array([0.02, -0.01, 0.05, 0.03, 0.00, 0.04])
    for size in (3, 7, 16, 25, 39):
        greedy = qwcs(labels, values, size, tau=1e-6, rng=np.random.default_rng(size))
        ordered = qocs(labels, values, size, rng=np.random.default_rng(size))
        assert np.array_equal(np.bincount(labels[greedy], minlength=6), np.bincount(labels[ordered], minlength=6))


def test_qwcs_at_huge_tau_draws_clusters_uniformly():
    labels = np.repeat(np.arange(4), 400)
    values = np.array([1.0, 0.0, -5.0, 3.0])
    assert np.allclose(cluster_probabilities(values, 1e9), 0.25)
    counts = np.bincount(labels[qwcs(labels, values, 800, tau=1e9, rng=np.random.default_rng(0))], minlength=4)
    chi2 = ((counts - 200) ** 2 / 200).sum()
    assert chi2 < 16.27  # 99.9% quantile of χ²(3): no cluster is favoured
    biased = np.bincount(labels[qwcs(labels, values, 800, tau=0.5, rng=np.random.default_rng(0))], minlength=4)
    assert biased[3] > biased[0] > biased[1] > biased[2]  # a finite τ follows the values


def test_cluster_probabilities_are_a_softmax_of_standardised_values():
    values = np.array([0.0, 1.0, 2.0])
    z = (values - values.mean()) / values.std()
    expected = np.exp(z / 0.7) / np.exp(z / 0.7).sum()
    assert np.allclose(cluster_probabilities(values, 0.7), expected)
    assert np.allclose(cluster_probabilities(values * 1000, 0.7), expected)  # scale-free
    assert np.allclose(cluster_probabilities(np.zeros(3), 0.7), 1 / 3)
    with pytest.raises(ValueError, match="tau must be a positive number"):
        cluster_probabilities(values, 0.0)


@pytest.mark.parametrize("size", [0, 61, 2.5, True])
def test_curated_size_must_fit_the_pool(size):
    labels, values = np.zeros(60, dtype=int), np.array([0.1])
    with pytest.raises(ValueError, match=r"whole number of pairs in 1\.\.60"):
        curate(labels, values, size, method="qocs")


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown curation method 'best'"):
        curate(np.zeros(3, dtype=int), np.zeros(1), 2, method="best")


def test_cluster_values_add_up_and_rank_a_reversed_cluster_last():
    z, z_eval, flipped = planted(n=200, d=6, flip=0.25, seed=3, signal=2.0)
    result = cluster_values(z, z_eval, CurationConfig(clusters=8, seed=0, proxy_permutations=60),
                            utility=PairValueConfig())
    assert result.values.sum() == pytest.approx(result.gain, abs=1e-12)  # Shapley efficiency over the proxies
    assert result.sizes.sum() == 200 and len(result.proxies) == 8 and np.all(result.stderr >= 0)
    flipped_share = np.array([flipped[result.labels == c].mean() for c in range(8)])
    assert flipped_share[np.argmin(result.values)] > 0.5 > flipped_share[np.argmax(result.values)]
    same = cluster_values(z, z_eval, CurationConfig(clusters=8, seed=0, proxy_permutations=60))
    assert np.array_equal(same.labels, result.labels) and np.array_equal(same.values, result.values)
    picked = curate(result.labels, result.values, 50, method="qocs", seed=0)
    assert flipped[picked].mean() < flipped.mean()
