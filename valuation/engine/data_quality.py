"""A round's data-quality assessment: pair values, flags with reasons, and clusters (docs/design.md §2).

Runs the pieces in order on the pair representations z (representations.py):
the feature map and Bradley–Terry classifier of pair_classifier.py, TS-DShapley pair
values (pair_values.py, Schoch et al. 2023) and SHED clusters with proxy Shapley values
(curation.py, He et al. 2024). The round's data-quality stage and the benches call the same
`assess_pairs`, so what the benches measure is what owners see.

A pair is *flagged* when its value is credibly negative — the one-sided upper bound
value + flag_z · stderr is below zero — and the reason says why in plain language:
`reversed` when the classifier trained on the round's unflagged pairs prefers the response the
pair marked as rejected (σ(w·z) < ½: the labels are likely swapped), else `harmful` (the
label agrees with the rest of the data, yet adding the pair lowers held-out accuracy: an
ambiguous pair, or one unlike what the round is evaluated on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .curation import ClusterResult, CurationConfig, cluster_values
from .pair_classifier import ClassifierConfig, agreement, evaluate, fit, fit_feature_map
from .pair_values import PairValueConfig, PairValueResult, pair_values
from .representations import RepresentationConfig

ProgressFn = Callable[[int, int], None]
REVERSED, HARMFUL = "reversed", "harmful"
# Flat option name (API, CLI, form) -> where it lives in DataQualityConfig.
OPTIONS = {
    "chain_size": ("values", "chain_size"), "chains": ("values", "chains"), "coverage": ("values", "coverage"),
    "permutations": ("values", "permutations"), "tolerance": ("values", "tolerance"),
    "patience": ("values", "patience"), "max_features": ("classifier", "max_features"),
    "l2": ("classifier", "l2"), "classifier_utility": ("classifier", "utility"),
    "clusters": ("curation", "clusters"), "proxy_permutations": ("curation", "proxy_permutations"),
    "tau": ("curation", "tau"), "flag_z": ("flag_z",),
}


@dataclass(frozen=True)
class DataQualityConfig:
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    values: PairValueConfig = field(default_factory=PairValueConfig)  # its classifier is the clusters' utility too
    curation: CurationConfig = field(default_factory=CurationConfig)
    flag_z: float = 1.645  # flag when value + 1.645·stderr < 0: a one-sided 95% bound says the pair hurts

    def __post_init__(self) -> None:
        if not self.flag_z >= 0:
            raise ValueError(f"flag_z must be >= 0, got {self.flag_z}")


@dataclass(frozen=True)
class Assessment:
    values: PairValueResult
    agreement: np.ndarray  # (N,) σ(w · z_i), w fitted on the unflagged pairs: below ½ they prefer its rejected response
    flagged: np.ndarray  # (N,) bool
    reasons: list  # (N,) "" | REVERSED | HARMFUL
    clusters: ClusterResult
    full_utility: float  # the classifier on every pair, on the eval pairs
    empty_utility: float  # v(∅)
    n_features: int
    features: np.ndarray  # (N, n_features) what the classifier and k-means saw


def config_from_options(options: dict | None = None, *, seed: int | None = None,
                        base: DataQualityConfig | None = None) -> DataQualityConfig:
    """Flat options (e.g. {"chain_size": 32, "tau": 0.5}) over ``base`` (default: the defaults seeded with
    ``seed``); unknown or invalid options raise ValueError naming them."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown data-quality option(s): {', '.join(unknown)}; valid are {', '.join(sorted(OPTIONS))}")
    if base is None:
        base = DataQualityConfig(values=PairValueConfig(seed=seed), curation=CurationConfig(seed=seed))
    groups: dict[str, dict] = {"values": {}, "classifier": {}, "curation": {}, "top": {}}
    for name, value in options.items():
        where = OPTIONS[name]
        groups["top" if len(where) == 1 else where[0]][where[-1]] = value
    try:
        classifier = dataclasses.replace(base.values.classifier, **groups["classifier"])
        return dataclasses.replace(
            base, values=dataclasses.replace(base.values, classifier=classifier, **groups["values"]),
            curation=dataclasses.replace(base.curation, **groups["curation"]), **groups["top"])
    except TypeError as error:  # a value of the wrong type, e.g. a string for chain_size
        raise ValueError(f"invalid data-quality option: {error}") from error


def config_to_dict(config: DataQualityConfig) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(data: dict) -> DataQualityConfig:
    """The inverse of `config_to_dict` (what a round stores as JSON)."""
    values = dict(data["values"])
    values["classifier"] = ClassifierConfig(**values["classifier"])
    return DataQualityConfig(representation=RepresentationConfig(**data["representation"]),
                             values=PairValueConfig(**values), curation=CurationConfig(**data["curation"]),
                             flag_z=data["flag_z"])


def assess_pairs(z_pool: np.ndarray, z_eval: np.ndarray, config: DataQualityConfig = DataQualityConfig(), *,
                 on_progress: ProgressFn | None = None) -> Assessment:
    """Value, flag and cluster N pairs (features z_pool, N × d) against the eval pairs' features z_eval."""
    z_pool, z_eval = np.asarray(z_pool, dtype=np.float64), np.asarray(z_eval, dtype=np.float64)
    if z_pool.ndim != 2 or z_pool.shape[0] == 0:
        raise ValueError("no pairs to assess")
    if z_eval.ndim != 2 or z_eval.shape[0] == 0:
        raise ValueError("the eval set has no pairs to measure the utility on")
    classifier = config.values.classifier
    features = fit_feature_map(z_pool, classifier)
    x, x_eval = features(z_pool), features(z_eval)
    n_chain_steps = [0]

    def progress(done: int, total: int) -> None:
        n_chain_steps[0] = total
        if on_progress:
            on_progress(done, total + 1)

    result = pair_values(x, x_eval, config.values, on_progress=progress)
    flagged = result.values + config.flag_z * result.stderr < 0
    # Judged by the data that is not itself flagged, so a large block of reversed labels elsewhere
    # (an adversarial owner) does not vote on what "swapped" means; everything flagged: use all.
    agrees = agreement(x, classifier, trusted=~flagged if (~flagged).any() else None)
    reasons = [(REVERSED if a < 0.5 else HARMFUL) if f else "" for f, a in zip(flagged, agrees)]
    clusters = cluster_values(x, x_eval, config.curation, utility=config.values)
    if on_progress:
        on_progress(n_chain_steps[0] + 1, n_chain_steps[0] + 1)
    everyone = np.ones((1, len(x)), dtype=bool)
    full = float(evaluate(fit(x, everyone, classifier), x_eval, classifier.utility)[0])
    empty = float(evaluate(np.zeros((1, x.shape[1])), x_eval, classifier.utility)[0])
    return Assessment(values=result, agreement=agrees, flagged=flagged, reasons=reasons, clusters=clusters,
                      full_utility=full, empty_utility=empty, n_features=x.shape[1], features=x)


def reason_text(code: str, *, value: float, stderr: float, n_chains: int, agreement: float) -> str:
    """What an owner reads next to a flagged pair."""
    evidence = (f"Adding it lowered the quality classifier's held-out accuracy by {-value:.4f} on average "
                f"(± {stderr:.4f}) over the {n_chains} random subsets of the round's pairs it was tried in.")
    if code == REVERSED:
        return (f"The labels look swapped: a classifier trained on the round's unflagged pairs gives the response you "
                f"marked as chosen only a {agreement:.0%} chance of being the better one. {evidence} "
                "Check whether chosen and rejected are the right way round.")
    if code == HARMFUL:
        return (f"The rest of the data agrees with its label ({agreement:.0%}), yet {evidence[0].lower()}{evidence[1:]} "
                "It may be ambiguous, or unlike the pairs the round is evaluated on.")
    return ""
