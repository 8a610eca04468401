"""Semantic screen (between scoring and valuing): how much of each owner's data is near-identical to the
eval set or to another owner's data, by the base model's pair representations (engine/similarity.py).

Paraphrases get past the shingle near-duplicate check at upload; they barely move the base model's
mean-pooled states. Every participant's pairs and the eval set are embedded (the data-quality stage's
on-disk cache, so pairs embedded before cost nothing), and per owner the stage records the share of pairs
whose nearest eval pair, or nearest pair of another owner, is above the recorded cosine threshold.
Owners above the share threshold are flagged; `payout_approve` refuses until staff acknowledge each.

The thresholds come from settings when the round is created and are recorded in its config
(config["screening"]), so a replay screens with the same ones. The stage never fails the round: if the
screen itself fails, the failure is recorded on the report, and approval then requires acknowledging it
like a flagged owner. Idempotent: a done report is kept; anything else is screened again (embeddings are
cached, the arithmetic is deterministic).
"""
from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import OwnerScreen, ScreenReport, ValuationRound
from .common import eval_pairs, eval_set_hash, model_dir_hash, uses_chat

logger = logging.getLogger(__name__)
HEARTBEAT_EVERY = 5.0  # seconds between the round's heartbeat writes while screening


def screening_config() -> dict:
    """What a new round records: the thresholds in settings, the engine's other defaults, the embedding config."""
    from valuation.engine.representations import RepresentationConfig
    from valuation.engine.similarity import ScreenConfig, config_to_dict

    try:
        screen = ScreenConfig(pair_threshold=float(settings.SCREEN_PAIR_THRESHOLD),
                              share_threshold=float(settings.SCREEN_SHARE_THRESHOLD))
    except ValueError as exc:
        raise ValidationError(f"invalid screening settings: {exc}") from exc
    return {"screen": config_to_dict(screen), "representation": dataclasses.asdict(RepresentationConfig())}


def round_screening_config(valuation_round: ValuationRound) -> dict:
    """The round's recorded screening config; a round created before it was recorded screens with today's."""
    return valuation_round.config.get("screening") or screening_config()


def run_screening(valuation_round: ValuationRound, *, on_progress=None) -> ScreenReport | None:
    """The round runner's call: screen unless done; any failure is recorded on the report, never raised."""
    try:
        report, _ = ScreenReport.objects.get_or_create(round=valuation_round, defaults={
            "config": round_screening_config(valuation_round)})
    except Exception:
        logger.exception("semantic screen of round %s could not start", valuation_round.pk)
        return None
    if report.status == ScreenReport.Status.DONE:
        return report
    started = time.perf_counter()
    try:
        screen_round(valuation_round, report, on_progress=on_progress, started=started)
    except Exception as exc:
        logger.exception("semantic screen of round %s failed", valuation_round.pk)
        ScreenReport.objects.filter(pk=report.pk).exclude(status=ScreenReport.Status.DONE).update(
            status=ScreenReport.Status.FAILED, finished_at=timezone.now(),
            seconds=round(time.perf_counter() - started, 3),
            error=f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc))[-4000:])
    report.refresh_from_db()
    return report


def compute_screen(valuation_round: ValuationRound, config: dict, *, on_progress=None, heartbeat: bool = False):
    """(participants, engine ScreenResult, pairs embedded now) of the round's current data under ``config``.

    Refuses if the base model, the eval set or an owner's data changed since the round was created. With
    ``heartbeat`` (the round runner), it keeps the round's heartbeat fresh; a replay writes nothing."""
    from valuation.engine.representations import RepresentationConfig, pair_representations
    from valuation.engine.similarity import config_from_dict, pair_vectors, screen

    from .data_quality import _pool, representations_dir

    base_dir = Path(valuation_round.base_model_path)
    if model_dir_hash(base_dir) != valuation_round.base_model_hash:
        raise ValidationError(f"the base model at {base_dir} changed since the round was created")
    if eval_set_hash(valuation_round.eval_set, chat=uses_chat(valuation_round)) != valuation_round.eval_set_hash:
        raise ValidationError(f"the eval set '{valuation_round.eval_set.name}' changed since the round was created")
    screen_config = config_from_dict(config["screen"])
    _, owners, pool = _pool(valuation_round)  # checks every owner's data hash
    evals = eval_pairs(valuation_round.eval_set, chat=uses_chat(valuation_round))

    last = [0.0]

    def progress(done, total):
        if on_progress:
            on_progress("screening", done, total)
        # A long screen must not make the runner look dead to round_claim.
        if heartbeat and time.monotonic() - last[0] >= HEARTBEAT_EVERY:
            last[0] = time.monotonic()
            ValuationRound.objects.filter(pk=valuation_round.pk).update(heartbeat_at=timezone.now())

    reps = pair_representations(base_dir, pool + evals, base_model_hash=valuation_round.base_model_hash,
                                cache_dir=representations_dir(),
                                config=RepresentationConfig(**config["representation"]), on_progress=progress)
    n = len(pool)
    vectors = pair_vectors(reps.chosen, reps.rejected, eval_chosen=reps.chosen[n:], eval_rejected=reps.rejected[n:],
                           representation=screen_config.representation)
    result = screen(vectors[:n], np.asarray(owners), vectors[n:], screen_config, on_progress=progress)
    return result, n, len(evals), reps.computed


def screen_round(valuation_round, report: ScreenReport, *, on_progress=None, started: float) -> None:
    result, n_pairs, n_eval, n_embedded = compute_screen(valuation_round, report.config, on_progress=on_progress,
                                                         heartbeat=True)
    names = {p.owner_id: p.owner.name for p in valuation_round.participants.select_related("owner")}
    _write(report.pk, result, names, n_pairs, n_eval, n_embedded, time.perf_counter() - started)


def owner_rows(result, names: dict) -> list[dict]:
    """The per-owner results as stored (also what a replay compares). Cosines are kept to 9 decimals: the BLAS
    thread count may move their last bits, and a replay compares what is stored."""
    return [{"owner_id": int(o.owner), "n_pairs": o.n_pairs, "n_eval": o.n_eval, "n_owner": o.n_owner,
             "share_eval": o.share_eval, "share_owner": o.share_owner, "max_eval": round(o.max_eval, 9),
             "max_owner": round(o.max_owner, 9), "flagged": o.flagged,
             "matched_owners": [{"owner_id": int(k), "owner": names.get(int(k), str(k)), "pairs": v}
                                for k, v in sorted(o.matched_owners.items(), key=lambda kv: (-kv[1], kv[0]))]}
            for o in result.owners]


@transaction.atomic
def _write(report_id: int, result, names: dict, n_pairs: int, n_eval: int, n_embedded: int, seconds: float) -> None:
    report = ScreenReport.objects.select_for_update().get(pk=report_id)
    if report.status == ScreenReport.Status.DONE:
        return  # another runner finished first
    OwnerScreen.objects.filter(report=report).delete()
    OwnerScreen.objects.bulk_create(OwnerScreen(report=report, **row) for row in owner_rows(result, names))
    ScreenReport.objects.filter(pk=report_id).update(
        status=ScreenReport.Status.DONE, error="", n_pairs=n_pairs, n_eval=n_eval, n_embedded=n_embedded,
        seconds=round(seconds, 3), finished_at=timezone.now(), acknowledged_by=None, acknowledged_at=None,
        acknowledgement_note="")
