"""Scoring stage: the eval set's response log-probs under the base model and each owner model,
computed once and cached by (model hash, eval-set hash). Everything after this stage is array
arithmetic on the cached (n × T) matrix: no model is touched again. Each model's pass is a unit
(stages/units.py): the foreground runner loops over them, a Celery worker runs one per task."""
from __future__ import annotations

import hashlib
import time

import numpy as np

from ..faults import fault_point
from ..models import OwnerModel, ScoreCache, ValuationRound
from .common import record_timing, runtime_of, set_status


def score_key(valuation_round, owner_model: OwnerModel | None) -> str:
    dtype = valuation_round.config.get("dtype", "float32")
    if owner_model is None:
        if dtype == "float32":
            return valuation_round.base_model_hash
        return hashlib.sha256(f"{valuation_round.base_model_hash}:{dtype}".encode()).hexdigest()
    return model_score_key(valuation_round.base_model_hash, owner_model.model_hash, dtype=dtype)


def model_score_key(base_model_hash: str, model_hash: str, *, dtype: str = "float32") -> str:
    """ScoreCache key of any model scored against this base (owner or, for fidelity checks, coalition)."""
    suffix = "" if dtype == "float32" else f":{dtype}"  # float32 keys are the ones every earlier round used
    return hashlib.sha256(f"{base_model_hash}:{model_hash}{suffix}".encode()).hexdigest()


def eval_max_length(valuation_round) -> int | None:
    """Where the eval set's sequences are cut: at the training length, as TRL cuts the owners' pairs, when the
    round's length check found an eval pair that length cuts; else nowhere, which scores the same tokens."""
    check = valuation_round.config.get("eval_lengths") or {}
    if check.get("max_length") and (check.get("n_truncated") or check.get("n_unscored")):
        return int(check["max_length"])
    return None


def score_order(valuation_round) -> str:
    """How the round batches its eval sequences (engine/scoring.py): by length since rounds recorded it, in
    the eval set's order before, so that every round's replay scores exactly as the round did."""
    return valuation_round.config.get("score_order", "input")


def score_eval_hash(valuation_round) -> str:
    """The ScoreCache eval key: the eval set's hash, plus the cut when there is one (other tokens, other scores)
    and the batching order when it is by length (other float summation order, other last bits)."""
    key = valuation_round.eval_set_hash
    max_length = eval_max_length(valuation_round)
    if max_length is not None:
        key = hashlib.sha256(f"{key}:max_length={max_length}".encode()).hexdigest()
    order = score_order(valuation_round)
    if order != "input":
        key = hashlib.sha256(f"{key}:order={order}".encode()).hexdigest()
    return key


def run_scoring(valuation_round: ValuationRound, *, on_progress=None) -> None:
    from .units import stage_run

    set_status(valuation_round, ValuationRound.Status.SCORING)
    started = time.perf_counter()
    stage_run(valuation_round, "scoring", on_progress=on_progress)
    record_timing(valuation_round, "scoring", time.perf_counter() - started)


def _score_one(valuation_round, owner_model, key: str, pairs) -> None:
    model_dir = valuation_round.base_model_path if owner_model is None else owner_model.artifact_path
    ensure_scores(valuation_round, key=key, model_dir=model_dir, pairs=pairs)


def ensure_scores(valuation_round, *, key: str, model_dir, pairs, base_dir=None):
    """The eval set's log-probs under the model in ``model_dir``: from the cache, else computed and cached.
    An adapter applies to ``base_dir`` (default: the round's base model); the key must say which."""
    from valuation.engine import scoring

    eval_hash = score_eval_hash(valuation_round)
    row = ScoreCache.objects.filter(model_hash=key, eval_hash=eval_hash).first()
    if row is not None:
        return _as_result(row)
    started = time.perf_counter()
    result = scoring.score_model(model_dir, base_dir or valuation_round.base_model_path, pairs,
                                 runtime=runtime_of(valuation_round),
                                 max_length=eval_max_length(valuation_round), order=score_order(valuation_round))
    fault_point("scoring:scored")
    ScoreCache.objects.get_or_create(model_hash=key, eval_hash=eval_hash, defaults=dict(
        chosen_logps=[float(x) for x in result.chosen], rejected_logps=[float(x) for x in result.rejected],
        seconds=time.perf_counter() - started))
    return result


def cached_scores(valuation_round, owner_model):
    row = ScoreCache.objects.get(model_hash=score_key(valuation_round, owner_model),
                                 eval_hash=score_eval_hash(valuation_round))
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
    return delta_matrix(base, owners), np.array([p.training_size for p in participants], dtype=np.int64)
