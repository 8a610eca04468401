"""What each payout policy pays by: the Shapley value, or a split-proof margin share (issue 24).

`clip` pays by the exact (or estimated) Shapley value φ of the coalition game. Shapley is not
split-proof: one owner's fresh pairs uploaded as k payees of n/k pairs each become k players, and
the k parts together collect more than the whole would (bench/split_gain.py measures it). Two
reasons, both visible in that bench: under `sum` each part is a full task vector, so k parts push
the composed model k times as hard (the game itself changes); and under either composition more
players take a larger share of the synergies (each part is pivotal in orderings where the whole
owner was not).

`margin_share` pays by attribution over eval pairs instead of over coalitions. With
M[t] = Σ_i n_i·D[i, t] / Σ_i n_i the margin of all owners' data pooled (the `mean` composition's
grand coalition) on eval pair t and g[t] = u(M[t]) − u(0) that pair's utility gain (u the
round's utility on one pair: ½·sign for accuracy, log σ(β·) for bt_loglik), the gain is shared
by the owners who moved the margin the way it went, in proportion to how many pairs they
brought times how hard each of their pairs pushed:

    c[i, t] = n_i · |D[i, t]|  if sign D[i, t] = sign M[t], else 0
    φ_i     = mean_t  g[t] · c[i, t] / Σ_j c[j, t]

* Split-proof: cutting an owner's pairs into parts whose models push like the whole (per pair)
  leaves Σ_parts n_p·D_p = n·D, so M, g and the parts' total share are exactly the whole's;
  parts whose models push less (fewer steps on less data) share less.
* Whatever the round's composition: under `sum` the composed model itself changes with the
  number of payees (k parts as strong as the whole are k task vectors), so a rule faithful to
  the `sum` model cannot be split-proof — measured: attributing the `sum` margin instead of the
  pooled one let such parts gain up to 9% under bt_loglik (tests/valuation/engine/test_allocation.py).
  The round's composition still decides its Shapley values, shown next to the payouts.
* Efficient: Σ_i φ_i = mean_t g[t] = v_mean(N) − v(∅) (a pair with M[t] ≠ 0 always has an owner
  on its side; M[t] = 0 gains nothing), so the clip rule pays the whole pool whenever anyone gains.
* Owners pushing towards a lost pair (g < 0) share its loss; owners pushing against the result
  are neither credited nor blamed for it. An adversarial owner ends negative and is paid nothing.
* Deterministic and O(n·T): no sampling, any number of owners.

The price is quantity: like `mean` composition (weights n_i), pay grows with pairs whose model
pushes the same way, so padding with weak but same-direction pairs is paid; the upload checks
(near-duplicates, rate limits) and the per-pair push |D| are what stand against it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .arithmetic import check_composition, check_scores, check_sizes
from .utility import check_beta, check_utility, utility_from_margins

CLIP = "clip"  # the Shapley value, negatives clipped to zero (payouts.split_pool)
MARGIN_SHARE = "margin_share"  # the split-proof margin share above


def margin_share(scores: ArrayLike, *, sizes: ArrayLike, utility: str, beta: float) -> np.ndarray:
    """φ_i of the margin-share rule, shape (n,), summing to v_mean(N) − v(∅) (see the module docstring)."""
    D = check_scores(scores)
    check_utility(utility)
    beta = check_beta(beta)
    n_pairs = check_sizes(sizes, n=D.shape[0], composition="mean")  # pair counts are required here
    margin = n_pairs @ D / n_pairs.sum()
    gains = _pair_gains(margin, utility=utility, beta=beta)
    push = n_pairs[:, None] * np.abs(D)
    with_result = np.where(np.sign(D) == np.sign(margin)[None, :], push, 0.0)
    total = with_result.sum(axis=0)
    # total == 0 only where M[t] == 0 (then g[t] == 0 too): nothing to share on that pair.
    shares = np.divide(with_result, total, out=np.zeros_like(with_result), where=total > 0)
    return (shares * gains).mean(axis=1)


def _pair_gains(margin: np.ndarray, *, utility: str, beta: float) -> np.ndarray:
    """g[t] = u(M[t]) − u(0) for every eval pair, u the utility of one pair."""
    per_pair = utility_from_margins(margin[:, None], utility=utility, beta=beta)
    empty = utility_from_margins(np.zeros((1, 1)), utility=utility, beta=beta)[0]
    return per_pair - empty


def payout_values(policy: str, *, shapley: ArrayLike, scores: ArrayLike | None = None,
                  sizes: ArrayLike | None = None, utility: str | None = None, composition: str | None = None,
                  beta: float | None = None) -> np.ndarray:
    """The values `payouts.split_pool` splits the pool by under `policy` (`composition` is the round's,
    checked; the margin share does not depend on it)."""
    if composition is not None:
        check_composition(composition)
    if policy == CLIP:
        return np.asarray(shapley, dtype=np.float64)
    if policy == MARGIN_SHARE:
        if scores is None or sizes is None or utility is None or beta is None:
            raise ValueError("policy 'margin_share' needs the score matrix, pair counts, utility and beta")
        return margin_share(scores, sizes=sizes, utility=utility, beta=beta)
    raise ValueError(f"unknown payout policy {policy!r}; valid policies are {CLIP}, {MARGIN_SHARE}")
