"""Small synthetic pair features with planted label noise, for the pair-level engine tests.

A clean pair's representation is z = a + noise for one "preference direction" a; a reversed
label negates it (what f(x, y_l) − f(x, y_w) does), so the planted pairs are known."""
from __future__ import annotations

import numpy as np


def planted(n: int = 120, d: int = 8, flip: float = 0.2, n_eval: int = 200, seed: int = 0, signal: float = 1.0):
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    direction *= signal / np.linalg.norm(direction)
    z = direction + rng.normal(scale=0.6, size=(n, d))
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, size=int(round(flip * n)), replace=False)] = True
    z[flipped] *= -1
    z_eval = direction + rng.normal(scale=0.6, size=(n_eval, d))
    return z, z_eval, flipped
