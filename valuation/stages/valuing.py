"""Valuing stage: the 2^n coalition-utility table from the cached score matrix, exact
Shapley values (plus Banzhaf and leave-one-out over the same table), and draft payouts.

Everything is written in one transaction together with status `done`: a run killed
before the commit leaves nothing, a re-run recomputes the same numbers from the same
cached scores, and the (round, owner) constraint means no owner is ever paid twice.
"""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from ..models import CoalitionUtility, OwnerValue, Payout, ValuationRound
from .common import record_timing, report_progress, set_status
from .scoring import score_matrix

COALITION_ROWS_LIMIT = 4096  # per-coalition rows up to n = 12; the .npy artifact holds any size


def run_valuing(valuation_round: ValuationRound, *, on_progress=None) -> None:
    from valuation.engine.hashing import sha256_file
    from valuation.engine.payouts import split_pool
    from valuation.engine.shapley import exact_banzhaf, exact_shapley, leave_one_out
    from valuation.engine.utility import all_coalition_utilities

    set_status(valuation_round, ValuationRound.Status.VALUING)
    report_progress(valuation_round, "valuing", 0, 3, on_progress)
    started = time.perf_counter()
    D, sizes = score_matrix(valuation_round)
    v = all_coalition_utilities(D, utility=valuation_round.utility, composition=valuation_round.composition,
                                beta=valuation_round.config["beta"], sizes=sizes)
    report_progress(valuation_round, "valuing", 1, 3, on_progress)
    phi = exact_shapley(v)
    banzhaf, loo = exact_banzhaf(v), leave_one_out(v)
    split = split_pool([float(x) for x in phi], Decimal(valuation_round.pool), policy="clip",
                       decimals=valuation_round.decimals)
    report_progress(valuation_round, "valuing", 2, 3, on_progress)
    path = Path(settings.ARTIFACTS_DIR) / "rounds" / str(valuation_round.pk) / "utilities.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, v)
    _write_results(valuation_round, v, phi, banzhaf, loo, split, path, sha256_file(path))
    record_timing(valuation_round, "valuing", time.perf_counter() - started)
    report_progress(valuation_round, "valuing", 3, 3, on_progress)


@transaction.atomic
def _write_results(valuation_round, v, phi, banzhaf, loo, split, path: Path, path_hash: str) -> None:
    locked = ValuationRound.objects.select_for_update().get(pk=valuation_round.pk)
    if locked.status == ValuationRound.Status.DONE:
        return  # another runner finished first
    # A re-run after a crash that happened before this commit finds nothing to replace;
    # one after a failure between stages may find drafts, never approved rows.
    CoalitionUtility.objects.filter(round=locked).delete()
    OwnerValue.objects.filter(round=locked).delete()
    Payout.objects.filter(round=locked, status=Payout.Status.DRAFT).delete()
    participants = list(locked.participants.select_related("owner").order_by("index"))
    if len(v) <= COALITION_ROWS_LIMIT:
        CoalitionUtility.objects.bulk_create(
            CoalitionUtility(round=locked, mask=mask, size=int(mask).bit_count(), value=float(value))
            for mask, value in enumerate(v))
    OwnerValue.objects.bulk_create(
        OwnerValue(round=locked, owner=p.owner, shapley=float(phi[p.index]), stderr=0.0,
                   ci_low=float(phi[p.index]), ci_high=float(phi[p.index]), banzhaf=float(banzhaf[p.index]),
                   leave_one_out=float(loo[p.index])) for p in participants)
    Payout.objects.bulk_create(
        Payout(round=locked, owner=p.owner, amount=split.amounts[p.index], share=Decimal(str(split.shares[p.index])),
               currency=locked.currency) for p in participants)
    ValuationRound.objects.filter(pk=locked.pk).update(
        status=ValuationRound.Status.DONE, estimator_used="exact", utilities_path=str(path),
        utilities_hash=path_hash, payout_note=split.reason or "")
