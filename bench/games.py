"""Benchmark games: a realistic synthetic DPO score matrix and the set functions built on it.

Until the real owner models are scored, `realistic_score_matrix(n, T, seed)` stands in
for the round's cached (n × T) matrix D[i, t] = δ_i(x_t, y_w) − δ_i(x_t, y_l) (docs/design.md
§2). It mimics what DPO margin deltas look like:

  * a shared "true preference" signal u_t > 0 on most eval pairs (some pairs are
    mislabelled or ambiguous: u_t < 0), heavy-tailed (Student-t, ν = 4);
  * a per-pair length factor L_t (log-normal): log-prob differences scale with the
    number of response tokens;
  * topics: each pair has one of 5 topics and each owner covers some topics well,
    so good owners are partly complementary rather than interchangeable;
  * owner kinds, shuffled: good (α > 0, specialised), noisy (small α, large noise),
    adversarial (α < 0: flipped labels), and duplicates — exact copies and
    near-copies (copy + 10% noise) of other owners, the redundancy that makes
    Shapley values split credit;
  * owner noise is Student-t (ν = 3): an owner's model is sometimes confidently wrong.

Margins are in nats at a scale where β = 0.1 gives single-owner β·D of order 1.
`load_scores(path)` reads a real (n × T) matrix saved by the round's scoring stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOPICS = 5
BETA = 0.1  # DPO temperature used with these matrices


def realistic_score_matrix(n: int, T: int, seed: int) -> np.ndarray:
    """An (n, T) float64 matrix of synthetic DPO margin deltas (see module docstring)."""
    rng = np.random.default_rng(seed)
    signal = 1.0 + 0.8 * rng.standard_t(4, size=T)  # true preference strength, mostly > 0
    length = rng.lognormal(mean=0.0, sigma=0.4, size=T)
    topic = rng.integers(0, TOPICS, size=T)
    kinds = _owner_kinds(n, rng)
    D = np.empty((n, T))
    originals = [i for i, kind in enumerate(kinds) if not kind.startswith("dup")]
    for i, kind in enumerate(kinds):
        if kind.startswith("dup"):
            continue
        alpha, noise = {"good": (rng.uniform(2.0, 5.0), 2.0), "noisy": (rng.uniform(0.2, 1.0), 4.0),
                        "adversarial": (-rng.uniform(1.0, 4.0), 2.0)}[kind]
        coverage = rng.uniform(0.1, 0.5, size=TOPICS)
        coverage[rng.choice(TOPICS, size=rng.integers(1, 3), replace=False)] = 1.0
        D[i] = length * (alpha * coverage[topic] * signal + noise * rng.standard_t(3, size=T))
    for i, kind in enumerate(kinds):
        if kind.startswith("dup"):
            source = int(rng.choice(originals))
            jitter = 0.0 if kind == "dup_exact" else 0.1
            D[i] = D[source] + jitter * np.abs(D[source]).mean() * rng.standard_normal(T)
    return D


def _owner_kinds(n: int, rng: np.random.Generator) -> list[str]:
    """40% good, 25% noisy, 15% adversarial, the rest duplicates (half exact), shuffled."""
    counts = {"good": max(1, round(0.4 * n)), "noisy": round(0.25 * n), "adversarial": round(0.15 * n)}
    duplicates = max(0, n - sum(counts.values()))
    kinds = (["good"] * counts["good"] + ["noisy"] * counts["noisy"]
             + ["adversarial"] * counts["adversarial"]
             + ["dup_exact"] * (duplicates // 2) + ["dup_near"] * (duplicates - duplicates // 2))
    kinds = kinds[:n]
    rng.shuffle(kinds)
    return kinds


def load_scores(path: str | Path) -> np.ndarray:
    """A saved (n × T) score matrix (.npy), checked for shape and finiteness."""
    D = np.load(path)
    if D.ndim != 2 or not np.all(np.isfinite(D)):
        raise SystemExit(f"{path}: expected a finite (n × T) matrix, got shape {D.shape}")
    return D.astype(np.float64)


def table_utility(table: np.ndarray):
    """A set function that looks coalitions up in a 2^n table (bit i ⇔ owner i)."""
    n = table.size.bit_length() - 1
    powers = 1 << np.arange(n, dtype=np.int64)

    def utility(members: np.ndarray) -> np.ndarray:
        return table[members.astype(np.int64) @ powers]

    return utility
