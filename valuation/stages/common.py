"""Shared pieces of the round stages: turning ORM rows into engine inputs, the round's
recorded config, progress and timing updates."""
from __future__ import annotations

import dataclasses
import json
import traceback
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from marketplace.models import PairFormat
from marketplace.parsing import flatten_messages

from ..models import ValuationRound


def failure_text(exc: BaseException) -> str:
    """What a failed round, stage or check records for staff: a refusal (ValidationError) is its own plain
    message; anything else is a bug or an outage, so its traceback is kept for whoever fixes it. Owners
    never see this text (valuation/selectors.py `error_for`)."""
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return f"{type(exc).__name__}: {exc}\n\n" + "".join(traceback.format_exception(exc))[-4000:]


def _as_text(value: str, pair_format: str) -> str:
    return flatten_messages(json.loads(value)) if pair_format == PairFormat.CONVERSATIONAL else value


def _as_messages(value: str):
    from valuation.engine.data import messages_of

    return messages_of(json.loads(value))


def uses_chat(valuation_round) -> bool:
    """Whether the round hands conversations to the engine as messages: decided once at creation from its base
    model (`chat_template` in its config), so every stage and a replay read the pairs the data hash was taken
    of. Rounds from before the decision have no key: they flattened, as their hashes say."""
    return bool(valuation_round.config.get("chat_template"))


def keeps_messages(rows, *, chat: bool) -> bool:
    """A dataset's conversations stay messages when the base model has a chat template and every row is one:
    TRL trains one kind of dataset (text or conversational), so a dataset mixing them is flattened whole."""
    return chat and bool(rows) and all(r.pair_format == PairFormat.CONVERSATIONAL for r in rows)


def to_engine_pairs(rows, *, chat: bool = False) -> list:
    """Engine pairs of PreferencePair rows: conversations as messages (rendered by the base model's chat template,
    `keeps_messages`) or flattened to "role: content" text, text pairs as they are."""
    from valuation.engine.data import Pair

    rows = list(rows)
    if keeps_messages(rows, chat=chat):
        return [Pair(prompt=_as_messages(r.prompt), chosen=_as_messages(r.chosen), rejected=_as_messages(r.rejected))
                for r in rows]
    return [Pair(prompt=_as_text(r.prompt, r.pair_format), chosen=_as_text(r.chosen, r.pair_format),
                 rejected=_as_text(r.rejected, r.pair_format)) for r in rows]


def prompt_format(rows, *, chat: bool) -> str:
    """What a round records per owner: how its pairs' prompts reach the model."""
    rows = list(rows)
    n_chat = sum(r.pair_format == PairFormat.CONVERSATIONAL for r in rows)
    n_text = len(rows) - n_chat
    if not n_chat:
        return "text"
    if keeps_messages(rows, chat=chat):
        return "chat template"
    if not n_text:
        return "conversation flattened (base model has no chat template)"
    why = "TRL trains one format per dataset" if chat else "base model has no chat template"
    return f"mixed: {n_text} text, {n_chat} conversation flattened ({why})"


# Upload order (ids are random, config/ids.py), then row order: the data hash is reproducible.
PAIR_ORDER = ("contribution__created_at", "contribution_id", "row_number")


def owner_rows(contributions) -> list:
    from marketplace.models import PreferencePair

    rows = PreferencePair.objects.filter(contribution__in=contributions).order_by(*PAIR_ORDER)
    return list(rows.iterator(chunk_size=2000))


def owner_pairs(contributions, *, chat: bool = False) -> list:
    return to_engine_pairs(owner_rows(contributions), chat=chat)


def snapshot_pairs(participant) -> tuple[list, list]:
    """A participant's pairs exactly as the round snapshotted them when it was created: (rows, engine pairs),
    in the order the data hash was taken. Every stage that reads an owner's data reads it here, so later
    uploads never enter a round, and data that changed under it is refused rather than silently used."""
    from marketplace.models import PreferencePair

    rows = list(PreferencePair.objects.filter(contribution__in=participant.contributions.all()).order_by(*PAIR_ORDER))
    pairs = to_engine_pairs(rows, chat=uses_chat(participant.round))
    if len(rows) != participant.n_pairs or pairs_digest(pairs) != participant.data_hash:
        what = (f"withdrew data this round snapshotted ({participant.n_pairs} pairs at creation, {len(rows)} now): "
                "the data changed since the round was created, so the round cannot run as created; create a new round")
        raise SnapshotChanged(f"owner '{participant.owner}' {what}", unnamed=f"an owner {what}")
    return rows, pairs


def eval_pairs(eval_set, *, chat: bool = False) -> list:
    return to_engine_pairs(eval_set.pairs.order_by("row_number"), chat=chat)


class SnapshotChanged(ValidationError):
    """Data a round snapshotted at creation is gone (an owner withdrew it before the round ran): the round
    can no longer run as recorded. `unnamed` says so without naming the owner (for the round's error,
    which its other participants may read)."""

    def __init__(self, message: str, unnamed: str | None = None):
        super().__init__(message)
        self.unnamed = unnamed or message


def participant_pairs(participant) -> list:
    """Exactly the engine pairs the round snapshotted for this owner, never whatever the owner holds now."""
    return snapshot_pairs(participant)[1]


def snapshot_check(valuation_round) -> None:
    """Refuse to run a round whose snapshot (each owner's pairs, the eval set) no longer holds."""
    for participant in valuation_round.participants.select_related("owner__user").order_by("index"):
        participant_pairs(participant)
    if eval_set_hash(valuation_round.eval_set, chat=uses_chat(valuation_round)) != valuation_round.eval_set_hash:
        raise SnapshotChanged(f"eval set '{valuation_round.eval_set}' changed since the round was created; "
                              "create a new round")


def pairs_digest(pairs) -> str:
    from valuation.engine.hashing import pairs_hash

    return pairs_hash(pairs)


def eval_set_hash(eval_set, *, chat: bool = False) -> str:
    return pairs_digest(eval_pairs(eval_set, chat=chat))


def model_dir_hash(path: Path) -> str:
    from valuation.engine.base_model import RECORD_FILES
    from valuation.engine.hashing import directory_hash

    return directory_hash(path, exclude=RECORD_FILES)  # the weights and tokenizer, not the run records


def training_config(config: dict):
    from valuation.engine.dpo import TrainingConfig

    fields = dict(config["training"])
    for key in ("loss_types", "loss_weights"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return TrainingConfig(**fields)


def round_config(*, training: dict, seed: int, beta: float | None, budget: int, target: float,
                 preset: str | None = None, base_dir: Path | None = None) -> dict:
    """Everything that determines the result, as JSON: training config (with seed), beta, versions.

    The training config is the named preset (engine/presets.py; `auto` resolved against the base model in
    ``base_dir``) with ``training``'s single keys on top. Without a preset `auto` decides
    (`presets.default_preset`, recorded with `requested` None); when it decides `tiny` no preset is recorded:
    `TrainingConfig()` with the overrides, the training config (and owner-model cache keys) of rounds from
    before presets."""
    cfg, chosen = _training_from_preset(preset, training, seed=seed, beta=beta, base_dir=base_dir)
    config = {"training": dataclasses.asdict(cfg), "beta": cfg.beta, "seed": seed, "budget": budget,
              "target": target, "versions": _library_versions()}
    if chosen:
        config["preset"] = chosen
    from valuation.engine.base_model import threads_to_use

    config["threads"] = threads_to_use()  # every process training or scoring for the round uses this many
    dtype = _checked_dtype(settings.VALUATION_DTYPE)
    if dtype != "float32":
        config["dtype"] = dtype  # float32 rounds record none: the precision every round had before the setting
    return config


def _training_from_preset(preset, training: dict, *, seed: int, beta, base_dir) -> tuple:
    """(TrainingConfig, {"name", "requested"} or None) of a round; a ValidationError says what is wrong."""
    from valuation.engine import presets
    from valuation.engine.dpo import TrainingConfig

    names = {f.name for f in dataclasses.fields(TrainingConfig)}
    unknown = set(training) - names
    if unknown:
        raise ValidationError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    overrides = dict(training, seed=seed)
    if beta is not None:
        overrides["beta"] = beta
    try:
        name = presets.default_preset(base_dir) if preset is None else presets.resolve(preset, base_dir)
        cfg = presets.effective_config(name, overrides)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if preset is None and name == presets.TINY:
        return cfg, None
    return cfg, {"name": name, "requested": preset}


def preset_of(config: dict) -> dict:
    """The preset a round's config was made from ({"name", "requested"}): `tiny` for rounds without one."""
    return config.get("preset") or {"name": "tiny", "requested": None}


def _checked_dtype(dtype: str) -> str:
    from valuation.engine.runtime import DTYPES

    if dtype not in DTYPES:
        from django.core.exceptions import ValidationError

        raise ValidationError(f"VALUATION_DTYPE '{dtype}' is not one of: {', '.join(DTYPES)}")
    return dtype


def runtime_of(valuation_round):
    """Where this process trains and scores for the round: its own device, the round's recorded precision."""
    from valuation.engine.runtime import Runtime

    return Runtime(device=settings.VALUATION_DEVICE, dtype=valuation_round.config.get("dtype", "float32"),
                   threads=int(valuation_round.config.get("threads", 0)))


def _library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "numpy", "django"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out



def set_status(valuation_round: ValuationRound, status: str) -> None:
    """Move an unfinished round to ``status``; a done or cancelled round never moves back (a late duplicate
    task must not reopen it)."""
    ValuationRound.objects.filter(pk=valuation_round.pk).exclude(
        status__in=[ValuationRound.Status.DONE, ValuationRound.Status.CANCELLED]
    ).update(status=status, heartbeat_at=timezone.now(), error="")
    valuation_round.status = status


def report_progress(valuation_round, stage: str, done: int, total: int, on_progress) -> None:
    valuation_round.progress[stage] = {"done": done, "total": total}
    ValuationRound.objects.filter(pk=valuation_round.pk).update(progress=valuation_round.progress,
                                                                 heartbeat_at=timezone.now())
    if on_progress:
        on_progress(stage, done, total)


def record_timing(valuation_round, stage: str, seconds: float) -> None:
    valuation_round.timings[stage] = round(valuation_round.timings.get(stage, 0.0) + seconds, 3)
    ValuationRound.objects.filter(pk=valuation_round.pk).update(timings=valuation_round.timings)


def check_not_cancelled(valuation_round) -> None:
    if ValuationRound.objects.filter(pk=valuation_round.pk, status=ValuationRound.Status.CANCELLED).exists():
        raise RuntimeError("round was cancelled")


