"""Round results written straight to the database, as the valuing stage would write them.

Dashboard and browser tests are about what pages show, not about valuation: an additive game
(v(S) = base + Σ_{i∈S} φ_i, whose Shapley values are exactly φ) gives every table a consistent
set of numbers without training anything.
"""
from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from valuation.engine.payouts import split_pool
from valuation.models import CoalitionUtility, OwnerValue, Payout, RoundOwner, ValuationRound

BASE_UTILITY = 0.5


def additive_table(values: list[float]) -> list[float]:
    n = len(values)
    return [BASE_UTILITY + sum(values[i] for i in range(n) if mask >> i & 1) for mask in range(2 ** n)]


def round_for(name: str, eval_set, owners, *, pool: str = "100.00", status=ValuationRound.Status.DRAFT,
              config: dict | None = None) -> ValuationRound:
    """A round with its participants snapshotted (no values yet)."""
    valuation_round = ValuationRound.objects.create(
        name=name, eval_set=eval_set, eval_set_hash=eval_set.sha256, base_model_path="/models/tiny",
        base_model_hash="b" * 64, pool=Decimal(pool), status=status, config=config or {"beta": 0.1},
        progress={stage: {"done": 0, "total": 0} for stage in ValuationRound.STAGES})
    for index, owner in enumerate(owners):
        RoundOwner.objects.create(round=valuation_round, owner=owner, index=index, n_pairs=10 + index,
                                  data_hash=f"{index:064d}")
    return valuation_round


def write_results(valuation_round: ValuationRound, values: list[float], *, stderr: float = 0.0,
                  interactions: list | None = None, coalition_rows: bool = True,
                  progress: dict | None = None, timings: dict | None = None) -> ValuationRound:
    """Values (participant-index order), draft payouts by the one split function, coalition rows
    (n ≤ 12), stage progress (default: every stage 3/3), status done — in one transaction, as the
    valuing stage commits them."""
    with transaction.atomic():
        _write(valuation_round, values, stderr, interactions, coalition_rows, progress, timings)
    valuation_round.refresh_from_db()
    return valuation_round


def _write(valuation_round, values, stderr, interactions, coalition_rows, progress, timings) -> None:
    participants = list(valuation_round.participants.select_related("owner").order_by("index"))
    split = split_pool(values, valuation_round.pool, decimals=valuation_round.decimals)
    if coalition_rows and len(values) <= 12:
        CoalitionUtility.objects.bulk_create(
            CoalitionUtility(round=valuation_round, mask=mask, size=mask.bit_count(), value=v)
            for mask, v in enumerate(additive_table(values)))
    OwnerValue.objects.bulk_create(
        OwnerValue(round=valuation_round, owner=p.owner, shapley=values[p.index], stderr=stderr,
                   ci_low=values[p.index] - 1.96 * stderr, ci_high=values[p.index] + 1.96 * stderr,
                   banzhaf=values[p.index], leave_one_out=values[p.index]) for p in participants)
    Payout.objects.bulk_create(
        Payout(round=valuation_round, owner=p.owner, amount=split.amounts[p.index],
               share=Decimal(str(split.shares[p.index])), currency=valuation_round.currency)
        for p in participants)
    ValuationRound.objects.filter(pk=valuation_round.pk).update(
        status=ValuationRound.Status.DONE, estimator_used="exact", interactions=interactions or [],
        progress=progress or {stage: {"done": 3, "total": 3} for stage in ValuationRound.STAGES},
        timings=timings or {"training": 12.5, "scoring": 3.25, "valuing": 0.5}, finished_at=timezone.now(),
        payout_note=split.reason or "")


def write_objective_values(valuation_round: ValuationRound, per_objective: dict[str, list[float]], *,
                           stderr: float = 0.0, payout: dict | None = None) -> ValuationRound:
    """A reward round's values per objective (participant-index order) and its config["reward"] block,
    as the generation stage records them."""
    from valuation.models import ObjectiveValue

    participants = list(valuation_round.participants.select_related("owner").order_by("index"))
    ObjectiveValue.objects.bulk_create(
        ObjectiveValue(round=valuation_round, owner=p.owner, objective=name, shapley=vec[p.index], stderr=stderr,
                       ci_low=vec[p.index] - 1.96 * stderr, ci_high=vec[p.index] + 1.96 * stderr,
                       n_evaluations=2 ** len(participants), method="exact" if not stderr else "kernel")
        for name, vec in per_objective.items() for p in participants)
    names = list(per_objective)
    config = dict(valuation_round.config, reward={
        "objectives": [{"name": name, "judge": f"valuation.engine.synthetic:{name}_judge"} for name in names],
        "payout": payout or {name: 1 / len(names) for name in names}, "prompts": 8,
        "decoding": {"max_new_tokens": 40, "temperature": 1.0, "top_p": 1.0, "greedy": False, "seed": 0,
                     "batch_size": 64, "max_prompt_tokens": 192, "max_batch_rows": 512}})
    ValuationRound.objects.filter(pk=valuation_round.pk).update(config=config, utility="reward")
    valuation_round.refresh_from_db()
    return valuation_round


def write_data_quality(valuation_round: ValuationRound, owners, pair_values: list[float]):
    """A finished data-quality report: each owner's first three accepted pairs valued (owner k's pair r:
    pair_values[k] × r; the lowest flagged as reversed) and one cluster mixing everyone's pairs."""
    from marketplace.models import Contribution, PreferencePair
    from valuation.models import DataQualityReport, PairCluster, PairValue

    report = DataQualityReport.objects.create(
        round=valuation_round, status=DataQualityReport.Status.DONE, n_pairs=3 * len(owners), n_flagged=len(owners),
        n_chains=4, n_fits=100, n_features=8, full_utility=0.75, empty_utility=0.5, finished_at=timezone.now(),
        timings={"representations": 1.5, "values": 2.5, "total": 4.0})
    first = None
    for owner, base in zip(owners, pair_values):
        pairs = list(PreferencePair.objects.filter(contribution__owner=owner,
                                                   contribution__status=Contribution.Status.ACCEPTED)
                     .order_by("pk")[:3])
        first = first or pairs[0]
        for rank, pair in enumerate(pairs, start=1):
            PairValue.objects.create(report=report, owner=owner, pair=pair, value=base * rank, stderr=0.01, n_chains=4,
                                     agreement=0.2 if rank == 1 else 0.8, cluster=0, rank=rank, flagged=rank == 1,
                                     reason=PairValue.Reason.REVERSED if rank == 1 else PairValue.Reason.NONE)
    PairCluster.objects.create(report=report, index=0, size=3 * len(owners), value=0.1, stderr=0.01, proxy=first,
                               n_owners=len(owners), n_flagged=len(owners), mean_pair_value=0.05,
                               examples=[first.prompt])
    return report
