"""The structured estimator: analytic prior + control-variate sampling on score games.

Checked against exact Shapley values of small score games: it converges as the budget grows, its
raw estimate is unbiased (the mean over seeds sits within 3 standard errors of the truth), the
reported values are efficient, its intervals cover, and the prior alone is already close. Plus the
refusals and the memory promise (nothing n² × T, no n × n moments for large n).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from valuation.engine.sampling import Evaluator, misallocation
from valuation.engine.shapley import estimate_shapley, exact_shapley
from valuation.engine.structured import StructuredConfig, StructuredSampler
from valuation.engine.utility import coalition_utility_fn

UTILITIES = ("preference_accuracy", "bt_loglik")


def score_game(n: int, T: int, seed: int) -> np.ndarray:
    """Good, noisy and adversarial owners, heavy-tailed noise: a small cousin of bench/games.py."""
    rng = np.random.default_rng(seed)
    quality = np.linspace(2.0, -1.5, n)
    signal = 1.0 + 0.5 * rng.standard_t(4, size=T)
    return quality[:, None] * signal + 2.0 * rng.standard_t(3, size=(n, T))


def game(n=12, T=120, seed=0, utility="preference_accuracy", composition="sum"):
    D = score_game(n, T, seed)
    sizes = np.arange(1, n + 1) * 10.0 if composition == "mean" else None
    fn = coalition_utility_fn(D, utility=utility, composition=composition, beta=0.1, sizes=sizes)
    return fn, exact_shapley(fn.table())


def prior_only(fn, n, **config) -> np.ndarray:
    sampler = StructuredSampler(fn, n, seed=0, config=StructuredConfig(**config))
    sampler.start(Evaluator(fn, n, 2))
    return sampler.prior_values


@pytest.mark.parametrize("utility", UTILITIES)
@pytest.mark.parametrize("composition", ["sum", "mean"])
def test_converges_to_exact_as_the_budget_grows(utility, composition) -> None:
    fn, truth = game(utility=utility, composition=composition)
    errors = []
    for budget in (100, 1000, 20000):
        r = estimate_shapley(fn, 12, method="structured", budget=budget, seed=3, target=None)
        assert r.method == "structured" and r.n_evaluations <= budget
        errors.append(np.abs(r.values - truth).max())
    assert errors[-1] < errors[0]
    assert errors[-1] < 3e-3 * max(1.0, np.abs(truth).max())


@pytest.mark.parametrize("utility", UTILITIES)
def test_raw_estimate_is_unbiased_and_values_are_efficient(utility) -> None:
    fn, truth = game(n=6, T=60, seed=1, utility=utility)
    raws = []
    grand, empty = fn(np.array([[True] * 6, [False] * 6]))
    for seed in range(60):
        # Two exact terms per pair, so the prior is approximate and sampling has something to correct.
        sampler = StructuredSampler(fn, 6, seed=seed, config=StructuredConfig(big_owners=2))
        evaluate = Evaluator(fn, 6, 2 + 4 * 10)  # anchors + four antithetic pairs of 5 prefixes each
        sampler.start(evaluate)
        sampler.step(evaluate, 4 * sampler.min_batch, np.random.default_rng(seed))
        estimate = sampler.estimate()
        assert estimate.values.sum() == pytest.approx(grand - empty, abs=1e-12)  # efficiency
        raws.append(sampler.raw)
    mean = np.mean(raws, axis=0)
    standard_error = np.std(raws, axis=0, ddof=1) / np.sqrt(len(raws))
    assert np.all(np.abs(mean - truth) <= 3 * standard_error + 1e-12)


def test_size_quadrature_above_full_sizes_is_unbiased_and_reports_its_variance() -> None:
    # full_sizes=4 forces the size quadrature on a 16-owner game: nodes 1, 2, 4, 9, 15 (4 intervals),
    # two random sizes in each interval with room. (Accuracy at one position: the normal prior's mode.)
    fn, _ = game(n=16, T=80, seed=2)
    config = StructuredConfig(full_sizes=4, strata=4, all_positions=False)
    assert config.prior_nodes(16, "bt_loglik").tolist() == [1, 2, 4, 9, 15]
    assert config.prior_sizes(16, "bt_loglik") == 1 + 5 + 2 * 3
    exact_prior = prior_only(fn, 16, all_positions=False)
    draws, variances = [], []
    for seed in range(200):
        sampler = StructuredSampler(fn, 16, seed=seed, config=config)
        sampler.start(Evaluator(fn, 16, 2))
        draws.append(sampler.prior_values)
        variances.append(sampler.prior_variance)
        assert np.all(sampler.prior_variance >= 0)
    spread = np.std(draws, axis=0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(np.mean(draws, axis=0) - exact_prior) <= 4 * spread + 1e-12)
    # The reported variance is the realised squared error on average (summed over owners: a ratio near 1).
    ratio = np.mean(variances, axis=0).sum() / np.mean((np.array(draws) - exact_prior) ** 2, axis=0).sum()
    assert 0.7 < ratio < 1.4


@pytest.mark.parametrize("utility", UTILITIES)
def test_prior_alone_is_close_to_exact(utility) -> None:
    fn, truth = game(n=12, T=300, seed=4, utility=utility)
    prior = prior_only(fn, 12)
    assert misallocation(prior, truth) < 0.02
    assert np.corrcoef(prior, truth)[0, 1] > 0.99


def test_intervals_cover_the_truth() -> None:
    fn, truth = game(n=12, T=100, seed=5, utility="bt_loglik")
    covered = [np.mean((r.ci_low <= truth) & (truth <= r.ci_high)) for r in
               (estimate_shapley(fn, 12, method="structured", budget=500, seed=s, target=None) for s in range(80))]
    assert np.mean(covered) >= 0.9


def test_small_games_are_exact_from_the_prior() -> None:
    # 6 owners: all 5 others of every owner fit the prior exactly, so nothing is left to sample.
    fn, truth = game(n=6, T=50, seed=8)
    r = estimate_shapley(fn, 6, method="structured", budget=1000, seed=0)
    assert r.stopped_because == "exact" and r.values == pytest.approx(truth, abs=1e-12)
    assert np.all(r.stderr == 0) and r.n_evaluations == 2


def test_same_seed_same_result_and_stopping_rule() -> None:
    fn, truth = game(n=12, seed=6, utility="bt_loglik")
    first = estimate_shapley(fn, 12, method="structured", budget=20000, seed=11, target=0.01)
    again = estimate_shapley(fn, 12, method="structured", budget=20000, seed=11, target=0.01)
    assert np.array_equal(first.values, again.values) and np.array_equal(first.stderr, again.stderr)
    assert first.stopped_because == "target" and first.misallocation_bound <= 0.01
    assert misallocation(first.values, truth) <= 0.01


def test_refuses_a_black_box_utility() -> None:
    fn, _ = game()
    with pytest.raises(ValueError, match="structured.*cached scores"):
        estimate_shapley(lambda members: fn(members), 12, method="structured", budget=1000, seed=0)


def test_large_n_keeps_memory_linear() -> None:
    D = score_game(300, 40, 7)
    fn = coalition_utility_fn(D, utility="preference_accuracy", composition="sum", beta=0.1)
    sampler = StructuredSampler(fn, 300, seed=0)
    # No n × n moments; the largest arrays are (n, m, T) with m ≤ 8 exact terms per pair.
    assert sampler.moments.comoment is None and sampler.game.top.shape == (sampler.game.m + 1, 40)
    assert sampler.game.m <= 8
    r = estimate_shapley(fn, 300, method="structured", budget=20 * 299 + 2, seed=0, target=None)
    assert r.values.shape == (300,) and np.all(np.isfinite(r.stderr)) and r.n_evaluations <= 20 * 299 + 2
    grand, empty = fn(np.array([[True] * 300, [False] * 300]))
    assert r.values.sum() == pytest.approx(grand - empty, abs=1e-9)
    # good owners first, adversarial last (quality falls linearly with the index)
    assert r.values[:100].mean() > r.values[100:200].mean() > r.values[200:].mean()


@pytest.mark.parametrize("composition", ["sum", "mean"])
def test_chain_matches_the_batched_utility(composition) -> None:
    fn, _ = game(n=7, utility="bt_loglik", composition=composition)
    order = np.array([3, 0, 6, 1, 5, 2, 4])
    _, values = fn.chain(order)
    prefixes = np.zeros((8, 7), dtype=bool)
    for k in range(1, 8):
        prefixes[k, order[:k]] = True
    assert values == pytest.approx(fn(prefixes), abs=1e-12)
    with pytest.raises(ValueError, match="permutation"):
        fn.chain(np.array([0, 0, 1, 2, 3, 4, 5]))


@pytest.mark.parametrize("utility", UTILITIES)
@pytest.mark.parametrize("composition", ["sum", "mean"])
def test_taylor_terms_have_mean_zero_at_every_size(utility, composition) -> None:
    # Over every predecessor set P of every size, the linear, quadratic and cubic terms of the control
    # variate average to 0 (the exact finite-population moments, κ₃ included), and H averages to the
    # prior A_i(k): so E[c_i(P) | k] = A_i(k) whatever coefficients the sampler fits.
    n = 8
    fn, _ = game(n=n, T=40, seed=3, utility=utility, composition=composition)
    sampler = StructuredSampler(fn, n, seed=0, config=StructuredConfig(big_owners=2))
    (chunk,) = sampler.owner_chunks()
    prior = sampler.game.prior(chunk, np.arange(n))  # (k, owner)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        sums = np.zeros((n, 4))
        counts = np.zeros(n)
        for mask in range(1 << (n - 1)):
            before = [others[b] for b in range(n - 1) if mask >> b & 1]
            after = [j for j in others if j not in before]
            order = np.array(before + [i] + after)
            rank = np.empty(n, dtype=np.int64)
            rank[order] = np.arange(n)
            prefix, _ = fn.chain(order)
            sums[len(before)] += sampler.game.surrogate(chunk, rank, prefix)[i]
            counts[len(before)] += 1
        means = sums / counts[:, None]
        assert means[:, 0] == pytest.approx(prior[:, i], abs=1e-6)
        assert np.abs(means[:, 1:]).max() < 1e-6


@pytest.mark.parametrize("all_positions", [False, True])
def test_coefficients_come_from_earlier_orders_only(all_positions) -> None:
    # The first antithetic pair is corrected with the default coefficients (nothing earlier exists), not
    # with a fit that has seen it; later pairs move them, and the same seed refits the same. Every
    # position: the location terms (the twin has no coefficients).
    fn, _ = game(n=12, T=120, seed=1)
    config = StructuredConfig(all_positions=all_positions, twin_owners=0)
    sampler = StructuredSampler(fn, 12, seed=0, config=config)
    evaluate = Evaluator(fn, 12, 10**6)
    sampler.start(evaluate)
    sampler.step(evaluate, sampler.min_batch, np.random.default_rng(5))
    order = np.random.default_rng(5).permutation(12)
    if all_positions:
        parts = sampler._position_parts(Evaluator(fn, 12, 100), order)
    else:
        parts = [sampler._parts(Evaluator(fn, 12, 100), o) for o in (order, order[::-1])]
    first = sum(gap - terms @ sampler.defaults for gap, terms in parts) / 2
    assert sampler.moments.mean == pytest.approx(first, abs=1e-15)
    fitted = np.linalg.lstsq(np.concatenate([t for _, t in parts]), np.concatenate([g for g, _ in parts]), rcond=None)[0]
    assert not np.allclose(sampler.coefficients, sampler.defaults) and not np.allclose(fitted, sampler.defaults)
    runs = []
    for _ in range(2):
        again = StructuredSampler(fn, 12, seed=0, config=config)
        again_evaluate = Evaluator(fn, 12, 10**6)
        again.start(again_evaluate)
        again.step(again_evaluate, 20 * again.min_batch, np.random.default_rng(5))
        runs.append(again.coefficients.copy())
    assert np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize("utility", UTILITIES)
def test_smoothed_derivatives_are_the_derivatives(utility) -> None:
    # Each derivative is the finite difference of the one before (float64), the step at s = 0 has
    # none, and the float32 default agrees with float64 to its precision.
    from valuation.engine.smoothed import smoothed_derivatives, smoothed_utility

    rng = np.random.default_rng(0)
    z, s = 3.0 * rng.standard_normal(200), 0.2 + np.abs(rng.standard_normal(200))
    kw = dict(utility=utility, beta=0.1)
    exact = smoothed_derivatives(z, s, dtype=np.float64, **kw)
    assert exact[0] == pytest.approx(smoothed_utility(z, s, dtype=np.float64, **kw), abs=1e-15)
    h = 1e-5
    up, down = smoothed_derivatives(z + h, s, dtype=np.float64, **kw), smoothed_derivatives(z - h, s, dtype=np.float64, **kw)
    for order in (1, 2, 3):
        assert (up[order - 1] - down[order - 1]) / (2 * h) == pytest.approx(exact[order], rel=1e-5, abs=1e-9)
    single = smoothed_derivatives(z, s, **kw)
    assert single[0].dtype == np.float32
    for a, b in zip(single, exact):
        assert np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max())
    at_zero = smoothed_derivatives(np.array([-1.0, 0.0, 2.0]), np.zeros(3), dtype=np.float64, **kw)
    if utility == "preference_accuracy":
        assert at_zero[0].tolist() == [0.0, 0.5, 1.0] and not np.any(np.concatenate(at_zero[1:]))


@pytest.mark.parametrize("utility", UTILITIES)
def test_gain_terms_are_the_control_variate_parts(utility) -> None:
    # The one-pass kernel gives the pair means of H, H′·dev, H″/2·(dev² − s²), H‴/6·(dev³ − κ₃) built
    # from G and its derivatives at z + d and z (what `surrogate` used to compute term by term).
    from valuation.engine.smoothed import smoothed_derivatives, smoothed_gain_terms

    rng = np.random.default_rng(1)
    z, d, dev, third = (3.0 * rng.standard_normal((5, 300)) for _ in range(4))
    s = np.abs(rng.standard_normal((5, 300)))
    s[0, :10] = 0.0  # no spread: the step itself for accuracy
    kw = dict(utility=utility, beta=0.1, dtype=np.float64)
    h, first, second, cubic = (a - b for a, b in zip(smoothed_derivatives(z + d, s, **kw), smoothed_derivatives(z, s, **kw)))
    expected = np.stack([h.mean(axis=1), (first * dev).mean(axis=1), (0.5 * second * (dev**2 - s**2)).mean(axis=1),
                         (cubic / 6.0 * (dev**3 - third)).mean(axis=1)], axis=1)
    assert smoothed_gain_terms(z, d, s, dev, third, **kw) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    single = smoothed_gain_terms(z, d, s, dev, third, utility=utility, beta=0.1)
    assert single.dtype == np.float64 and np.abs(single - expected).max() <= 1e-5 * np.abs(expected).max()
