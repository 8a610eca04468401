"""The allocation rules tried against the split gain, on the score matrices bench/split_gain.py saved.

Each rule maps a game (score matrix D, pair counts n) to values; the values are paid like a round pays
(negatives clipped, pool 1,000) and the parts' total at k is compared with k = 1, per seed:

    shapley     exact Shapley of the round's game (`clip`, what rounds pay by)
    wshapley    weighted Shapley (Kalai–Samet), weights n_i: Σ_T dividend(T) · n_i / n(T)
    standalone  n_i · max(v({i}) − v(∅), 0)
    push        each eval pair's gain of the pooled model shared ∝ n_i·|D[i, t]| among the owners on its side
    normpush    the same with each owner's |D| divided by its mean |D| (scale-free)
    votes       ∝ n_i among the owners on its side: engine/allocation.margin_share, what `margin_share` pays by
    pair        Shapley of the game whose players are the pairs (owner i = n_i identical players),
                Monte Carlo over orders of pairs (slow; not in the default list)

    .venv/bin/python bench/split_gain_attempts.py bench/results/split_gain.json [--rules shapley votes ...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from valuation.engine.allocation import margin_share  # noqa: E402
from valuation.engine.shapley import exact_shapley  # noqa: E402
from valuation.engine.utility import all_coalition_utilities, utility_from_margins  # noqa: E402

UTILITIES = ("preference_accuracy", "bt_loglik")
COMPOSITIONS = ("sum", "mean")


def _table(D, n, utility, composition, beta):
    return all_coalition_utilities(D, utility=utility, composition=composition, beta=beta, sizes=n, n_jobs=1)


def shapley(D, n, utility, composition, beta):
    return exact_shapley(_table(D, n, utility, composition, beta))


def wshapley(D, n, utility, composition, beta):
    d = _table(D, n, utility, composition, beta).copy()
    players = len(n)
    masks = np.arange(1 << players)
    for i in range(players):  # Möbius transform: the Harsanyi dividends
        has = masks[(masks >> i) & 1 == 1]
        d[has] -= d[has ^ (1 << i)]
    members = ((masks[:, None] >> np.arange(players)) & 1).astype(bool)
    weight = members @ n
    weight[0] = 1.0
    return (members * n[None, :] / weight[:, None] * d[:, None]).sum(axis=0)


def standalone(D, n, utility, composition, beta):
    empty = utility_from_margins(np.zeros((1, D.shape[1])), utility=utility, beta=beta)[0]
    return n * np.maximum(utility_from_margins(D, utility=utility, beta=beta) - empty, 0)


def _shared(D, n, utility, beta, weight):
    margin = n @ D / n.sum()
    gains = utility_from_margins(margin[:, None], utility=utility, beta=beta) - \
        utility_from_margins(np.zeros((1, 1)), utility=utility, beta=beta)[0]
    side = np.where(np.sign(D) == np.sign(margin)[None, :], weight, 0.0)
    total = side.sum(axis=0)
    return (np.divide(side, total, out=np.zeros_like(side), where=total > 0) * gains).mean(axis=1)


def push(D, n, utility, composition, beta):
    return _shared(D, n, utility, beta, n[:, None] * np.abs(D))


def normpush(D, n, utility, composition, beta):
    return _shared(D, n, utility, beta, n[:, None] * np.abs(D) / np.abs(D).mean(axis=1, keepdims=True))


def votes(D, n, utility, composition, beta):
    return margin_share(D, sizes=n, utility=utility, beta=beta)


def pair(D, n, utility, composition, beta, orders=200, seed=0):
    rng = np.random.default_rng(seed)
    counts = n.astype(int)
    labels = np.repeat(np.arange(len(n)), counts)
    per_pair = D / n[:, None] if composition == "sum" else D
    phi = np.zeros(len(n))
    for _ in range(orders):
        order = rng.permutation(labels)
        present = np.zeros((len(order) + 1, len(n)))
        present[np.arange(1, len(order) + 1), order] = 1
        present = np.cumsum(present, axis=0)
        margins = present @ per_pair
        if composition == "mean":
            margins /= np.maximum(present.sum(axis=1), 1)[:, None]
        np.add.at(phi, order, np.diff(utility_from_margins(margins, utility=utility, beta=beta)))
    return phi / orders


RULES = {f.__name__: f for f in (shapley, wshapley, standalone, push, normpush, votes, pair)}


def paid(values: np.ndarray) -> np.ndarray:
    positive = np.maximum(values, 0)
    return 1000 * positive / positive.sum() if positive.sum() > 0 else positive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("games", type=Path, help="a JSON written by bench/split_gain.py")
    parser.add_argument("--rules", nargs="+", default=[r for r in RULES if r != "pair"], choices=list(RULES))
    args = parser.parse_args()
    runs = json.loads(args.games.read_text())["games"]
    ks = sorted(int(k) for k in runs[0]["games"])[1:]
    print("| rule | utility | composition | " + " | ".join(f"gain k={k} mean [min, max]" for k in ks) + " | "
          + " | ".join(runs[0]["names"]) + " | fresh owner (k = 1) |")
    print("|---" * (4 + len(ks) + len(runs[0]["names"])) + "|")
    for rule in args.rules:
        for utility in UTILITIES:
            for composition in COMPOSITIONS:
                gains, honest, fresh = {}, [], []
                for run in runs:
                    by_k = {int(k): g for k, g in run["games"].items()}
                    pays = {k: paid(RULES[rule](np.array(g["D"]), np.array(g["sizes"]), utility, composition,
                                                run["beta"])) for k, g in by_k.items()}
                    n_honest = len(run["names"])
                    for k in sorted(by_k)[1:]:
                        gains.setdefault(k, []).append(pays[k][n_honest:].sum() / pays[1][n_honest:].sum())
                    honest.append(pays[1][:n_honest])
                    fresh.append(pays[1][n_honest:].sum())
                cells = [f"{np.mean(g):.3f} [{min(g):.3f}, {max(g):.3f}]" for g in gains.values()]
                owners = " | ".join(f"{x:.0f}" for x in np.mean(honest, axis=0))
                print(f"| {rule} | {utility} | {composition} | {' | '.join(cells)} | {owners} | {np.mean(fresh):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
