"""Writes of valuation rounds: create, execute (resumable), cancel, approve payouts.

One set of stage functions serves the CLI, the web button, the API and Celery:
`round_execute` runs the stages in order in this process (manage.py run_round), and
`round_queue` hands the round to the Celery workers, which run the same per-owner units
one task each (dispatch.py, stages/units.py). Either way the round is claimed, and left
resumable whatever stops it: an exception marks it failed with the reason; an interrupt
or a killed process leaves its status, and the next run continues where it stopped —
units that are done are skipped.
"""
from __future__ import annotations

import logging
import traceback
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Callable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config import money
from marketplace.models import Contribution, DataOwner, EvalSet, Payee
from marketplace.payees import verified_payees_with_data

from . import lengths
from . import objectives as objectives_module
from . import stages
from .engine.model_card import has_chat_template
from .engine.sampling import DEFAULT_TARGET  # stop sampling once ≤ 1% of the pool could be misallocated
from .leases import holder_alive as _runner_alive
from .leases import process_id as _runner_id
from .ledger import payout_correct  # noqa: F401  (corrections of approved payouts live in ledger.py)
from .models import (BaseModel, Composition, Estimator, Payout, PayoutPolicy, RoundExclusion, RoundOwner, Utility,
                     ValuationRound)
from .stages.common import SnapshotChanged, snapshot_check

logger = logging.getLogger(__name__)
ProgressFn = Callable[[str, int, int], None]
STALE_HEARTBEAT = timedelta(minutes=15)
EXACT_LIMIT = 24  # 2^24 coalitions: under a minute of array arithmetic on cached scores
DEFAULT_BUDGET = 1 << 20  # utility evaluations: `auto` is exact up to 20 owners, sampled above


def _validate_choice(value: str, choices, label: str) -> None:
    if value not in choices.values:
        raise ValidationError(f"unknown {label} '{value}'; choose one of: {', '.join(choices.values)}")


def _parse_pool(pool, *, currency: str, decimals: int) -> Decimal:
    column = ValuationRound._meta.get_field("pool")
    return money.amount_parse(pool, decimals=decimals, label="pool", currency=currency,
                              max_digits=column.max_digits, decimal_places=column.decimal_places)


def round_create(*, name: str, pool, eval_set: EvalSet, base_model: BaseModel | None = None,
                 base_model_dir: str | None = None, utility: str = Utility.PREFERENCE_ACCURACY,
                 composition: str = Composition.SUM, estimator: str = Estimator.AUTO, seed: int = 0,
                 currency: str = "USD", decimals: int | None = None, training: dict | None = None,
                 preset: str | None = None, beta: float | None = None,
                 owners: list[str] | None = None, budget: int | None = None, target: float | None = None,
                 objectives=None, payout_objective=None, decoding: dict | None = None, prompts: int | None = None,
                 data_quality: bool = False, data_quality_options: dict | None = None,
                 payout_policy: str = PayoutPolicy.CLIP, created_by=None) -> ValuationRound:
    """Validate the request, snapshot the players' data, record the full config. The players are verified
    payees (`owners`: payee names or their accounts' usernames; default: every verified payee with data).

    `objectives`, `payout_objective`, `decoding` and `prompts` configure a `reward` round (objectives.py).
    `data_quality` opts the round into the data-quality stage (pair values, flags, clusters) after
    valuing; `data_quality_options` tune it (engine/data_quality.OPTIONS). `payout_policy` is what the pool
    is split by (engine/allocation.py): the Shapley value (`clip`) or the split-proof margin share.
    `preset` names the training config (engine/presets.py: tiny, lora, auto) that `training` overrides key by
    key; without one `auto` chooses by the base model's size, and a `tiny` choice records no preset (the
    training config of rounds from before presets)."""
    _validate_choice(utility, Utility, "utility")
    _validate_choice(composition, Composition, "composition")
    _validate_choice(estimator, Estimator, "estimator")
    _validate_choice(payout_policy, PayoutPolicy, "payout policy")
    if payout_policy == PayoutPolicy.MARGIN_SHARE and utility == Utility.REWARD:
        # The margin share attributes eval-pair margins; a reward round has judged generations, no margins.
        raise ValidationError("payout policy 'margin_share' needs a margin utility (preference_accuracy or "
                              "bt_loglik), not 'reward'")
    currency, decimals = money.currency_resolve(currency, decimals)  # decimals default to the currency's
    amount = _parse_pool(pool, currency=currency, decimals=decimals)
    if ValuationRound.objects.filter(name=name).exists():
        raise ValidationError(f"a round named '{name}' already exists")
    base_dir, base_model = _base_model_resolve(base_model, base_model_dir)
    participants = _participants(owners)
    reward = objectives_module.reward_settings_for(utility, objectives=objectives, payout_objective=payout_objective,
                                                   decoding=decoding, prompts=prompts, seed=seed,
                                                   n_owners=len(participants))
    if reward is not None and budget is None:
        budget = objectives_module.DEFAULT_BUDGET  # each coalition is a decoding pass, not array arithmetic
    budget, target = _check_budget(budget, target, estimator, len(participants))
    config = stages.round_config(training=training or {}, seed=seed, beta=beta, budget=budget, target=target,
                                 preset=preset, base_dir=base_dir)
    if has_chat_template(base_dir):
        # Conversations reach this round's model through its chat template (stages.common.uses_chat); a
        # round without the key flattens them, as every round did before templates were used.
        config["chat_template"] = True
    # Scored longest first, with little padding (engine/scoring.py); a round without the key keeps the eval
    # set's order, so every earlier round replays bit for bit.
    config["score_order"] = "length"
    config["screening"] = stages.screening_config()  # thresholds as of creation: a replay screens with these
    config["payout_policy"] = payout_policy
    if reward is not None:
        config["reward"] = reward
    if data_quality or data_quality_options:
        data_quality = True
        config["data_quality"] = stages.data_quality_config(data_quality_options, seed=seed)
    # Measured as TRL will cut them: an owner with no trainable pair is left out (with the reason), not
    # allowed to fail the round for everyone. Checks above ran with the larger count, so they still hold.
    checks = lengths.participants_check(participants, base_dir=base_dir, config=config)
    config["eval_lengths"] = lengths.eval_set_check(eval_set, base_dir=base_dir, config=config)
    usable = lengths.usable_or_refuse(checks)
    config["excluded_owners"] = len(checks) - len(usable)  # the pages read RoundExclusion only when there are some
    base_hash = _base_model_hash(base_dir, base_model)
    with transaction.atomic():
        valuation_round = ValuationRound(
            name=name, created_by=created_by, eval_set=eval_set, eval_set_hash=stages.eval_set_hash(eval_set, chat="chat_template" in config),
            base_model_path=str(base_dir), base_model_hash=base_hash, base_model=base_model, utility=utility,
            composition=composition, estimator=estimator, payout_policy=payout_policy, seed=seed, config=config,
            pool=amount, currency=currency, decimals=decimals, status=ValuationRound.Status.DRAFT,
            data_quality=data_quality, progress={stage: {"done": 0, "total": 0} for stage in ValuationRound.STAGES})
        valuation_round.full_clean()
        valuation_round.save()
        for index, check in enumerate(usable):
            _participant_create(valuation_round, index, check.owner, check.contributions, check=check,
                                payee=check.payee)
        RoundExclusion.objects.bulk_create([
            RoundExclusion(round=valuation_round, owner=c.owner, n_pairs=c.report.n_pairs,
                           n_dropped=c.report.n_dropped, reason=c.reason) for c in checks if c.reason])
    logger.info("round %s created with %d owners (%d excluded)", valuation_round.pk, len(usable),
                len(checks) - len(usable))
    return valuation_round


def _base_model_resolve(base_model: BaseModel | None, base_model_dir: str | None) -> tuple[Path, BaseModel | None]:
    if (base_model is None) == (base_model_dir is None):
        raise ValidationError("give the base model either as a registered one or as a directory, not both or neither")
    if base_model is not None:
        if not (Path(base_model.path) / "config.json").is_file():
            raise ValidationError(f"registered base model '{base_model.name}': its directory {base_model.path} is "
                                  "missing or incomplete; re-import it")
        return Path(base_model.path), base_model
    base_dir = Path(base_model_dir).expanduser().resolve()
    if not (base_dir / "config.json").is_file():
        raise ValidationError(f"'{base_model_dir}' is not a Hugging Face model directory (no config.json)")
    return base_dir, BaseModel.objects.filter(path=str(base_dir)).first()


def _base_model_hash(base_dir: Path, base_model: BaseModel | None) -> str:
    """The hash the round records; for a registered model it must still be the one registered."""
    digest = stages.model_dir_hash(base_dir)
    if base_model is not None and digest != base_model.content_hash:
        raise ValidationError(f"base model '{base_model.name}': the files in {base_dir} changed since it was "
                              "registered (content hash differs); re-import it under a new name")
    return digest


def _check_budget(budget: int | None, target: float | None, estimator: str, n: int) -> tuple[int, float]:
    budget = DEFAULT_BUDGET if budget is None else budget
    target = DEFAULT_TARGET if target is None else target
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValidationError("budget must be a positive number of utility evaluations")
    if not 0 < target < 1:
        raise ValidationError("target must be a share of the pool between 0 and 1 (e.g. 0.01)")
    if estimator == Estimator.EXACT and (n > EXACT_LIMIT or (1 << n) > budget):
        raise ValidationError(f"exact Shapley for {n} owners needs 2^{n} = {1 << n:,} utility evaluations "
                              f"(at most {EXACT_LIMIT} owners, budget {budget:,}); use 'auto' or a sampled estimator")
    if estimator not in (Estimator.EXACT, Estimator.AUTO) and budget < 4 * n + 2:
        raise ValidationError(f"a budget of {budget} evaluations is too small for {n} owners")
    return budget, target


def _participants(names: list[str] | None) -> list[tuple[Payee, DataOwner, list[Contribution]]]:
    """The round's players: verified payees (all of them, or those named), each with the accepted data of
    its active accounts and the account that stands for it. A name is a payee's name or one of its
    accounts' usernames. Naming an unverified, suspended or inactive one is refused, not skipped."""
    accepted = Contribution.objects.filter(status=Contribution.Status.ACCEPTED, n_pairs__gt=0)
    payees = _chosen_payees(names) if names else list(verified_payees_with_data())
    players, missing = [], []
    for payee in sorted(payees, key=lambda p: (p.name.casefold(), p.name)):
        accounts = payee.accounts.filter(user__is_active=True).select_related("user", "payee")
        contributions = list(accepted.filter(owner__in=accounts).select_related("owner__user").order_by("id"))
        if not contributions:
            missing.append(payee.name)
            continue
        holder = min((c.owner for c in contributions), key=lambda o: o.user.get_username())
        players.append((payee, holder, contributions))
    if names and missing:
        raise ValidationError(f"no accepted data for owner(s): {', '.join(missing)}")
    if not players:
        raise ValidationError("no verified owner has accepted data: nothing to value (staff verify owners "
                              "with `manage.py verify_owner` or the admin)")
    return players


def _chosen_payees(names: list[str]) -> list[Payee]:
    by_name = {p.name: p for p in Payee.objects.filter(name__in=names)}
    accounts = {o.user.get_username(): o for o in
                DataOwner.objects.filter(user__username__in=names).select_related("user", "payee")}
    chosen: dict[int, Payee] = {}
    problems = []
    for name in dict.fromkeys(names):
        account = accounts.get(name)
        payee = by_name.get(name) or (account.payee if account else None)
        if account is None and payee is None:
            problems.append(f"'{name}' is neither a data owner nor a payee")
        elif payee is None:
            problems.append(f"owner '{name}' is not verified (pending): unverified owners are not players")
        elif payee.status != Payee.Status.VERIFIED:
            problems.append(f"'{name}' ({'payee' if name == payee.name else 'an account of payee'} "
                            f"'{payee.name}') is {payee.get_status_display()}: only verified payees are players")
        elif name not in by_name and not account.user.is_active:
            problems.append(f"owner '{name}' is inactive: inactive accounts are not players")
        elif not payee.accounts.filter(user__is_active=True).exists():
            problems.append(f"payee '{payee.name}' has no active account: inactive accounts are not players")
        else:
            chosen[payee.pk] = payee
    if problems:
        raise ValidationError("; ".join(problems))
    return list(chosen.values())


def _participant_create(valuation_round, index, owner, contributions, *, check, payee=None) -> RoundOwner:
    pairs = check.pairs
    participant = RoundOwner.objects.create(round=valuation_round, owner=owner, payee=payee, index=index,
                                            n_pairs=len(pairs), n_usable=check.report.n_usable,
                                            n_truncated=check.report.n_truncated, n_tokens=check.report.n_tokens,
                                            data_hash=stages.pairs_digest(pairs),
                                            prompt_format=check.prompt_format)
    participant.contributions.set(contributions)
    return participant


def round_queue(*, valuation_round: ValuationRound) -> ValuationRound:
    """Mark the round queued and hand it to a Celery worker once the transaction commits."""
    from .tasks import round_execute_task

    if valuation_round.status not in (ValuationRound.Status.DRAFT, ValuationRound.Status.FAILED):
        raise ValidationError(f"a {valuation_round.status} round cannot be queued")
    round_snapshot_check(valuation_round=valuation_round)
    ValuationRound.objects.filter(pk=valuation_round.pk).update(status=ValuationRound.Status.QUEUED, error="")
    transaction.on_commit(lambda: round_execute_task.delay(valuation_round.pk))
    valuation_round.refresh_from_db()
    return valuation_round


def round_claim(*, round_id: int, runner: str | None = None) -> ValuationRound:
    """Take the round for this process (or for ``runner``, e.g. the Celery workers), unless a live runner holds it."""
    me = runner or _runner_id()
    current = ValuationRound.objects.get(pk=round_id)
    holder = current.runner
    stale = current.heartbeat_at is None or timezone.now() - current.heartbeat_at > STALE_HEARTBEAT
    if holder and holder != me and _runner_alive(holder) and not stale:
        raise ValidationError(f"round '{current.name}' is being run by {holder}")
    claimed = ValuationRound.objects.filter(pk=round_id, runner=holder).filter(
        ~Q(status__in=[ValuationRound.Status.DONE, ValuationRound.Status.CANCELLED])
    ).update(runner=me, heartbeat_at=timezone.now())
    if not claimed:
        current.refresh_from_db()
        raise ValidationError(f"round '{current.name}' is {current.status} and cannot be run")
    current.refresh_from_db()
    return current


def round_execute(*, round_id: int, on_progress: ProgressFn | None = None) -> ValuationRound:
    """Run (or resume) every remaining stage of the round. Idempotent."""
    existing = ValuationRound.objects.get(pk=round_id)
    if existing.status == ValuationRound.Status.DONE:
        stages.run_data_quality(existing, on_progress=on_progress)  # resumes an interrupted opt-in stage; else no-op
        return existing
    round_snapshot_check(valuation_round=existing)
    valuation_round = round_claim(round_id=round_id)
    if valuation_round.started_at is None:
        ValuationRound.objects.filter(pk=round_id).update(started_at=timezone.now())
    try:
        stages.run_training(valuation_round, on_progress=on_progress)
        stages.run_scoring(valuation_round, on_progress=on_progress)
        stages.run_screening(valuation_round, on_progress=on_progress)  # records its own failure; never raises
        stages.run_valuing(valuation_round, on_progress=on_progress)
    except Exception as exc:
        round_fail(round_id=round_id, exc=exc)
        raise
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): keep the status so the next run resumes here.
        ValuationRound.objects.filter(pk=round_id).update(runner="")
        raise
    ValuationRound.objects.filter(pk=round_id).update(runner="", finished_at=timezone.now())
    valuation_round.refresh_from_db()
    stages.run_data_quality(valuation_round, on_progress=on_progress)  # opt-in; records its own failure
    return valuation_round


def round_snapshot_check(*, valuation_round: ValuationRound) -> None:
    """A round runs on exactly the data it snapshotted. When some of it is gone (an owner withdrew it from a
    round that had not run), the round fails with that plain reason and the run is refused."""
    try:
        snapshot_check(valuation_round)
    except SnapshotChanged as exc:
        ValuationRound.objects.filter(pk=valuation_round.pk).exclude(
            status__in=[ValuationRound.Status.DONE, ValuationRound.Status.CANCELLED]).update(
            status=ValuationRound.Status.FAILED, runner="", error=exc.unnamed)
        raise


def round_fail(*, round_id: int, exc: BaseException) -> None:
    """Mark the round failed with the reason (and release it); running it again resumes it."""
    logger.error("round %s failed", round_id, exc_info=exc)
    ValuationRound.objects.filter(pk=round_id).exclude(status=ValuationRound.Status.DONE).update(
        status=ValuationRound.Status.FAILED, runner="", error=f"{type(exc).__name__}: {exc}\n\n"
        + "".join(traceback.format_exception(exc))[-4000:])


def round_cancel(*, valuation_round: ValuationRound) -> ValuationRound:
    if valuation_round.status in (ValuationRound.Status.DONE, ValuationRound.Status.CANCELLED):
        raise ValidationError(f"a {valuation_round.status} round cannot be cancelled")
    ValuationRound.objects.filter(pk=valuation_round.pk).update(status=ValuationRound.Status.CANCELLED)
    valuation_round.refresh_from_db()
    return valuation_round


def _check_players_still_verified(valuation_round: ValuationRound) -> None:
    """A payee suspended after the round was created (e.g. found to be one person's second payee) must not
    be paid by approving it: its draft payouts stay drafts and the round is run again without it."""
    lapsed = sorted(valuation_round.participants.exclude(payee=None).exclude(payee__status=Payee.Status.VERIFIED)
                    .values_list("payee__name", flat=True))
    if lapsed:
        raise ValidationError(f"payee(s) {', '.join(lapsed)} are no longer verified; these payouts cannot be "
                              "approved (create the round again without them, or verify them again)")


@transaction.atomic
def payout_approve(*, valuation_round: ValuationRound, approved_by) -> int:
    """Approve every draft payout of a finished round, once. Returns how many rows were approved."""
    locked = ValuationRound.objects.select_for_update().get(pk=valuation_round.pk)
    if locked.status != ValuationRound.Status.DONE:
        raise ValidationError(f"only a finished round's payouts can be approved (this one is {locked.status})")
    _check_players_still_verified(locked)
    from .screening import approval_blockers  # the semantic screen: flagged owners need staff acknowledgement

    blockers = approval_blockers(locked)
    if blockers:
        raise ValidationError(f"payouts of '{locked.name}' cannot be approved until staff acknowledge the semantic "
                              f"screen: {'; '.join(blockers)}")
    now = timezone.now()
    # Compare-and-set: of two approvals at once, only one finds the round unapproved (on any database).
    if not ValuationRound.objects.filter(pk=locked.pk, approved_at__isnull=True).update(
            approved_at=now, approved_by=approved_by):
        locked.refresh_from_db()
        raise ValidationError(f"payouts of '{locked.name}' were already approved on {locked.approved_at:%Y-%m-%d}")
    return Payout.objects.filter(round=locked, status=Payout.Status.DRAFT).update(
        status=Payout.Status.APPROVED, approved_at=now)
