"""The cheap utility of pair- and cluster-level valuation: a Bradley–Terry classifier on pair features.

TS-DShapley (Schoch et al. 2023) and SHED (He et al. 2024) value data with a small model on
the target model's representations instead of the target model itself. For preference
pairs that small model is a Bradley–Terry logistic classifier on z = f(x, y_w) − f(x, y_l)
(representations.py):

    P(y_w ≻ y_l | x) = σ(w · z),   w = argmin Σ_{i∈S} log(1 + e^{−w·z_i}) + (λ/2)‖w‖²

with no intercept, so reversing a pair's label is exactly negating its z. The utility of a
subset S of pairs is the classifier's held-out pairwise accuracy on the eval pairs,

    v(S) = mean_t( 1[w_S · z_t > 0] + ½·1[w_S · z_t = 0] ),   v(∅) = ½ (w = 0: all ties),

the `preference_accuracy` of a round with the classifier in place of the DPO model.

Features are the raw z projected on their top principal directions (uncentred, so the map
stays linear and antisymmetry survives) and scaled by one global factor, so λ means the same
for a 128-wide tiny model and a 4096-wide real one. Many subsets are fitted at once: one
batched Newton solve over a (B × n) membership mask, numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UTILITIES = ("accuracy", "loglik")


@dataclass(frozen=True)
class ClassifierConfig:
    max_features: int = 32  # principal directions kept: the classifier's cost no longer grows with the model's width
    l2: float = 1.0  # ridge λ on the summed loss: a handful of pairs cannot produce a huge w
    newton_steps: int = 25  # upper bound; a fit stops earlier when its step is below 1e-8
    utility: str = "accuracy"  # "accuracy" (the papers' held-out accuracy) or "loglik" (mean log σ(w·z), smoother)

    def __post_init__(self) -> None:
        if self.max_features < 1:
            raise ValueError(f"max_features must be >= 1, got {self.max_features}")
        if not self.l2 > 0:
            raise ValueError(f"l2 must be > 0 (without it a separable subset has no finite fit), got {self.l2}")
        if self.newton_steps < 1:
            raise ValueError(f"newton_steps must be >= 1, got {self.newton_steps}")
        if self.utility not in UTILITIES:
            raise ValueError(f"unknown classifier utility {self.utility!r}; valid are {', '.join(UTILITIES)}")


@dataclass(frozen=True)
class FeatureMap:
    components: np.ndarray  # (d_in, k): top right singular vectors of the pool's raw pair features
    scale: float  # 1 / RMS norm of the projected pool features

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.components.shape[0]:
            raise ValueError(f"pair features must have shape (n, {self.components.shape[0]}), got {z.shape}")
        return (z @ self.components) * self.scale


def fit_feature_map(z: np.ndarray, config: ClassifierConfig = ClassifierConfig()) -> FeatureMap:
    """Uncentred PCA of the pool's pair features (no offset: −z must still map to −x)."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(f"need a non-empty (n, d) feature matrix, got shape {z.shape}")
    k = min(config.max_features, z.shape[1], z.shape[0])
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    components = vt[:k].T
    projected = z @ components
    rms = float(np.sqrt(np.mean(np.sum(projected**2, axis=1))))
    return FeatureMap(components=components, scale=1.0 / rms if rms > 0 else 1.0)


def _sigmoid(m: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -m))


def fit(x: np.ndarray, members: np.ndarray, config: ClassifierConfig = ClassifierConfig()) -> np.ndarray:
    """w of one classifier per row of ``members`` (B × n booleans over the rows of x): shape (B, d).

    Batched Newton on the strictly convex penalised loss; an empty row gives w = 0.
    """
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(members, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != x.shape[0]:
        raise ValueError(f"members must have shape (B, {x.shape[0]}), got {m.shape}")
    b, d = m.shape[0], x.shape[1]
    w = np.zeros((b, d))
    eye = config.l2 * np.eye(d)
    for _ in range(config.newton_steps):
        p = _sigmoid(w @ x.T)  # (B, n): P(label is right) under the current w
        grad = config.l2 * w - (m * (1.0 - p)) @ x
        curvature = m * p * (1.0 - p)
        hessian = np.matmul((curvature[:, :, None] * x[None]).transpose(0, 2, 1), x) + eye
        step = np.linalg.solve(hessian, grad[:, :, None])[:, :, 0]
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def evaluate(w: np.ndarray, x_eval: np.ndarray, utility: str = "accuracy") -> np.ndarray:
    """v of each classifier (rows of w) on the eval pairs: accuracy (ties ½) or mean log σ(w·z)."""
    margins = np.asarray(w, dtype=np.float64) @ np.asarray(x_eval, dtype=np.float64).T
    if utility == "accuracy":
        return 0.5 + 0.5 * np.sign(margins).mean(axis=1)
    return -np.logaddexp(0.0, -margins).mean(axis=1)


def subset_utility(x: np.ndarray, x_eval: np.ndarray, members: np.ndarray,
                   config: ClassifierConfig = ClassifierConfig()) -> np.ndarray:
    """v(S) for each row S of ``members`` (B × n booleans): fit, then evaluate. Shape (B,)."""
    members = np.atleast_2d(np.asarray(members, dtype=bool))
    return evaluate(fit(x, members, config), x_eval, config.utility)


def agreement(x: np.ndarray, config: ClassifierConfig = ClassifierConfig(), *,
              trusted: np.ndarray | None = None) -> np.ndarray:
    """σ(w·z_i) of every pair under the classifier fitted on the ``trusted`` pairs (default: all): below ½,
    that data prefers the response this pair marked as rejected."""
    members = np.ones(x.shape[0], dtype=bool) if trusted is None else np.asarray(trusted, dtype=bool)
    w = fit(x, members[None, :], config)
    return _sigmoid(x @ w[0])
