"""A round's time estimate from this machine's records (estimates.py does the arithmetic): before it runs,
training from its owners' token counts and the fine-tunes finished here, scoring from the scoring passes
finished here; while it runs, the remaining time from its own progress so far."""
from __future__ import annotations

from django.utils import timezone

from . import estimates
from .models import OwnerModel, RoundTask, ValuationRound

RECENT = 200  # latest runs a throughput is measured on: this machine as it is now, at a bounded cost


def _training_rate(valuation_round) -> estimates.Throughput | None:
    """Tokens per second of this machine's fine-tunes of the round's kind (LoRA or full: an adapter's step
    skips the base weights' gradients and optimiser state): on the same base model, measured, before any
    scaled from other base models; fine-tunes from before the kind was recorded come after those of it."""
    lora = bool((valuation_round.config.get("training") or {}).get("use_lora", False))  # none: a full fine-tune
    # Only these numbers out of the metrics JSON: the step logs there are far larger than a throughput needs.
    rows = list(OwnerModel.objects.exclude(seconds=0).order_by("-created_at").values_list(
        "base_model_hash", "seconds", "metrics__tokens", "metrics__base_parameters", "metrics__lora")[:RECENT])
    kinds = ([row for row in rows if row[4] is lora], [row for row in rows if row[4] is None])
    here = valuation_round.base_model_hash
    for of_kind in kinds:
        rate = estimates.throughput([(tokens or 0, s) for h, s, tokens, _, _ in of_kind if h == here])
        if rate is not None:
            return rate
    parameters = _parameters(valuation_round)
    for of_kind in kinds if parameters else ():
        rate = estimates.scaled_throughput([(tokens or 0, s, n) for h, s, tokens, n, _ in of_kind if h != here],
                                           parameters)
        if rate is not None:
            return rate
    return None


def _parameters(valuation_round) -> int | None:
    from valuation.engine.model_card import parameter_count

    try:
        return parameter_count(valuation_round.base_model_path)
    except (OSError, ValueError):
        return None


def _scoring_rate(valuation_round) -> estimates.Throughput | None:
    """Eval pairs scored per second by this machine's scoring passes on the same base model."""
    tasks = RoundTask.objects.filter(stage=RoundTask.Stage.SCORING, status=RoundTask.Status.DONE, cached=False,
                                     seconds__gt=0, round__base_model_hash=valuation_round.base_model_hash)
    rows = tasks.order_by("-finished_at").values_list("seconds", "round__eval_set__n_pairs")[:RECENT]
    return estimates.throughput([(n_pairs or 0, seconds) for seconds, n_pairs in rows])


def _training_tokens(valuation_round) -> int | None:
    """Tokens still to train: each owner whose model is not in the cache yet, times the epochs."""
    from valuation.engine.hashing import config_hash

    from .stages.common import runtime_of, training_config
    from .stages.training import owner_model_key

    participants = list(valuation_round.participants.all())
    if "training" not in valuation_round.config or any(p.n_tokens is None for p in participants):
        return None  # a round from before token counts: nothing to estimate training from
    cfg = training_config(valuation_round.config)
    cfg_hash, dtype = config_hash(cfg), runtime_of(valuation_round).dtype
    keys = {p.pk: owner_model_key(base_model_hash=valuation_round.base_model_hash, data_hash=p.data_hash,
                                  config_hash=cfg_hash, dtype=dtype) for p in participants}
    cached = set(OwnerModel.objects.filter(cache_key__in=keys.values()).values_list("cache_key", flat=True))
    return sum(p.n_tokens * cfg.epochs for p in participants if keys[p.pk] not in cached)


def _planned(valuation_round) -> dict:
    tokens = _training_tokens(valuation_round)
    training_rate, scoring_rate = _training_rate(valuation_round), _scoring_rate(valuation_round)
    passes = valuation_round.participants.count() + 1  # each owner model and the base model
    training = None if tokens is None else estimates.seconds_for(tokens, training_rate)
    if tokens == 0:
        training = 0.0  # every model is cached: nothing to train, whatever was measured
    scoring = estimates.seconds_for(passes * valuation_round.eval_set.n_pairs, scoring_rate)
    return {"training": training, "scoring": scoring, "tokens": tokens,
            "training_source": training_rate.source if training_rate else "",
            "scoring_source": scoring_rate.source if scoring_rate else ""}


def _elapsed(valuation_round, stage: str) -> float:
    """Seconds spent in ``stage`` so far: since the round started, less the stages before it."""
    if valuation_round.started_at is None:
        return 0.0
    spent = (timezone.now() - valuation_round.started_at).total_seconds()
    before = ValuationRound.STAGES[:ValuationRound.STAGES.index(stage)]
    return max(spent - sum(valuation_round.timings.get(s, 0.0) for s in before), 0.0)


def round_estimate(*, valuation_round: ValuationRound) -> dict | None:
    """{"kind": "before" | "running", "training", "scoring", "total", "stage_left", "remaining" (seconds or None),
    "training_source", "scoring_source", "tokens"};
    None for a finished, failed or cancelled round (its timings say how long it took)."""
    status = valuation_round.status
    if status in (ValuationRound.Status.DRAFT, ValuationRound.Status.QUEUED):
        kind = "before"
    elif status in (ValuationRound.Status.TRAINING, ValuationRound.Status.SCORING):
        kind = "running"
    else:
        return None
    plan = _planned(valuation_round)
    total = None if plan["training"] is None or plan["scoring"] is None else plan["training"] + plan["scoring"]
    out = {"kind": kind, **plan, "total": total, "remaining": None, "stage_left": None}
    if kind == "running":
        out["stage_left"] = _stage_left(valuation_round, plan)
        then = plan["scoring"] if status == ValuationRound.Status.TRAINING else 0.0
        out["remaining"] = None if out["stage_left"] is None or then is None else out["stage_left"] + then
    return out


def _stage_left(valuation_round, plan: dict) -> float | None:
    """Seconds left of the running stage (training or scoring: the stages with units and a pace)."""
    stage = valuation_round.status
    progress = valuation_round.progress.get(stage) or {}
    return estimates.remaining_seconds(done=int(progress.get("done", 0)), total=int(progress.get("total", 0)),
                                       elapsed=_elapsed(valuation_round, stage), planned=plan[stage])
