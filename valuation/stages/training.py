"""Training stage: one DPO model per owner, cached by (base model hash, data hash, training
config hash) so later rounds reuse it; a finished artifact whose row was never written (the
process died in between) is adopted, not retrained. Each owner's fine-tune is a unit
(stages/units.py): the foreground runner loops over them, a Celery worker runs one per task."""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from django.conf import settings

from ..faults import fault_point
from ..models import OwnerModel, RoundOwner, ValuationRound
from .common import participant_pairs, record_timing, runtime_of, set_status

logger = logging.getLogger(__name__)


def owner_model_key(*, base_model_hash: str, data_hash: str, config_hash: str, dtype: str = "float32") -> str:
    suffix = "" if dtype == "float32" else f":{dtype}"  # float32 keys are the ones every earlier round used
    return hashlib.sha256(f"{base_model_hash}:{data_hash}:{config_hash}{suffix}".encode()).hexdigest()


def run_training(valuation_round: ValuationRound, *, on_progress=None) -> None:
    from .units import stage_run

    set_status(valuation_round, ValuationRound.Status.TRAINING)
    started = time.perf_counter()
    stage_run(valuation_round, "training", on_progress=on_progress)
    record_timing(valuation_round, "training", time.perf_counter() - started)


def ensure_owner_model(valuation_round, participant: RoundOwner, cfg, cfg_hash: str) -> OwnerModel:
    """Link the cached model for this key, adopting a finished artifact or training one if needed."""
    key = owner_model_key(base_model_hash=valuation_round.base_model_hash, data_hash=participant.data_hash,
                          config_hash=cfg_hash, dtype=runtime_of(valuation_round).dtype)
    cached = OwnerModel.objects.filter(cache_key=key).first()
    if cached is not None and Path(cached.artifact_path).is_dir():
        reused = cached.metrics.get("trained_in_round") != valuation_round.pk
        RoundOwner.objects.filter(pk=participant.pk).update(owner_model=cached, model_reused=reused)
        return cached
    out_dir = Path(settings.ARTIFACTS_DIR) / "owner_models" / key
    result = _train_or_adopt(valuation_round, participant, cfg, out_dir)
    fault_point("training:model-saved")
    owner_model, _ = OwnerModel.objects.update_or_create(cache_key=key, defaults=dict(
        base_model_hash=valuation_round.base_model_hash, data_hash=participant.data_hash, config_hash=cfg_hash,
        artifact_path=str(out_dir), model_hash=result["model_hash"], seconds=result["seconds"],
        metrics=dict(result["metrics"], trained_in_round=valuation_round.pk)))
    RoundOwner.objects.filter(pk=participant.pk).update(owner_model=owner_model, model_reused=False)
    return owner_model


def _train_or_adopt(valuation_round, participant, cfg, out_dir: Path) -> dict:
    """Train, or adopt the finished artifact a run that died before recording it left behind
    (the engine returns it as `cached` after checking its hash)."""
    from valuation.engine import dpo

    pairs = participant_pairs(participant)  # the data the model is cached under (its data hash), nothing else
    logger.info("round %s: model for %s on %d pairs", valuation_round.pk, participant.owner, len(pairs))
    result = dpo.train_owner_model(valuation_round.base_model_path, pairs, out_dir, cfg,
                                   base_model_hash=valuation_round.base_model_hash, runtime=runtime_of(valuation_round))
    return {"model_hash": result.model_hash, "seconds": result.seconds, "metrics": result.metrics}
