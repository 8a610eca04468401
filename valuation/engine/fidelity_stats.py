"""The fidelity report: arithmetic vs. trained coalition utilities, and what the gap does to payouts.

For each utility u ∈ {preference_accuracy, bt_loglik}, composition c ∈ {sum, mean} and
trained mode m ∈ {sequential, pooled}, over the checked coalitions S:

    v_arith(S) = u(Σ_{i∈S} w_i^c(S)·D[i])     (the round's numbers, `utility.ScoreUtility`)
    v_trained(S) = u(M_S^m)                    (margins of the model trained for S)

and the report gives Pearson r, Spearman ρ (average ranks for ties), the mean absolute
error, the same two correlations over coalitions of two or more owners (∅ and the
singletons agree by construction), and the Shapley values of both games next to each
other with their rank correlation and the largest difference in pool share under the
`clip` payout policy.

Shapley values of the trained game are exact when every coalition was trained
(`shapley.exact_shapley` of the trained table). From a size-stratified sample they are
φ_arith + the Shapley value of the residual r(S) = v_trained(S) − v_arith(S), with the
stratified form φ_i(r) = (1/n)·[Σ_{k=1..n} mean_{|S|=k, S∋i} r(S) − Σ_{k=0..n−1} mean_{|S|=k, S∌i} r(S)]
estimated from the sampled coalitions (a missing stratum contributes 0, i.e. the
arithmetic is trusted there). With every coalition this identity is exact.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from .fidelity import MATCHING_MODE, TrainedCoalitions, members_of
from .payouts import split_pool
from .shapley import exact_shapley
from .utility import UTILITIES, coalition_utility_fn, utility_from_margins

COMPOSITIONS = ("sum", "mean")


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None  # JSON has no NaN: a constant vector has no correlation


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..k with ties sharing their average rank (what Spearman's ρ needs)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return ranks


def pearson(x, y) -> float | None:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return _finite(float(dx @ dy) / denominator) if denominator > 0 else None


def spearman(x, y) -> float | None:
    return pearson(average_ranks(x), average_ranks(y)) if len(x) >= 3 else None


def residual_shapley(residual: dict[int, float], n: int) -> np.ndarray:
    """Shapley value of a game known on some coalitions, by the size-stratified identity above."""
    phi = np.zeros(n, dtype=np.float64)
    for i in range(n):
        for k in range(n + 1):
            inside = [r for mask, r in residual.items() if mask.bit_count() == k and mask >> i & 1]
            outside = [r for mask, r in residual.items() if mask.bit_count() == k and not mask >> i & 1]
            if inside and k >= 1:
                phi[i] += np.mean(inside) / n
            if outside and k <= n - 1:
                phi[i] -= np.mean(outside) / n
    return phi


def clip_shares(values: np.ndarray) -> np.ndarray:
    """Pool shares under the payout policy (`payouts.split_pool`, clip): max(φ, 0) / Σ max(φ, 0)."""
    return np.asarray(split_pool([float(x) for x in values], Decimal(1)).shares, dtype=np.float64)


def _game_shapley(n: int, arith_table: np.ndarray, trained: dict[int, float]) -> tuple[np.ndarray, np.ndarray, bool]:
    phi_arith = exact_shapley(arith_table)
    if len(trained) == 1 << n:
        table = np.array([trained[mask] for mask in range(1 << n)], dtype=np.float64)
        return phi_arith, exact_shapley(table), True
    residual = {mask: value - arith_table[mask] for mask, value in trained.items()}
    return phi_arith, phi_arith + residual_shapley(residual, n), False


def _row(utility: str, composition: str, mode: str, masks: list[int], arith: np.ndarray, trained: np.ndarray,
         phi: tuple[np.ndarray, np.ndarray, bool], names: list[str]) -> tuple[dict, dict]:
    multi = np.array([mask.bit_count() >= 2 for mask in masks])
    phi_arith, phi_trained, exact = phi
    share_arith, share_trained = clip_shares(phi_arith), clip_shares(phi_trained)
    gap = np.abs(share_trained - share_arith)
    worst = int(np.argmax(gap))
    row = {"utility": utility, "composition": composition, "mode": mode, "matching": MATCHING_MODE[composition] == mode,
           "n": len(masks), "pearson": pearson(arith, trained), "spearman": spearman(arith, trained),
           "mae": float(np.mean(np.abs(trained - arith))), "n_multi": int(multi.sum()),
           "pearson_multi": pearson(arith[multi], trained[multi]),
           "spearman_multi": spearman(arith[multi], trained[multi]),
           "shapley_spearman": spearman(phi_arith, phi_trained), "shapley_exact": exact,
           "max_payout_diff": float(gap[worst]), "max_payout_diff_owner": names[worst]}
    shapley = {"utility": utility, "composition": composition, "mode": mode, "exact": exact, "owners": list(names),
               "arithmetic": [float(x) for x in phi_arith], "trained": [float(x) for x in phi_trained],
               "arithmetic_shares": [float(x) for x in share_arith],
               "trained_shares": [float(x) for x in share_trained]}
    return row, shapley


def compare(D: np.ndarray, sizes: np.ndarray, names: list[str], *, beta: float, trained: TrainedCoalitions) -> dict:
    """The report as JSON-ready lists: coalitions, correlations (one row per utility × composition × mode),
    shapley (both value vectors per row)."""
    n, masks, modes = D.shape[0], list(trained.masks), list(trained.margins)
    members = np.array([[bool(mask >> i & 1) for i in range(n)] for mask in masks], dtype=bool)
    coalitions = [{"mask": mask, "size": mask.bit_count(), "members": [names[i] for i in members_of(mask)],
                   "arithmetic": {}, "trained": {}, "models": {mode: trained.models[mode][mask] for mode in modes}}
                  for mask in masks]
    correlations, shapley = [], []
    for utility in UTILITIES:
        trained_v = {mode: utility_from_margins(np.stack([trained.margins[mode][m] for m in masks]),
                                                utility=utility, beta=beta) for mode in modes}
        for mode in modes:
            for entry, value in zip(coalitions, trained_v[mode]):
                entry["trained"].setdefault(mode, {})[utility] = float(value)
        for composition in COMPOSITIONS:
            fn = coalition_utility_fn(D, utility=utility, composition=composition, beta=beta, sizes=sizes)
            arith, table = fn(members), fn.table()
            for entry, value in zip(coalitions, arith):
                entry["arithmetic"].setdefault(composition, {})[utility] = float(value)
            for mode in modes:
                phi = _game_shapley(n, table, dict(zip(masks, trained_v[mode].tolist())))
                row, values = _row(utility, composition, mode, masks, arith, trained_v[mode], phi, names)
                correlations.append(row)
                shapley.append(values)
    return {"coalitions": coalitions, "correlations": correlations, "shapley": shapley,
            "exhaustive": len(masks) == 1 << n}


def headline(report: dict, *, utility: str, composition: str) -> dict:
    """The row an admin reads first: the round's utility and composition against the mode it approximates
    (the other mode when only that one was trained)."""
    rows = [r for r in report["correlations"] if r["utility"] == utility and r["composition"] == composition]
    rows.sort(key=lambda r: not r["matching"])
    return dict(rows[0]) if rows else {}
