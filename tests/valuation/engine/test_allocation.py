"""The split-proof margin share: splitting an owner's data over payees earns nothing, the pool is
fully paid, and the rule is deterministic — on synthetic games whose answers are known."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from valuation.engine.allocation import CLIP, MARGIN_SHARE, margin_share, payout_values
from valuation.engine.payouts import POLICIES, split_pool
from valuation.engine.shapley import exact_shapley
from valuation.engine.utility import UTILITIES, all_coalition_utilities

COMBOS = [(u, c) for u in UTILITIES for c in ("sum", "mean")]
BETA = 0.1
POOL = Decimal("1000.00")


def honest_game(T: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four owners: two clean, one noisy, one adversarial, with per-eval-pair margin changes."""
    rng = np.random.default_rng(seed)
    quality = np.array([3.0, 2.0, 0.8, -2.5])
    D = quality[:, None] + rng.normal(0, 2.0, size=(4, T))
    return D, np.array([150.0, 150.0, 150.0, 150.0])


def with_split(D, sizes, row: np.ndarray, n: float, k: int, *, scale: float = 1.0):
    """The honest owners plus one fresh owner (margin row `row`, n pairs) cut into k equal parts whose
    models push like the whole per pair (`scale` = 1) or `scale` times as hard."""
    parts = np.repeat((row * (scale if k > 1 else 1.0))[None, :], k, axis=0)
    return np.vstack([D, parts]), np.concatenate([sizes, np.full(k, n / k)])


def parts_paid(policy: str, D, sizes, *, utility: str, composition: str, n_honest: int) -> Decimal:
    table = all_coalition_utilities(D, utility=utility, composition=composition, beta=BETA, sizes=sizes, n_jobs=1)
    values = payout_values(policy, shapley=exact_shapley(table), scores=D, sizes=sizes, utility=utility,
                           composition=composition, beta=BETA)
    return sum(split_pool(values, POOL, policy=policy).amounts[n_honest:], Decimal(0))


def fresh_row(T: int = 120, seed: int = 1) -> np.ndarray:
    return 2.5 + np.random.default_rng(seed).normal(0, 2.0, size=T)


@pytest.mark.parametrize("utility,composition", COMBOS)
def test_splitting_gains_under_shapley_but_not_under_the_margin_share(utility, composition) -> None:
    # Parts whose models push like the whole per pair: the strongest split an owner can hope for.
    D, sizes = honest_game()
    row = fresh_row()
    whole = {p: parts_paid(p, *with_split(D, sizes, row, 160, 1), utility=utility, composition=composition,
                           n_honest=4) for p in POLICIES}
    for k in (2, 3, 5):
        split = with_split(D, sizes, row, 160, k)
        assert parts_paid(MARGIN_SHARE, *split, utility=utility, composition=composition, n_honest=4) \
            <= whole[MARGIN_SHARE] + Decimal("0.01")  # a cent of rounding, no more
    # The same split of the same game does pay under Shapley: the test above is not vacuous.
    shapley5 = parts_paid(CLIP, *with_split(D, sizes, row, 160, 5), utility=utility, composition=composition,
                          n_honest=4)
    assert shapley5 > whole[CLIP] * Decimal("1.05")


@pytest.mark.parametrize("utility", UTILITIES)
def test_parts_like_the_whole_are_paid_exactly_what_the_whole_was(utility) -> None:
    D, sizes = honest_game()
    row = fresh_row()
    D1, sizes1 = with_split(D, sizes, row, 160, 1)
    phi1 = margin_share(D1, sizes=sizes1, utility=utility, beta=BETA)
    for k in (2, 4):
        Dk, sizesk = with_split(D, sizes, row, 160, k)
        phik = margin_share(Dk, sizes=sizesk, utility=utility, beta=BETA)
        assert phik[4:].sum() == pytest.approx(phi1[4], rel=1e-12)
        assert phik[:4] == pytest.approx(phi1[:4], rel=1e-12)  # nobody else is moved either


@pytest.mark.parametrize("utility", UTILITIES)
def test_weaker_parts_and_merged_owners_are_paid_what_the_whole_was(utility) -> None:
    # Fewer pairs train fewer steps, so a real part moves margins less than the whole did
    # (bench/split_gain.py: about 0.7× at k = 2, 0.2× at k = 5) but the same way: no loss, no gain.
    D, sizes = honest_game(seed=3)
    row = fresh_row(seed=4)
    D1, sizes1 = with_split(D, sizes, row, 160, 1)
    whole = margin_share(D1, sizes=sizes1, utility=utility, beta=BETA)
    for k in (2, 3, 5):
        Dk, sizesk = with_split(D, sizes, row, 160, k, scale=k ** -0.5)
        phi = margin_share(Dk, sizes=sizesk, utility=utility, beta=BETA)
        # Only the pooled margin's size moves (bt_loglik's gains), not who shares it.
        assert phi[4:].sum() / phi.sum() == pytest.approx(whole[4] / whole.sum(), rel=0.05)
    # Two honest owners with the same kind of data merging into one payee gain nothing either.
    merged = margin_share(np.vstack([D[:2], D[2:].mean(axis=0)]), sizes=np.array([150.0, 150.0, 300.0]),
                          utility="preference_accuracy", beta=BETA)
    apart = margin_share(np.vstack([D[:2], D[2:].mean(axis=0), D[2:].mean(axis=0)]),
                         sizes=np.array([150.0, 150.0, 150.0, 150.0]), utility="preference_accuracy", beta=BETA)
    assert merged[2] == pytest.approx(apart[2:].sum(), rel=1e-12)


@pytest.mark.parametrize("utility", UTILITIES)
def test_efficient_the_values_add_up_to_the_pooled_grand_coalition_gain(utility) -> None:
    D, sizes = honest_game(seed=5)
    sizes = np.array([150.0, 40.0, 150.0, 90.0])
    phi = margin_share(D, sizes=sizes, utility=utility, beta=BETA)
    table = all_coalition_utilities(D, utility=utility, composition="mean", beta=BETA, sizes=sizes, n_jobs=1)
    assert phi.sum() == pytest.approx(table[-1] - table[0], abs=1e-12)
    assert split_pool(phi, POOL, policy=MARGIN_SHARE).paid == POOL


@pytest.mark.parametrize("utility", UTILITIES)
def test_honest_order_clean_before_noisy_and_the_adversary_paid_nothing(utility) -> None:
    D, sizes = honest_game(seed=6)
    phi = margin_share(D, sizes=sizes, utility=utility, beta=BETA)
    assert phi[0] > phi[1] > phi[2] > 0 > phi[3]
    assert split_pool(phi, POOL, policy=MARGIN_SHARE).amounts[3] == Decimal("0.00")


def test_deterministic_and_owner_order_does_not_matter() -> None:
    D, sizes = honest_game(seed=7)
    sizes = np.array([150.0, 40.0, 150.0, 90.0])
    first = margin_share(D, sizes=sizes, utility="bt_loglik", beta=BETA)
    again = margin_share(D.copy(), sizes=sizes.copy(), utility="bt_loglik", beta=BETA)
    assert first.tobytes() == again.tobytes()
    order = np.array([2, 0, 3, 1])
    permuted = margin_share(D[order], sizes=sizes[order], utility="bt_loglik", beta=BETA)
    assert permuted == pytest.approx(first[order], abs=1e-15)


def test_pairs_nobody_moves_share_nothing_and_a_null_owner_gets_zero() -> None:
    D = np.array([[1.0, 0.0, -2.0], [0.0, 0.0, 0.0]])
    phi = margin_share(D, sizes=[10, 10], utility="preference_accuracy", beta=BETA)
    # pair 0 won (+½) by owner 0 alone; pair 1 unmoved (0); pair 2 lost (−½) by owner 0 alone
    assert phi.tolist() == [pytest.approx((0.5 + 0 - 0.5) / 3), 0.0]


@pytest.mark.parametrize("bad,message", [
    (dict(sizes=None), "needs the score matrix"),
    (dict(sizes=[10, 0]), "sizes must be positive"),
    (dict(sizes=[10]), "one per owner"),
    (dict(utility="reward"), "unknown utility"),
    (dict(composition="median"), "unknown composition"),
])
def test_bad_input_is_refused_with_a_reason(bad, message) -> None:
    kwargs = dict(shapley=[0.1, 0.2], scores=np.ones((2, 3)), sizes=[10, 20], utility="bt_loglik",
                  composition="sum", beta=BETA)
    with pytest.raises(ValueError, match=message):
        payout_values(MARGIN_SHARE, **{**kwargs, **bad})


def test_clip_pays_by_the_shapley_value_and_unknown_policies_are_refused() -> None:
    assert payout_values(CLIP, shapley=[0.1, -0.2]).tolist() == [0.1, -0.2]
    with pytest.raises(ValueError, match="unknown payout policy"):
        payout_values("proportional", shapley=[0.1])
    assert set(POLICIES) == {CLIP, MARGIN_SHARE}
