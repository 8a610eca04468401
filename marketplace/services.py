"""Writes of the marketplace: owners, contributions, eval sets. Each is atomic.

A refused upload stores only a `refused` Contribution record with its first reasons
(so the owner can see why), never a pair; an owner keeps only their latest refusal records, and the
counts of what was refused go to the owner's RefusalTally, which only staff see.
"""
from __future__ import annotations

import logging
import unicodedata

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from . import near_index
from .models import (Contribution, DataOwner, EvalPair, EvalSet, NearDupKey, NearDupSignature, PreferencePair,
                     RefusalTally)
from .neardup import NearDupConfig
from .parsing import ParseResult, RowError, UploadLimits, UploadRefused, parse_upload
from .usernames import validate_username

logger = logging.getLogger(__name__)
HASH_QUERY_CHUNK = 900  # below SQLite's variable limit on every version we support
# One message for every copy, exact or near, of anyone's data or of eval data: a refusal must not tell
# a prober whose data, or whether eval data, a pair copies.
REPLICATION_MESSAGE = "too similar to data the marketplace already holds; copies and near-copies are not accepted"


def owner_create(*, username: str, password: str | None = None, email: str = "",
                 display_name: str = "") -> DataOwner:
    User = get_user_model()
    user = User(username=username, email=email)
    if password:
        validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean()
    validate_username(username)
    with transaction.atomic():
        user.save()
        owner = DataOwner(user=user, display_name=display_name)
        owner.full_clean()
        owner.save()
    return owner


def owner_get_or_create(*, username: str) -> tuple[DataOwner, bool]:
    owner = DataOwner.objects.filter(user__username=username).select_related("user").first()
    if owner:
        return owner, False
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is not None:
        return DataOwner.objects.create(user=user), True
    return owner_create(username=username), True


def owner_for_user(user) -> DataOwner:
    owner = DataOwner.objects.filter(user=user).first() if user.is_authenticated else None
    if owner is None:
        raise PermissionDenied("only data owners can do this; this account is not a data owner")
    return owner


def _existing_hashes(hashes: list[str], model) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(hashes), HASH_QUERY_CHUNK):
        chunk = hashes[start:start + HASH_QUERY_CHUNK]
        owner_field = "contribution__owner_id" if model is PreferencePair else "eval_set_id"
        found.update(model.objects.filter(content_hash__in=chunk).values_list("content_hash", owner_field))
    return found


def _check_replication(result: ParseResult, limits: UploadLimits,
                       config: NearDupConfig) -> tuple[list[near_index.Fingerprint], dict[str, int]]:
    """Refuse rows that copy held data (exact hash, then near-duplicate) or an earlier row of the file.
    Returns the pairs' fingerprints (to index them if the file is accepted) and counts by kind."""
    hashes = [p.content_hash for p in result.pairs]
    held = _existing_hashes(hashes, PreferencePair)
    in_eval = _existing_hashes(hashes, EvalPair)
    kinds = {i: "eval" if p.content_hash in in_eval else "exact"
             for i, p in enumerate(result.pairs) if p.content_hash in in_eval or p.content_hash in held}
    prints = near_index.fingerprint(result.pairs, config)
    in_file = {i: j for i, j in near_index.within_file(prints, config).items() if i not in kinds}
    kinds.update(near_index.held_matches(prints, config, skip=kinds.keys() | in_file.keys()))
    refusals = [(result.pairs[i].row, REPLICATION_MESSAGE) for i in kinds]
    refusals += [(result.pairs[i].row, f"nearly the same as row {result.pairs[j].row}") for i, j in in_file.items()]
    for row, message in sorted(refusals):
        result.add_error(RowError(row, None, message), limits)
    counts = {kind: list(kinds.values()).count(kind) for kind in ("exact", "near", "eval")}
    counts["invalid"] = len(in_file)
    return prints, counts


def display_filename(filename: str | None) -> str:
    """The name to store and show: printable characters only (no NUL, which PostgreSQL text refuses,
    no control or bidi characters that would disguise it), at most 255 characters."""
    return "".join(ch for ch in (filename or "") if ch.isprintable() and unicodedata.category(ch) != "Cf")[:255]


def contribution_create(*, owner: DataOwner, file, filename: str, content_type: str | None = None,
                        limits: UploadLimits | None = None) -> Contribution:
    """Parse, validate and store a whole file, or refuse it whole (raises UploadRefused)."""
    limits = limits or UploadLimits.from_settings()
    config = NearDupConfig.from_settings()
    filename = display_filename(filename)
    try:
        result = parse_upload(file, filename=filename, content_type=content_type, limits=limits)
    except UploadRefused as refused:
        refused.contribution = _record_refusal(owner, filename, "", "", refused, {"invalid": refused.n_errors})
        raise
    counts = {"invalid": result.n_errors}
    invalid_rows = result.n_errors  # rows that did not parse: not among result.pairs
    if not result.errors:
        prints, counts = _check_replication(result, limits, config)
    if result.errors:
        refused = UploadRefused(result.errors, result.n_errors)
        # Every row submitted counts toward the owner's daily rows, refused or not: a file of candidates
        # with one known-held row must not test them for free (upload_rate.py).
        refused.n_rows = len(result.pairs) + invalid_rows
        refused.contribution = _record_refusal(owner, filename, result.file_format, result.sha256, refused, counts)
        raise refused
    try:
        contribution = _store_with_fresh_ids(owner, filename, result, prints)
    except IntegrityError:
        # A concurrent upload stored one of these pairs between our check and our insert.
        refused = UploadRefused([RowError(None, None, REPLICATION_MESSAGE)])
        refused.contribution = _record_refusal(owner, filename, result.file_format, result.sha256, refused,
                                               {"exact": 1})
        raise refused
    _tally(owner, uploads_accepted=1, rows_accepted=contribution.n_pairs)
    logger.info("contribution %s: %s accepted %d pairs", contribution.pk, owner, contribution.n_pairs)
    return contribution


def _store_with_fresh_ids(owner: DataOwner, filename: str, result: ParseResult,
                          prints: list[near_index.Fingerprint]) -> Contribution:
    """Pair ids are random (config/ids.py): among millions of pairs one may, rarely, be drawn twice. Such a
    clash is not a copy, so the file is stored again with new ids; a real copy clashes again and is refused."""
    try:
        return _store_contribution(owner, filename, result, prints)
    except IntegrityError:
        return _store_contribution(owner, filename, result, prints)


@transaction.atomic
def _store_contribution(owner: DataOwner, filename: str, result: ParseResult,
                        prints: list[near_index.Fingerprint]) -> Contribution:
    contribution = Contribution(owner=owner, original_name=filename[:255], file_format=result.file_format,
                                sha256=result.sha256, n_pairs=len(result.pairs),
                                status=Contribution.Status.ACCEPTED)
    contribution.full_clean()
    contribution.save()
    pairs = PreferencePair.objects.bulk_create(
        [PreferencePair(contribution=contribution, pair_format=p.pair_format, prompt=p.prompt, chosen=p.chosen,
                        rejected=p.rejected, content_hash=p.content_hash, row_number=p.row)
         for p in result.pairs],
        batch_size=2000,
    )
    near_index.index_rows(NearDupKey, NearDupSignature, zip((pair.pk for pair in pairs), prints), field="pair_id")
    return contribution


def _record_refusal(owner: DataOwner, filename: str, file_format: str, sha256: str,
                    refused: UploadRefused, counts: dict[str, int]) -> Contribution:
    """A bounded record: the first REFUSAL_STORED_ROW_ERRORS reasons, and only the owner's latest
    REFUSAL_RECORDS_KEPT refusals; the tally keeps the counts of all of them."""
    stored = settings.REFUSAL_STORED_ROW_ERRORS
    with transaction.atomic():
        contribution = Contribution.objects.create(
            owner=owner, original_name=(filename or "")[:255], file_format=file_format, sha256=sha256,
            n_pairs=0, status=Contribution.Status.REFUSED,
            row_errors=[e.as_dict() for e in refused.errors[:stored]] + (
                [{"row": None, "field": None, "message": f"{refused.n_errors - stored} more not shown"}]
                if refused.n_errors > stored else []),
        )
        old = Contribution.objects.filter(owner=owner, status=Contribution.Status.REFUSED) \
            .order_by("-created_at", "-id").values_list("pk", flat=True)[settings.REFUSAL_RECORDS_KEPT:]
        Contribution.objects.filter(pk__in=list(old)).delete()
        _tally(owner, uploads_refused=1, rows_exact_copy=counts.get("exact", 0),
               rows_near_copy=counts.get("near", 0), rows_eval=counts.get("eval", 0),
               rows_invalid=counts.get("invalid", 0))
    return contribution


def _tally(owner: DataOwner, **increments: int) -> None:
    day = timezone.localdate()
    RefusalTally.objects.get_or_create(owner=owner, day=day)
    RefusalTally.objects.filter(owner=owner, day=day).update(**{k: F(k) + v for k, v in increments.items()})


def contribution_delete(*, contribution: Contribution) -> None:
    """Owners may withdraw data no valuation round has used yet; used data is part of a record."""
    from valuation.selectors import contribution_used_in_round

    if contribution_used_in_round(contribution=contribution):
        raise ValidationError("this contribution was used by a valuation round and can no longer be deleted")
    contribution.delete()


def eval_set_create(*, name: str, file, filename: str, content_type: str | None = None,
                    created_by=None, limits: UploadLimits | None = None) -> EvalSet:
    limits = limits or UploadLimits.from_settings()
    if EvalSet.objects.filter(name=name).exists():
        raise UploadRefused([RowError(None, "name", f"an eval set named '{name}' already exists")])
    result = parse_upload(file, filename=filename, content_type=content_type, limits=limits)
    if not result.errors:
        held = _existing_hashes([p.content_hash for p in result.pairs], PreferencePair)
        for pair in result.pairs:
            if pair.content_hash in held:
                result.add_error(RowError(pair.row, None, "this pair is an owner's training pair; "
                                          "an eval set must be held out"), limits)
    if result.errors:
        raise UploadRefused(result.errors, result.n_errors)
    eval_set = EvalSet(name=name, original_name=display_filename(filename), sha256=result.sha256,
                       n_pairs=len(result.pairs), created_by=created_by)
    eval_set.full_clean()
    prints = near_index.fingerprint(result.pairs, NearDupConfig.from_settings())
    with transaction.atomic():
        eval_set.save()
        pairs = EvalPair.objects.bulk_create(
            [EvalPair(eval_set=eval_set, pair_format=p.pair_format, prompt=p.prompt, chosen=p.chosen,
                      rejected=p.rejected, content_hash=p.content_hash, row_number=p.row) for p in result.pairs],
            batch_size=2000,
        )
        near_index.index_rows(NearDupKey, NearDupSignature, zip((pair.pk for pair in pairs), prints),
                              field="eval_pair_id")
    return eval_set


def near_index_update(*, rebuild: bool = False) -> int:
    """Index every held pair the near-duplicate index lacks (all of them with `rebuild`, after the band
    settings changed); returns how many pairs were indexed."""
    with transaction.atomic():
        if rebuild:
            NearDupKey.objects.all().delete()
            NearDupSignature.objects.all().delete()
        return near_index.backfill(pair_model=PreferencePair, eval_model=EvalPair, key_model=NearDupKey,
                                   signature_model=NearDupSignature, config=NearDupConfig.from_settings())
