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
among the owners whose model moved the margin the way it went, one vote per pair they brought:

    c[i, t] = n_i  if sign D[i, t] = sign M[t], else 0
    φ_i     = mean_t  g[t] · c[i, t] / Σ_j c[j, t]

* Split-proof: cutting an owner's pairs into parts whose models move each eval margin the same
  way as the whole did gives the parts Σ n_p = n votes exactly where the whole had n, so they
  share exactly what the whole did; merging gains nothing either. A part trained on fewer pairs
  moves margins less (fewer steps) but the same way, which is why votes and not the size of
  the move: with shares ∝ n_i·|D[i, t]| five parts got 0.28× of the whole, so merging five paid 3.6×
  (bench/split_gain_attempts.py, `push`, 5 seeds), and small honest owners got less per pair than large ones.
* Whatever the round's composition: under `sum` the composed model itself changes with the
  number of payees (k parts as strong as the whole are k task vectors), so a rule faithful to
  the `sum` model cannot be split-proof — attributing the `sum` margin instead of the pooled one
  let such parts gain up to 9% under bt_loglik in a synthetic game. The round's composition still decides its
  Shapley values, shown next to the payouts.
* Efficient: Σ_i φ_i = mean_t g[t] = v_mean(N) − v(∅) (a pair with M[t] ≠ 0 always has an owner
  on its side; M[t] = 0 gains nothing), so the clip rule pays the whole pool whenever anyone gains.
* Owners whose model pushes towards a lost pair (g < 0) share its loss; owners pushing against
  the result are neither credited nor blamed for it. An adversarial owner ends negative and is
  paid nothing.
* Deterministic and O(n·T): no sampling, any number of owners.

The price is that a pair's vote does not weigh how hard its model pushed: a noisy owner whose
model still moves most eval margins the right way is paid nearly as much per pair as a clean one
(bench/split_gain.py prints the honest owners' payouts), and pay grows with pairs that vote the
winning way, as under `mean` composition — the upload checks (near-duplicates, rate limits) are
what stand against padding.
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
    votes = np.broadcast_to(n_pairs[:, None], D.shape)
    with_result = np.where(np.sign(D) == np.sign(margin)[None, :], votes, 0.0)
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
