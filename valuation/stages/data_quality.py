"""Data-quality stage (opt-in, after valuing): a value for every pair, flags with reasons, clusters.

The round's pairs (every participant's, in participant order) and its eval set are embedded by
the base model (engine/representations.py, cached on disk per pair under
ARTIFACTS_DIR/representations, so a resumed or later round embeds only new pairs), then
engine/data_quality.py values them by TS-DShapley, flags the credibly harmful ones and
clusters them by SHED. The results and status `done` are written in one transaction.

Idempotent and resumable like the other stages: a done report is returned as is; a run
killed midway leaves the report `running` under a dead runner, and the next call (the
round runner, `manage.py value_pairs`, the API) takes it over and continues — embeddings
already on disk are not recomputed, and the values are seeded, so the result is the same.
The round's values and payouts never depend on this stage: it fails on its own report.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.models import PairFormat, PreferencePair
from marketplace.parsing import flatten_messages

from ..models import DataQualityReport, PairCluster, PairValue, ValuationRound
from .common import eval_pairs, failure_text, model_dir_hash, pairs_digest, snapshot_pairs, uses_chat

logger = logging.getLogger(__name__)
STALE = timedelta(minutes=15)  # as the round runner: a silent holder this long is dead
EXAMPLES_PER_CLUSTER = 3  # prompts shown to admins per cluster, nearest the centroid first
EXAMPLE_CHARS = 240
PROGRESS_EVERY = 1.0  # seconds between progress writes


def data_quality_config(options: dict | None = None, *, seed: int, base: dict | None = None) -> dict:
    """The stage's engine config as JSON: flat `options` (engine/data_quality.OPTIONS) over `base` (a stored
    config) or the defaults, seeded by the round's seed so a re-run gives the same values."""
    from valuation.engine.data_quality import config_from_dict, config_from_options, config_to_dict

    try:
        return config_to_dict(config_from_options(options, seed=seed,
                                                  base=config_from_dict(base) if base else None))
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def representations_dir() -> Path:
    """Where pair embeddings are cached: REPRESENTATIONS_DIR if set (e.g. a larger disk), else under the artifacts."""
    return Path(settings.REPRESENTATIONS_DIR or Path(settings.ARTIFACTS_DIR) / "representations")


def _round_request(valuation_round: ValuationRound) -> dict:
    return valuation_round.config.get("data_quality") or data_quality_config(seed=valuation_round.seed)


def run_data_quality(valuation_round: ValuationRound, *, on_progress=None) -> DataQualityReport | None:
    """The round runner's call: nothing unless the round opted in; a failure is logged and kept on the report."""
    if not valuation_round.data_quality:
        return None
    try:
        return ensure_data_quality(valuation_round, on_progress=on_progress)
    except ValidationError as exc:  # another live runner holds it, or its inputs changed (then recorded as failed)
        logger.warning("data-quality stage of round %s: %s", valuation_round.pk, "; ".join(exc.messages))
    except Exception:
        logger.exception("data-quality stage of round %s failed", valuation_round.pk)
    return DataQualityReport.objects.filter(round=valuation_round).first()


def ensure_data_quality(valuation_round: ValuationRound, *, on_progress=None) -> DataQualityReport:
    """Run (or resume) the stage unless its report is done. Raises on failure, after recording it."""
    report, _ = DataQualityReport.objects.get_or_create(round=valuation_round,
                                                        defaults={"config": _round_request(valuation_round)})
    if report.status == DataQualityReport.Status.DONE:
        return report
    _claim(report)
    started = time.perf_counter()
    try:
        _assess_and_write(valuation_round, report, on_progress, started)
    except Exception as exc:
        DataQualityReport.objects.filter(pk=report.pk).update(
            status=DataQualityReport.Status.FAILED, runner="", finished_at=timezone.now(), error=failure_text(exc))
        raise
    except BaseException:  # interrupted: leave it running under a dead runner, so the next call resumes
        DataQualityReport.objects.filter(pk=report.pk).update(runner="")
        raise
    report.refresh_from_db()
    return report


def _claim(report: DataQualityReport) -> None:
    from valuation.services import _runner_alive, _runner_id  # the round runner's own liveness rule

    me, now = _runner_id(), timezone.now()
    holder = report.runner
    if (report.status == DataQualityReport.Status.RUNNING and holder and holder != me and _runner_alive(holder)
            and report.heartbeat_at and now - report.heartbeat_at < STALE):
        raise ValidationError(f"the data-quality stage of '{report.round.name}' is being run by {holder}")
    claimed = DataQualityReport.objects.filter(pk=report.pk, runner=holder).filter(
        ~Q(status=DataQualityReport.Status.DONE)).update(
        status=DataQualityReport.Status.RUNNING, runner=me, heartbeat_at=now, error="",
        started_at=report.started_at or now)
    if not claimed:
        raise ValidationError(f"the data-quality stage of '{report.round.name}' was taken by another runner")


class _Progress:
    """Throttled progress on the report (with heartbeat) and the caller's callback."""

    def __init__(self, report: DataQualityReport, on_progress, step: str):
        self.report, self.on_progress, self.step, self.last = report, on_progress, step, 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.on_progress:
            self.on_progress(self.step, done, total)
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY or done == total:
            self.last = now
            DataQualityReport.objects.filter(pk=self.report.pk).update(
                progress={"step": self.step, "done": done, "total": total}, heartbeat_at=timezone.now())


def _pool(valuation_round: ValuationRound) -> tuple[list[PreferencePair], list[int], list]:
    """Every participant's pairs as the round snapshotted them, in participant order: (rows, owner id per row,
    engine pairs). The same reader as training, so the stage values the data the round valued."""
    rows, owners, engine_pairs = [], [], []
    for participant in valuation_round.participants.select_related("owner").order_by("index"):
        mine, pairs = snapshot_pairs(participant)
        rows += mine
        owners += [participant.owner_id] * len(mine)
        engine_pairs += pairs
    if not rows:
        raise ValidationError("the round has no pairs to assess")
    return rows, owners, engine_pairs


def _assess_and_write(valuation_round, report, on_progress, started: float) -> None:
    from valuation.engine.data_quality import assess_pairs, config_from_dict
    from valuation.engine.representations import pair_representations

    config = config_from_dict(report.config)
    base_dir = Path(valuation_round.base_model_path)
    if model_dir_hash(base_dir) != valuation_round.base_model_hash:
        raise ValidationError(f"the base model at {base_dir} changed since the round was created")
    rows, owners, pool = _pool(valuation_round)
    evals = eval_pairs(valuation_round.eval_set, chat=uses_chat(valuation_round))
    if pairs_digest(evals) != valuation_round.eval_set_hash:
        raise ValidationError(f"the eval set '{valuation_round.eval_set.name}' changed since the round was created")
    reps = pair_representations(base_dir, pool + evals, base_model_hash=valuation_round.base_model_hash,
                                cache_dir=representations_dir(),
                                config=config.representation, on_progress=_Progress(report, on_progress, "embedding"))
    embedded = time.perf_counter()
    z = reps.pairs
    assessment = assess_pairs(z[: len(pool)], z[len(pool):], config,
                              on_progress=_Progress(report, on_progress, "pair values"))
    timings = {"representations": round(embedded - started, 3), "values": round(time.perf_counter() - embedded, 3)}
    report_write(report.pk, rows, np.asarray(owners), assessment, reps.computed, timings, started)


def _prompt_text(pair: PreferencePair) -> str:
    text = flatten_messages(json.loads(pair.prompt)) if pair.pair_format == PairFormat.CONVERSATIONAL \
        else pair.prompt
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def _ranks(values: np.ndarray, owners: np.ndarray) -> np.ndarray:
    """1-based rank of each pair among its owner's pairs, lowest value first (ties: pool order)."""
    ranks = np.zeros(len(values), dtype=np.int64)
    for owner in np.unique(owners):
        idx = np.flatnonzero(owners == owner)
        ranks[idx[np.argsort(values[idx], kind="stable")]] = np.arange(1, len(idx) + 1)
    return ranks


def _cluster_rows(report, rows, owners, assessment) -> list[PairCluster]:
    from valuation.engine.curation import squared_distances

    c, values = assessment.clusters, assessment.values.values
    distances = squared_distances(assessment.features, c.centroids)
    out = []
    for k in range(len(c.values)):
        members = np.flatnonzero(c.labels == k)
        nearest = members[np.argsort(distances[members, k], kind="stable")[:EXAMPLES_PER_CLUSTER]]
        out.append(PairCluster(report=report, index=k, size=len(members), value=float(c.values[k]),
                               stderr=float(c.stderr[k]), proxy=rows[int(c.proxies[k])],
                               n_owners=len(np.unique(owners[members])),
                               n_flagged=int(assessment.flagged[members].sum()),
                               mean_pair_value=float(values[members].mean()),
                               examples=[_prompt_text(rows[int(i)]) for i in nearest]))
    return out


@transaction.atomic
def report_write(report_id: int, rows, owners: np.ndarray, assessment, n_embedded: int, timings: dict, started: float):
    report = DataQualityReport.objects.select_for_update().get(pk=report_id)
    if report.status == DataQualityReport.Status.DONE:
        return  # another runner finished first
    PairValue.objects.filter(report=report).delete()
    PairCluster.objects.filter(report=report).delete()
    v = assessment.values
    ranks = _ranks(v.values, owners)
    PairValue.objects.bulk_create((
        PairValue(report=report, owner_id=int(owners[i]), pair=row, value=float(v.values[i]),
                  stderr=float(v.stderr[i]), n_chains=int(v.n_chains[i]), agreement=float(assessment.agreement[i]),
                  cluster=int(assessment.clusters.labels[i]), rank=int(ranks[i]), flagged=bool(assessment.flagged[i]),
                  reason=assessment.reasons[i]) for i, row in enumerate(rows)), batch_size=2000)
    PairCluster.objects.bulk_create(_cluster_rows(report, rows, owners, assessment), batch_size=500)
    DataQualityReport.objects.filter(pk=report_id).update(
        status=DataQualityReport.Status.DONE, runner="", finished_at=timezone.now(), n_pairs=len(rows),
        n_flagged=int(assessment.flagged.sum()), n_chains=len(v.chains), n_fits=v.n_fits, n_embedded=n_embedded,
        n_features=assessment.n_features, values_seed=v.seed, clusters_seed=assessment.clusters.seed,
        full_utility=assessment.full_utility, empty_utility=assessment.empty_utility,
        timings=dict(timings, total=round(time.perf_counter() - started, 3)),
        progress={"step": "done", "done": 1, "total": 1})
