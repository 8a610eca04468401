"""Reads of valuation rounds. Owner-facing reads are scoped here: an owner sees the
rounds they took part in, their own value and payout, and round totals — never
another owner's row.

A round's player is a payee (valuation/services.py): every account of the payee sees the
payee's rows, and only those (`players_of`). A row keyed by (round, owner) — value, payout,
pair value — is the payee the round recorded for that owner, not whoever holds the account now."""
from __future__ import annotations

from decimal import Decimal

import numpy as np
from django.core.cache import cache
from django.db.models import Exists, IntegerField, OuterRef, Q, QuerySet, Sum, TextField, Value
from django.http import Http404

from .models import ObjectiveValue, OwnerValue, Payout, RoundExclusion, RoundOwner, ValuationRound


# What an owner reads about a failure (of a round, its data-quality stage, a fidelity check): the recorded error is
# for the staff who can fix it and may hold a traceback, file paths and other owners' names.
OWNER_FAILURE_MESSAGE = "the round failed; the marketplace staff have been told"


def error_for(error: str, *, staff: bool) -> str:
    """A recorded error as the reader may see it: staff in full, anyone else the plain message (or nothing)."""
    if not error:
        return ""
    return error if staff else OWNER_FAILURE_MESSAGE


def players_of(*, user) -> QuerySet[RoundOwner]:
    """The participations whose value and pay are this user's: those of the payee the user's account
    belongs to, and (rounds from before payees) those of the account itself."""
    return RoundOwner.objects.filter(Q(payee__accounts__user=user) | Q(payee__isnull=True, owner__user=user))


def excluded_as(*, user, prefix: str = "") -> Q:
    """Exclusions (RoundExclusion) that are this user's: the excluded account's, or its payee's."""
    return Q(**{f"{prefix}owner__user": user}) | Q(**{f"{prefix}owner__payee__accounts__user": user})


def mine(*, user, round_field: str = "round") -> Exists:
    """A filter for rows keyed by (round, owner) — values, payouts, pair values — that are this user's."""
    return Exists(players_of(user=user).filter(round=OuterRef(round_field), owner=OuterRef("owner")))


def round_player(*, valuation_round: ValuationRound, owner) -> RoundOwner | None:
    """The player an owner's account is part of in a round (its payee's participation), if any."""
    by_payee = Q(payee_id=owner.payee_id) if owner.payee_id else Q(pk__in=[])
    return valuation_round.participants.filter(by_payee | Q(payee__isnull=True, owner=owner)) \
        .select_related("owner__user", "owner__payee").first()


def contribution_used_in_round(*, contribution) -> bool:
    """Data is part of the record once a round running or finished holds it. A draft, failed or cancelled
    round does not lock it: the owner may still withdraw it, and that round then refuses to run."""
    locking = [ValuationRound.Status.DONE, *ValuationRound.ACTIVE]
    return RoundOwner.objects.filter(contributions=contribution, round__status__in=locking).exists()


def round_list() -> QuerySet[ValuationRound]:
    return ValuationRound.objects.select_related("eval_set", "base_model")


def round_list_for(*, user) -> QuerySet[ValuationRound]:
    if user.is_staff:
        return round_list()
    # An owner left out of a round still sees it, and why (round_exclusions).
    return round_list().filter(Exists(players_of(user=user).filter(round=OuterRef("pk")))
                               | excluded_as(user=user, prefix="exclusions__")).distinct()


def round_get(*, round_id: int) -> ValuationRound:
    found = round_list().filter(pk=round_id).first()
    if found is None:
        raise Http404("no such round")
    return found


def round_get_for(*, user, round_id: int) -> ValuationRound:
    found = round_list_for(user=user).filter(pk=round_id).first()
    if found is None:
        raise Http404("no such round")
    return found


def round_participants(*, valuation_round: ValuationRound) -> QuerySet[RoundOwner]:
    # Without the models' metrics: they hold each fine-tune's step log (training_selectors reads it when drawn).
    return valuation_round.participants.select_related("owner__user", "owner__payee", "owner_model").defer(
        "owner_model__metrics").order_by("index")


def round_exclusions(*, valuation_round: ValuationRound, user=None) -> QuerySet[RoundExclusion]:
    """Owners left out of the round at creation, with the reason (an owner sees only their own)."""
    qs = valuation_round.exclusions.select_related("owner__user").order_by("owner__user__username")
    if user is not None and not user.is_staff:
        qs = qs.filter(excluded_as(user=user))
    return qs


def round_values(*, valuation_round: ValuationRound, user=None) -> QuerySet[OwnerValue]:
    qs = valuation_round.values.select_related("owner__user", "owner__payee").order_by("-shapley")
    if user is not None and not user.is_staff:
        qs = qs.filter(mine(user=user))
    return qs


def round_payouts(*, valuation_round: ValuationRound, user=None) -> QuerySet[Payout]:
    """What the round pays: the active payout per owner (corrections applied; see round_ledger)."""
    qs = valuation_round.payouts.active().select_related("owner__user", "owner__payee", "round") \
        .order_by("-amount", "owner__user__username")
    if user is not None and not user.is_staff:
        qs = qs.filter(mine(user=user))
    return qs


def round_ledger(*, valuation_round: ValuationRound, user=None) -> QuerySet[Payout]:
    """Every ledger entry of the round in the order written: payouts, reversals, corrected payouts."""
    qs = valuation_round.payouts.select_related("owner__user", "owner__payee", "round", "created_by") \
        .order_by("created_at", "id")
    if user is not None and not user.is_staff:
        qs = qs.filter(mine(user=user))
    return qs


def round_payout_totals(*, valuation_round: ValuationRound) -> dict:
    agg = valuation_round.payouts.active().aggregate(total=Sum("amount"))
    unit = valuation_round.minor_unit
    # SQLite's SUM drops Decimal places; present both amounts in the currency's minor unit.
    return {"pool": Decimal(valuation_round.pool).quantize(unit), "paid": Decimal(agg["total"] or 0).quantize(unit),
            "currency": valuation_round.currency, "n_owners": valuation_round.participants.count()}


def round_coalitions(*, valuation_round: ValuationRound) -> list[dict]:
    names = {p.index: p.owner.name for p in round_participants(valuation_round=valuation_round)}
    return [{"mask": c.mask, "size": c.size, "value": c.value,
             "members": [names[i] for i in sorted(names) if c.mask >> i & 1]}
            for c in valuation_round.coalition_utilities.all()]


def owner_payouts(*, user) -> QuerySet[Payout]:
    return Payout.objects.active().filter(mine(user=user)).select_related("round").order_by("-round__created_at")


def owner_values(*, user) -> dict[int, OwnerValue]:
    return {v.round_id: v for v in OwnerValue.objects.filter(mine(user=user))}


# --- dashboards: plain data for valuation/charts.py and the pages' tables ---------------------------

def money(amount, decimals: int) -> Decimal:
    """An amount in the currency's minor unit, as paid (the column keeps 4 places for any currency)."""
    return Decimal(amount).quantize(Decimal(1).scaleb(-decimals))


def round_stages(*, valuation_round: ValuationRound) -> list[dict]:
    """One row per stage: progress (done/total, percent) and time spent, in pipeline order."""
    rows = []
    for stage in ValuationRound.STAGES:
        p = valuation_round.progress.get(stage) or {"done": 0, "total": 0}
        done, total = int(p.get("done", 0)), int(p.get("total", 0))
        rows.append({"stage": stage, "done": done, "total": total,
                     "percent": round(100 * done / total) if total else 0,
                     "seconds": valuation_round.timings.get(stage)})
    return rows


def value_rows(values) -> list[dict]:
    return [{"owner": v.owner.name, "value": v.shapley, "ci_low": v.ci_low, "ci_high": v.ci_high,
             "exact": not v.stderr} for v in values]


def payout_rows(payouts, *, decimals: int) -> list[dict]:
    return [{"owner": p.owner.name, "amount": money(p.amount, decimals), "share": p.share} for p in payouts]


def round_coalition_data(*, valuation_round: ValuationRound, names: dict[int, str]) -> dict | None:
    """Every coalition (n ≤ 12, from the table rows), else quantile bands per size from the .npy artifact."""
    if len(names) <= 12:
        rows = valuation_round.coalition_utilities.values_list("mask", "size", "value")
        points = [{"mask": mask, "size": size, "value": value,
                   "members": [names[i] for i in sorted(names) if mask >> i & 1]} for mask, size, value in rows]
        return {"kind": "points", "points": points} if points else None
    if not (valuation_round.utilities_path and valuation_round.utilities_hash):
        return None
    # The table is content-addressed: its hash is a cache key that can never go stale.
    bands = cache.get_or_set(f"coalition-bands:{valuation_round.utilities_hash}",
                             lambda: _coalition_bands(valuation_round.utilities_path), timeout=None)
    return {"kind": "bands", "bands": bands} if bands else None


def _coalition_bands(path: str) -> dict | None:
    try:
        v = np.load(path, mmap_mode="r")
    except OSError:
        return None
    sizes = np.bitwise_count(np.arange(len(v), dtype=np.uint64))
    out: dict[str, list] = {k: [] for k in ("size", "count", "min", "q05", "q25", "median", "q75", "q95", "max")}
    for k in range(int(sizes.max()) + 1):
        at_k = np.asarray(v[sizes == k], dtype=np.float64)
        q = np.quantile(at_k, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
        out["size"].append(k)
        out["count"].append(int(at_k.size))
        for key, value in zip(("min", "q05", "q25", "median", "q75", "q95", "max"), q):
            out[key].append(float(value))
    return out


def round_interactions(*, valuation_round: ValuationRound, names: dict[int, str]) -> dict | None:
    matrix = valuation_round.interactions or []
    if not matrix or len(matrix) != len(names):
        return None
    ordered = [names[i] for i in sorted(names)]
    return {"names": ordered, "matrix": matrix,
            "rows": [{"owner": name, "cells": row} for name, row in zip(ordered, matrix)]}


def round_objective_values(*, valuation_round: ValuationRound, user=None) -> dict:
    """A reward round's values per objective, owners in participant order:
    {"objectives": [names, round order], "payout": {name: weight}, "rows": [{"owner", "index",
    "values": {objective: {"shapley", "stderr", "ci_low", "ci_high"}}}]}. An owner gets their own row only."""
    reward = valuation_round.config.get("reward") or {}
    if not reward:  # not a reward round: nothing to read
        return {"objectives": [], "payout": {}, "rows": []}
    qs = ObjectiveValue.objects.filter(round=valuation_round).select_related("owner__user", "owner__payee")
    if user is not None and not user.is_staff:
        qs = qs.filter(mine(user=user))
    index = dict(valuation_round.participants.values_list("owner_id", "index"))
    rows: dict[int, dict] = {}
    for v in qs:
        row = rows.setdefault(v.owner_id, {"owner": v.owner.name, "username": v.owner.user.username,
                                           "index": index.get(v.owner_id, 0), "values": {}})
        row["values"][v.objective] = {"shapley": v.shapley, "stderr": v.stderr, "ci_low": v.ci_low,
                                      "ci_high": v.ci_high}
    present = {name for row in rows.values() for name in row["values"]}
    names = [o["name"] for o in reward.get("objectives", []) if o["name"] in present]
    for row in rows.values():  # the round's objective order, as the table's columns
        row["values"] = {name: row["values"][name] for name in names if name in row["values"]}
    return {"objectives": names, "payout": reward.get("payout", {}),
            "rows": sorted(rows.values(), key=lambda row: row["index"])}


def round_signature(*, valuation_round: ValuationRound, table: dict | None = None, x: str | None = None,
                    y: str | None = None) -> dict | None:
    """Each owner's values under two objectives (default: the round's first two), with 95% CIs, when it has them.
    `table` is the round's `round_objective_values` when the caller has it already."""
    table = table if table is not None else round_objective_values(valuation_round=valuation_round)
    names = table["objectives"]
    if len(names) < 2:
        return None
    x = x if x in names else names[0]
    y = y if y in names and y != x else next(name for name in names if name != x)
    rows = [r for r in table["rows"] if x in r["values"] and y in r["values"]]
    return {"names": [r["owner"] for r in rows], "x_objective": x, "y_objective": y,
            "x_values": [r["values"][x]["shapley"] for r in rows], "y_values": [r["values"][y]["shapley"] for r in rows],
            "x_ci": [(r["values"][x]["ci_low"], r["values"][x]["ci_high"]) for r in rows],
            "y_ci": [(r["values"][y]["ci_low"], r["values"][y]["ci_high"]) for r in rows],
            "rows": [{"owner": r["owner"], "x": r["values"][x]["shapley"], "y": r["values"][y]["shapley"]}
                     for r in rows]}


def round_prompts(*, valuation_round: ValuationRound) -> list[str]:
    """The eval prompts a reward round's coalitions answered, in order (empty for other utilities)."""
    from .stages.generation import eval_prompts

    reward = valuation_round.config.get("reward")
    return eval_prompts(valuation_round.eval_set, reward["prompts"]) if reward else []


def round_generations(*, valuation_round: ValuationRound, names: dict[int, str], limit: int = 3) -> dict | None:
    """What ∅, each owner alone and everyone together generated for the first `limit` eval prompts
    (reward rounds): {"prompts": [...], "coalitions": [{"label", "mask", "scores", "responses"}]}."""
    from .stages.generation import eval_prompts

    n = len(names)
    if not n or not valuation_round.config.get("reward"):
        return None
    wanted = [0] + [1 << i for i in sorted(names)] + ([(1 << n) - 1] if n > 1 else [])
    found = {g.mask: g for g in valuation_round.generations.filter(mask__in=wanted)}
    if not found:
        return None
    prompts = eval_prompts(valuation_round.eval_set, limit)
    out = []
    for mask in wanted:
        g = found.get(mask)
        if g is None:
            continue
        members = [names[i] for i in sorted(names) if mask >> i & 1]
        label = "∅ (base model)" if not members else ("everyone" if mask == (1 << n) - 1 and n > 1 else members[0])
        out.append({"label": label, "mask": mask, "scores": g.scores,
                    "pairs": list(zip(prompts, g.responses[:limit]))})
    return {"prompts": prompts, "coalitions": out} if out else None


def round_fidelity(*, valuation_round: ValuationRound) -> dict | None:
    """{"metric", "rows": [{"label", "trained", "composed"}], "summary": {name: number}, "note"}, when present."""
    report = getattr(valuation_round, "fidelity", None) or valuation_round.config.get("fidelity")
    return report if report and report.get("rows") else None


def owner_round_history(*, user) -> list[dict]:
    """Every round the user's data took part in, oldest first, with their value and payout: three
    narrow queries (never a round's large JSON columns), whatever the number of rounds."""
    labels = dict(ValuationRound.Status.choices)
    values = {row[0]: row[1:] for row in OwnerValue.objects.filter(mine(user=user)).values_list(
        "round_id", "shapley", "stderr", "ci_low", "ci_high")}
    payouts = {row[0]: row[1:] for row in Payout.objects.active().filter(mine(user=user)).values_list(
        "round_id", "share", "amount", "status")}
    rows = []
    for round_id, name, created, status, currency, decimals, n_truncated, reason in _history_parts(user):
        shapley, stderr, ci_low, ci_high = values.get(round_id, (None, None, None, None))
        share, amount, payout_status = payouts.get(round_id, (None, None, ""))
        rows.append({"round_id": round_id, "round": name, "created": created, "status": status,
                     "status_label": labels.get(status, status), "currency": currency, "value": shapley,
                     "ci_low": ci_low, "ci_high": ci_high, "exact": shapley is not None and not stderr,
                     "share": share, "amount": None if amount is None else money(amount, decimals),
                     "payout_status": payout_status, "n_truncated": n_truncated or 0, "excluded": reason})
    return rows


def _history_parts(user) -> list[tuple]:
    """The rounds the user's data took part in, and those it was left out of (with the reason), oldest first."""
    fields = ("round_id", "round__name", "round__created_at", "round__status", "round__currency", "round__decimals")
    taken_part = players_of(user=user).order_by().annotate(
        excluded=Value("", output_field=TextField())).values_list(*fields, "n_truncated", "excluded")
    left_out = RoundExclusion.objects.filter(excluded_as(user=user)).order_by().annotate(
        truncated=Value(None, output_field=IntegerField())).values_list(*fields, "truncated", "reason")
    return sorted(taken_part.union(left_out, all=True), key=lambda row: (row[2], row[0]))  # one query


def round_statement(*, valuation_round: ValuationRound, owner) -> dict:
    """One owner's statement for one round: the round's config, their value, CI, share, amount, and the
    round totals. Nothing about any other owner. For an account of a payee it is the payee's statement."""
    player = round_player(valuation_round=valuation_round, owner=owner)
    if player is None:
        raise Http404("this owner did not take part in the round")
    owner = player.owner
    value = valuation_round.values.filter(owner=owner).first()
    payout = valuation_round.payouts.active().filter(owner=owner).first()
    objectives = [row for row in round_objective_values(valuation_round=valuation_round, user=owner.user)["rows"]
                  if row["username"] == owner.user.username]
    return {"round": valuation_round, "owner": owner, "participant": player, "value": value, "payout": payout,
            "amount": money(payout.amount, valuation_round.decimals) if payout else None,
            "totals": round_payout_totals(valuation_round=valuation_round),
            "objectives": objectives[0]["values"] if objectives else {}}
