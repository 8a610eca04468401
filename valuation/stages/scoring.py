"""Scoring stage: the eval set's response log-probs under the base model and each owner model,
computed once and cached by (model hash, eval-set hash). Everything after this stage is array
arithmetic on the cached (n × T) matrix: no model is touched again."""
from __future__ import annotations

import hashlib
import time

import numpy as np

from ..faults import fault_point
from ..models import OwnerModel, ScoreCache, ValuationRound
from .common import check_not_cancelled, record_timing, report_progress, set_status, eval_pairs


def score_key(valuation_round, owner_model: OwnerModel | None) -> str:
    if owner_model is None:
        return valuation_round.base_model_hash
    return model_score_key(valuation_round.base_model_hash, owner_model.model_hash)


def model_score_key(base_model_hash: str, model_hash: str) -> str:
    """ScoreCache key of any model scored against this base (owner or, for fidelity checks, coalition)."""
    return hashlib.sha256(f"{base_model_hash}:{model_hash}".encode()).hexdigest()


def run_scoring(valuation_round: ValuationRound, *, on_progress=None) -> None:
    set_status(valuation_round, ValuationRound.Status.SCORING)
    models = [None] + [p.owner_model for p in valuation_round.participants.select_related("owner_model")
                       .order_by("index")]
    started = time.perf_counter()
    pairs = None
    for done, owner_model in enumerate(models):
        report_progress(valuation_round, "scoring", done, len(models), on_progress)
        key = score_key(valuation_round, owner_model)
        if ScoreCache.objects.filter(model_hash=key, eval_hash=valuation_round.eval_set_hash).exists():
            continue
        check_not_cancelled(valuation_round)
        pairs = pairs if pairs is not None else eval_pairs(valuation_round.eval_set)
        _score_one(valuation_round, owner_model, key, pairs)
    report_progress(valuation_round, "scoring", len(models), len(models), on_progress)
    record_timing(valuation_round, "scoring", time.perf_counter() - started)


def _score_one(valuation_round, owner_model, key: str, pairs) -> None:
    model_dir = valuation_round.base_model_path if owner_model is None else owner_model.artifact_path
    ensure_scores(valuation_round, key=key, model_dir=model_dir, pairs=pairs)


def ensure_scores(valuation_round, *, key: str, model_dir, pairs):
    """The eval set's log-probs under the model in ``model_dir``: from the cache, else computed and cached."""
    from valuation.engine import scoring

    row = ScoreCache.objects.filter(model_hash=key, eval_hash=valuation_round.eval_set_hash).first()
    if row is not None:
        return _as_result(row)
    started = time.perf_counter()
    result = scoring.score_model(model_dir, valuation_round.base_model_path, pairs)
    fault_point("scoring:scored")
    ScoreCache.objects.get_or_create(model_hash=key, eval_hash=valuation_round.eval_set_hash, defaults=dict(
        chosen_logps=[float(x) for x in result.chosen], rejected_logps=[float(x) for x in result.rejected],
        seconds=time.perf_counter() - started))
    return result


def cached_scores(valuation_round, owner_model):
    row = ScoreCache.objects.get(model_hash=score_key(valuation_round, owner_model),
                                 eval_hash=valuation_round.eval_set_hash)
    return _as_result(row)


def _as_result(row: ScoreCache):
    from valuation.engine.scoring import ScoreResult

    return ScoreResult(chosen=np.asarray(row.chosen_logps, dtype=np.float64),
                       rejected=np.asarray(row.rejected_logps, dtype=np.float64))


def score_matrix(valuation_round) -> tuple[np.ndarray, np.ndarray]:
    """D (n × T) of per-owner margin changes, and the owners' dataset sizes."""
    from valuation.engine.scoring import delta_matrix

    participants = list(valuation_round.participants.select_related("owner_model").order_by("index"))
    base = cached_scores(valuation_round, None)
    owners = [cached_scores(valuation_round, p.owner_model) for p in participants]
    return delta_matrix(base, owners), np.array([p.n_pairs for p in participants], dtype=np.int64)
