"""Fidelity checks of finished rounds: is the language-model arithmetic close to coalitions trained for real?

An admin asks for one (web/API "verify", `manage.py verify_round`); `fidelity_request`
records it and queues a Celery task after commit, `fidelity_run` does the work in the
worker (or in the foreground for the command). The engine (engine/fidelity.py) trains
each checked coalition's model sequentially and/or pooled with the round's own training
config (on a LoRA round: adapters, sequential stages merged into their successors' start),
content-addressed under ARTIFACTS_DIR/coalition_models so nothing is trained twice; their eval-set scores go to the same ScoreCache as owner models'. The report
(engine/fidelity_stats.py) is stored on a FidelityReport row of the round.
"""
from __future__ import annotations

import logging
import time
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import stages
from .models import FidelityReport, ValuationRound
from .stages.common import training_config
from .stages.scoring import ensure_scores, model_score_key

logger = logging.getLogger(__name__)
MAX_OWNERS = 20  # four 2^n arithmetic tables per check; beyond that the check itself costs more than a round
ACTIVE = (FidelityReport.Status.QUEUED, FidelityReport.Status.RUNNING)


def _coalition_count(n: int, coalitions: int | None) -> int:
    from valuation.engine.fidelity import DEFAULT_COALITIONS

    k = DEFAULT_COALITIONS if coalitions is None else coalitions
    if k < n + 2 and k < (1 << n):
        raise ValidationError(f"a check of {n} owners compares at least {n + 2} coalitions (∅, each owner alone, "
                              f"all together); --coalitions {k} is too few")
    return min(k, 1 << n)


def fidelity_request(*, valuation_round: ValuationRound, mode: str = FidelityReport.Mode.BOTH,
                     coalitions: int | None = None, seed: int = 0, requested_by=None,
                     queue: bool = True) -> FidelityReport:
    """Record a fidelity check of a finished round; with `queue`, a worker runs it once this commits."""
    from .tasks import round_verify_task

    if mode not in FidelityReport.Mode.values:
        raise ValidationError(f"unknown mode '{mode}'; choose one of: {', '.join(FidelityReport.Mode.values)}")
    if valuation_round.status != ValuationRound.Status.DONE:
        raise ValidationError(f"only a finished round can be verified (this one is {valuation_round.status})")
    if valuation_round.config.get("dtype", "float32") != "float32":
        raise ValidationError(f"fidelity checks train in float32; this round ran in {valuation_round.config['dtype']}")
    n = valuation_round.participants.count()
    if n > MAX_OWNERS:
        raise ValidationError(f"fidelity checks stop at {MAX_OWNERS} owners; this round has {n}")
    if valuation_round.fidelity_reports.filter(status__in=ACTIVE).exists():
        raise ValidationError(f"a fidelity check of '{valuation_round.name}' is already queued or running")
    k = _coalition_count(n, coalitions)
    report = FidelityReport(round=valuation_round, mode=mode, n_coalitions=k, seed=seed, requested_by=requested_by,
                            exhaustive=k == 1 << n)
    report.full_clean()
    report.save()
    if queue:
        transaction.on_commit(lambda: round_verify_task.delay(report.pk))
    return report


def fidelity_run(*, report_id: int, on_progress: Callable[[int, int], None] | None = None) -> FidelityReport:
    """Train, score and compare (idempotent: a finished report is returned as is; models are cached)."""
    report = FidelityReport.objects.select_related("round").get(pk=report_id)
    if report.status == FidelityReport.Status.DONE:
        return report
    FidelityReport.objects.filter(pk=report_id).update(status=FidelityReport.Status.RUNNING, error="",
                                                       started_at=timezone.now())
    started = time.perf_counter()
    try:
        fields = _check(report, on_progress)
    except Exception as exc:
        logger.exception("fidelity check %s failed", report_id)
        FidelityReport.objects.filter(pk=report_id).update(
            status=FidelityReport.Status.FAILED, finished_at=timezone.now(),
            error=f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc))[-4000:])
        raise
    fields["trainings"]["total_seconds"] = round(time.perf_counter() - started, 3)
    FidelityReport.objects.filter(pk=report_id).update(status=FidelityReport.Status.DONE,
                                                       finished_at=timezone.now(), **fields)
    report.refresh_from_db()
    return report


def _inputs(valuation_round: ValuationRound):
    """Engine members and eval pairs, refusing a round whose inputs changed since it ran."""
    from valuation.engine.fidelity import Member

    if stages.model_dir_hash(Path(valuation_round.base_model_path)) != valuation_round.base_model_hash:
        raise ValidationError(f"the base model at {valuation_round.base_model_path} changed since the round ran")
    chat = stages.uses_chat(valuation_round)
    pairs = stages.eval_pairs(valuation_round.eval_set, chat=chat)
    if stages.pairs_digest(pairs) != valuation_round.eval_set_hash:
        raise ValidationError(f"eval set '{valuation_round.eval_set.name}' changed since the round ran")
    members = []
    for p in valuation_round.participants.select_related("owner__user", "owner_model").order_by("index"):
        member = Member(name=p.owner.name, pairs=tuple(stages.owner_pairs(p.contributions.order_by("id"), chat=chat)),
                        model_dir=Path(p.owner_model.artifact_path))
        if member.data_hash != p.data_hash:
            raise ValidationError(f"{p.owner.name}'s data changed since the round ran")
        members.append(member)
    return members, pairs


def _check(report: FidelityReport, on_progress) -> dict:
    from valuation.engine import fidelity_stats
    from valuation.engine.fidelity import ModelRef, Setup, sample_coalitions, train_coalitions

    r = report.round
    members, pairs = _inputs(r)
    setup = Setup(base_dir=Path(r.base_model_path), base_hash=r.base_model_hash,
                  config=training_config(r.config),
                  cache_dir=Path(settings.ARTIFACTS_DIR) / "coalition_models")

    def score(ref: ModelRef):
        key = model_score_key(r.base_model_hash, ref.model_hash)
        return ensure_scores(r, key=key, model_dir=ref.path, pairs=pairs, base_dir=ref.base_path)

    def progress(done: int, total: int) -> None:
        FidelityReport.objects.filter(pk=report.pk).update(progress={"done": done, "total": total})
        if on_progress:
            on_progress(done, total)

    modes = ("sequential", "pooled") if report.mode == FidelityReport.Mode.BOTH else (report.mode,)
    masks = sample_coalitions(len(members), report.n_coalitions, seed=report.seed)
    base_scores = ensure_scores(r, key=r.base_model_hash, model_dir=r.base_model_path, pairs=pairs)
    trained = train_coalitions(setup, members, masks, modes=modes, score=score, base_scores=base_scores,
                               on_progress=progress)
    D, sizes = stages.score_matrix(r)
    result = fidelity_stats.compare(D, sizes, [m.name for m in members], beta=r.config["beta"], trained=trained)
    headline = fidelity_stats.headline(result, utility=r.utility, composition=r.composition)
    unit = r.minor_unit
    headline["max_payout_diff_amount"] = str((Decimal(str(headline["max_payout_diff"])) * r.pool).quantize(unit))
    headline["currency"] = r.currency
    return {"coalitions": result["coalitions"], "correlations": result["correlations"], "shapley": result["shapley"],
            "headline": headline, "exhaustive": result["exhaustive"],
            "trainings": {"trained": trained.trained, "reused": trained.reused, "seconds": round(trained.seconds, 3),
                          "merged": trained.merged, "merge_seconds": round(trained.merge_seconds, 3),
                          "method": trained.method, "stages": trained.stages}}


def round_verify(*, valuation_round: ValuationRound, mode: str = FidelityReport.Mode.BOTH,
                 coalitions: int | None = None, seed: int = 0, requested_by=None,
                 on_progress: Callable[[int, int], None] | None = None) -> FidelityReport:
    """Request and run a fidelity check in the foreground (manage.py verify_round)."""
    report = fidelity_request(valuation_round=valuation_round, mode=mode, coalitions=coalitions, seed=seed,
                              requested_by=requested_by, queue=False)
    return fidelity_run(report_id=report.pk, on_progress=on_progress)
