"""Verification of owners: which accounts are paid, and as whom (issue 24).

Signup is open, so an account alone proves nothing: the same data uploaded from three new accounts
earned twice what it earned from one. An account therefore earns only once staff have verified it,
which attaches it to a `Payee`; a round's players are verified payees, each one player however many
accounts it has (valuation/services.py). The status is the payee's: pending → verified → suspended,
and back, recording who changed it and when. Only staff write here (admin, `manage.py verify_owner`,
the owners API); nothing an owner sends reaches these functions.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import Contribution, DataOwner, Payee

STATUS_MEANING = {
    Payee.Status.PENDING: "Your account is waiting for verification by the marketplace staff. You can upload data, "
                          "but it enters no valuation round and earns nothing until your account is verified.",
    Payee.Status.VERIFIED: "Your account is verified: your accepted data takes part in valuation rounds, and is "
                           "paid to your payee{payee}.",
    Payee.Status.SUSPENDED: "Payments to your payee{payee} are suspended: your data enters no valuation round "
                            "and earns nothing until the staff lift the suspension.",
}


def status_meaning(owner: DataOwner) -> str:
    """What the owner's status means for their data and pay, in words the owners' page shows."""
    payee = f" '{owner.payee.name}'" if owner.payee_id else ""
    return STATUS_MEANING[Payee.Status(owner.verification)].format(payee=payee)


def _check_status(status: str) -> None:
    if status not in Payee.Status.values:
        raise ValidationError(f"unknown status '{status}'; choose one of: {', '.join(Payee.Status.values)}")


def payee_set_status(*, payee: Payee, status: str, changed_by=None) -> Payee:
    """Set a payee's status (for all its accounts at once), recording who and when."""
    _check_status(status)
    payee.status = status
    payee.status_changed_by = changed_by
    payee.status_changed_at = timezone.now()
    payee.full_clean()
    payee.save(update_fields=["status", "status_changed_by", "status_changed_at"])
    return payee


@transaction.atomic
def owner_set_status(*, owner: DataOwner, status: str, changed_by=None, payee_name: str | None = None) -> Payee:
    """Verify or suspend an account's payee. With `payee_name`, the account first joins the payee of that
    name (created if new): several accounts of one person are then one player, paid once. Without it, an
    account that has no payee yet gets its own, named after the username."""
    _check_status(status)
    owner = DataOwner.objects.select_for_update(of=("self",)).select_related("user", "payee").get(pk=owner.pk)
    if payee_name is not None:
        payee_name = payee_name.strip()
        if not payee_name:
            raise ValidationError("a payee name cannot be empty")
        payee = Payee.objects.filter(name=payee_name).first() or Payee(name=payee_name)
    elif owner.payee_id:
        payee = owner.payee
    else:
        username = owner.user.get_username()
        if Payee.objects.filter(name=username).exists():
            # Joining an existing payee changes who is paid: it must be asked for by name.
            raise ValidationError(f"a payee named '{username}' already exists; name it to add this account to it "
                                  "(--payee), or name another payee")
        payee = Payee(name=username)
    if payee.pk is None:
        payee.full_clean()
        payee.save()
    if owner.payee_id != payee.pk:
        owner.payee = payee
        owner.save(update_fields=["payee"])
    return payee_set_status(payee=payee, status=status, changed_by=changed_by)


def owners_by_username(usernames: list[str]) -> list[DataOwner]:
    """The owners named, in the order given; every unknown name reported at once."""
    found = {o.user.get_username(): o for o in DataOwner.objects.filter(user__username__in=usernames)
             .select_related("user", "payee")}
    missing = [name for name in usernames if name not in found]
    if missing:
        raise ValidationError(f"no data owner named: {', '.join(missing)}")
    return [found[name] for name in usernames]


def verified_payees() -> QuerySet[Payee]:
    return Payee.objects.filter(status=Payee.Status.VERIFIED).order_by("name")


def verified_payees_with_data() -> QuerySet[Payee]:
    """The default players: verified payees holding accepted data through an active account (one without
    data, e.g. after withdrawing it, is not a player)."""
    held = Contribution.objects.filter(status=Contribution.Status.ACCEPTED, n_pairs__gt=0,
                                       owner__user__is_active=True).values("owner__payee")
    return verified_payees().filter(pk__in=held)
