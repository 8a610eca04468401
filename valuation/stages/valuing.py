"""Valuing stage: Shapley values from the cached score matrix, then draft payouts.

`exact` (or `auto` when 2^n fits the budget): the full 2^n utility table, exact Shapley,
Banzhaf, leave-one-out and the pairwise interaction index over it. Sampled
(`permutation`, `stratified`, `kernel`, or `auto` above the exact limit): the engine's
budgeted estimator with per-owner standard errors, 95% CIs and the payout-error stopping
rule; leave-one-out is exact (n + 1 evaluations) and interactions are sampled.

Everything is written in one transaction together with status `done`: a run killed
before the commit leaves nothing, a re-run recomputes the same numbers from the same
cached scores (seeded), and the (round, owner) constraint means no owner is paid twice.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from ..faults import fault_point
from ..models import CoalitionUtility, OwnerValue, Payout, ValuationRound
from .common import record_timing, report_progress, set_status
from .scoring import score_matrix

COALITION_ROWS_LIMIT = 4096  # per-coalition rows up to n = 12; the .npy artifact holds any size
EXACT_INTERACTIONS_LIMIT = 16  # the exact interaction index is O(n² 2^n)
SAMPLED_INTERACTIONS_LIMIT = 60  # an n × n matrix on the round row stays small
INTERACTION_BUDGET_PER_OWNER = 400  # evaluations per owner for the sampled interaction matrix


@dataclass
class Valuation:
    result: object  # engine ShapleyResult
    banzhaf: np.ndarray | None
    loo: np.ndarray
    interactions: list
    table: np.ndarray | None  # the 2^n utilities when exact
    objectives: dict = field(default_factory=dict)  # reward rounds: objective -> ShapleyResult


def run_valuing(valuation_round: ValuationRound, *, on_progress=None) -> None:
    from valuation.engine.hashing import sha256_file

    set_status(valuation_round, ValuationRound.Status.VALUING)
    report_progress(valuation_round, "valuing", 0, 3, on_progress)
    started = time.perf_counter()
    D, sizes = score_matrix(valuation_round)
    valuation = compute_values(valuation_round, D, sizes, on_progress=on_progress)
    report_progress(valuation_round, "valuing", 1, 3, on_progress)
    split = payout_split(valuation_round, valuation, D, sizes)
    report_progress(valuation_round, "valuing", 2, 3, on_progress)
    path, digest = "", ""
    if valuation.table is not None:
        file = Path(settings.ARTIFACTS_DIR) / "rounds" / str(valuation_round.pk) / "utilities.npy"
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, valuation.table)
        path, digest = str(file), sha256_file(file)
    fault_point("valuing:computed")
    _write_results(valuation_round, valuation, split, path, digest)
    record_timing(valuation_round, "valuing", time.perf_counter() - started)
    report_progress(valuation_round, "valuing", 3, 3, on_progress)


def payout_split(valuation_round: ValuationRound, valuation: Valuation, D: np.ndarray, sizes: np.ndarray):
    """The draft payouts: the pool split by what the round's payout policy pays by (engine/allocation.py)."""
    from valuation.engine.allocation import payout_values
    from valuation.engine.payouts import split_pool

    policy = valuation_round.payout_policy
    values = payout_values(policy, shapley=valuation.result.values, scores=D, sizes=sizes,
                           utility=valuation_round.utility, composition=valuation_round.composition,
                           beta=valuation_round.config.get("beta"))
    return split_pool([float(x) for x in values], Decimal(valuation_round.pool), policy=policy,
                      decimals=valuation_round.decimals)


def compute_values(valuation_round: ValuationRound, D: np.ndarray, sizes: np.ndarray, *,
                   model_dirs: list | None = None, on_progress=None) -> Valuation:
    from valuation.engine.utility import coalition_utility_fn

    if valuation_round.utility == "reward":  # generation-based: stages/generation.py decodes coalitions
        from .generation import reward_values

        return reward_values(valuation_round, sizes, model_dirs=model_dirs, on_progress=on_progress)
    utility = coalition_utility_fn(D, utility=valuation_round.utility, composition=valuation_round.composition,
                                   beta=valuation_round.config["beta"], sizes=sizes)
    return value_utility(valuation_round, utility, D.shape[0])


def value_utility(valuation_round: ValuationRound, utility, n: int, *, sampled_interactions: bool = True) -> Valuation:
    """Shapley (exact or sampled), Banzhaf, leave-one-out and interactions of any set function `utility`."""
    from valuation.engine.interactions import estimate_interaction, shapley_interaction
    from valuation.engine.shapley import estimate_shapley, exact_banzhaf, exact_shapley_result, leave_one_out

    config = valuation_round.config
    budget, seed = int(config["budget"]), int(config["seed"])
    if exact_applies(valuation_round.estimator, n, budget):
        table = np.asarray(utility.table(), dtype=np.float64)
        interactions = shapley_interaction(table) if n <= EXACT_INTERACTIONS_LIMIT else None
        return Valuation(result=exact_shapley_result(table, budget=budget, requested_method=valuation_round.estimator),
                         banzhaf=exact_banzhaf(table), loo=leave_one_out(table),
                         interactions=_as_list(interactions), table=table)
    result = estimate_shapley(utility, n, method=valuation_round.estimator, budget=budget, seed=seed,
                              target=config["target"])
    interactions = None
    if sampled_interactions and 2 <= n <= SAMPLED_INTERACTIONS_LIMIT:
        interactions = estimate_interaction(utility, n, budget=min(budget, INTERACTION_BUDGET_PER_OWNER * n), seed=seed).values
    return Valuation(result=result, banzhaf=None, loo=_leave_one_out_sampled(utility, n),
                     interactions=_as_list(interactions), table=None)


def exact_applies(estimator: str, n: int, budget: int) -> bool:
    """The engine's own rule for `auto`: exact when all 2^n coalitions fit the budget."""
    from valuation.engine.shapley import MAX_EXACT_OWNERS

    return estimator == "exact" or (estimator == "auto" and (1 << n) <= budget and n <= MAX_EXACT_OWNERS)


def _leave_one_out_sampled(utility, n: int) -> np.ndarray:
    """φ_LOO,i = v(N) − v(N ∖ {i}): n + 1 evaluations, exact at any n."""
    members = np.ones((n + 1, n), dtype=bool)
    members[np.arange(1, n + 1), np.arange(n)] = False
    values = np.asarray(utility(members), dtype=np.float64)
    return values[0] - values[1:]


def _as_list(matrix) -> list:
    return [] if matrix is None else [[float(x) for x in row] for row in np.asarray(matrix)]


@transaction.atomic
def _write_results(valuation_round, valuation: Valuation, split, path: str, digest: str) -> None:
    locked = ValuationRound.objects.select_for_update().get(pk=valuation_round.pk)
    if locked.status == ValuationRound.Status.DONE:
        return  # another runner finished first
    # A re-run after a crash before this commit finds nothing to replace; drafts from an
    # earlier failed attempt are replaced; approved rows are never touched.
    CoalitionUtility.objects.filter(round=locked).delete()
    OwnerValue.objects.filter(round=locked).delete()
    Payout.objects.filter(round=locked, status=Payout.Status.DRAFT).delete()
    participants = list(locked.participants.select_related("owner").order_by("index"))
    result = valuation.result
    if valuation.table is not None and len(valuation.table) <= COALITION_ROWS_LIMIT:
        CoalitionUtility.objects.bulk_create(
            CoalitionUtility(round=locked, mask=mask, size=int(mask).bit_count(), value=float(value))
            for mask, value in enumerate(valuation.table))
    OwnerValue.objects.bulk_create(
        OwnerValue(round=locked, owner=p.owner, shapley=float(result.values[p.index]),
                   stderr=float(result.stderr[p.index]), ci_low=float(result.ci_low[p.index]),
                   ci_high=float(result.ci_high[p.index]),
                   banzhaf=None if valuation.banzhaf is None else float(valuation.banzhaf[p.index]),
                   leave_one_out=float(valuation.loo[p.index])) for p in participants)
    if valuation.objectives:
        from .generation import objective_values_create

        objective_values_create(locked, participants, valuation.objectives)
    Payout.objects.bulk_create(
        Payout(round=locked, owner=p.owner, amount=split.amounts[p.index], share=Decimal(str(split.shares[p.index])),
               currency=locked.currency) for p in participants)
    fault_point("valuing:payouts-written")
    ValuationRound.objects.filter(pk=locked.pk).update(
        status=ValuationRound.Status.DONE, estimator_used=result.method, n_evaluations=result.n_evaluations,
        stopped_because=result.stopped_because, misallocation_bound=float(result.misallocation_bound),
        interactions=valuation.interactions, utilities_path=path, utilities_hash=digest,
        payout_note=split.reason or "")
