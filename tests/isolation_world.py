"""A marketplace with two owners whose every visible trace is a unique marker string, for the access
tests (tests/marketplace/test_permissions.py, tests/config/test_isolation_matrix.py).

Owner A and owner B each have: a username, display name and e-mail; accepted, unused and refused uploads
(file names, prompts, refusal reasons); a round only they took part in; a value (φ, CI, Banzhaf,
leave-one-out), a value per objective and a payout in the round they share, with a correction in A's
ledger; a fidelity report naming them; pair values in the shared round's data-quality report; an API
token. The eval set's pairs (and what coalitions generated for its prompts) are the staff's secret. A response to B must contain
none of A's markers, and so on (FORBIDDEN). Rounds are built with the ORM: access, not valuation.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from marketplace.models import Contribution, EvalSet
from marketplace.parsing import UploadRefused
from marketplace.services import contribution_create, eval_set_create
from tests.conftest import jsonl_bytes, make_pairs
from tests.dashboards import write_data_quality
from valuation import ledger, services
from valuation.models import (
    BaseModel, CoalitionGeneration, CoalitionUtility, FidelityReport, ObjectiveValue, OwnerModel, OwnerValue, Payout, RoundOwner,
    RoundTask, ScoreCache, ValuationRound,
)

ROLES = ("anon", "a", "b", "staff")
A = {"username": "owner_a", "display": "Alpha Display Qx7", "email": "alpha.qx7@example.org",
     "files": ("alpha_secret.jsonl", "alpha_free.jsonl", "alpha_refused.jsonl"), "tag": "alphasecret",
     "round": "alpha-only-round", "shapley": 0.314159, "ci": (0.2718281, 0.3565, 0.1414213, 0.1732050),
     "amount": "31.4159", "shown": "31.42", "corrected": "30.11", "model": "a1f0" * 16,
     "objectives": (0.1123581, 0.2134558), "pair_value": 0.0271828}
B = {"username": "owner_b", "display": "Bravo Display Zk4", "email": "bravo.zk4@example.org",
     "files": ("bravo_secret.jsonl", "bravo_free.jsonl", "bravo_refused.jsonl"), "tag": "bravosecret",
     "round": "bravo-only-round", "shapley": 0.577215, "ci": (0.6180339, 0.4426950, 0.6931471, 0.2360679),
     "amount": "68.5841", "shown": "68.58", "corrected": "69.89", "model": "b2e0" * 16,
     "objectives": (0.3819660, 0.4142135), "pair_value": 0.0618034}
EVAL_TAG = "evalsecret"  # held-out pairs: nobody but staff


def markers(o: dict) -> tuple[str, ...]:
    return (o["username"], o["display"], o["email"], *o["files"], o["tag"], o["round"], str(o["shapley"]),
            *(str(x) for x in o["ci"]), o["amount"], o["shown"], o["corrected"], o["model"],
            *(str(x) for x in o["objectives"]), str(o["pair_value"]))


A_MARKERS, B_MARKERS = markers(A), markers(B)
FORBIDDEN = {"anon": A_MARKERS + B_MARKERS + (EVAL_TAG,), "a": B_MARKERS + (EVAL_TAG,),
             "b": A_MARKERS + (EVAL_TAG,), "staff": ()}


@dataclass
class World:
    a_used: Contribution  # used by the shared round: cannot be deleted
    a_free: Contribution  # used by no round
    b_used: Contribution
    b_free: Contribution
    round: ValuationRound  # A and B took part (done, approved, one correction)
    a_round: ValuationRound  # only A took part
    b_round: ValuationRound  # only B took part
    eval_set: EvalSet
    report: FidelityReport
    users: dict  # role → user (None for anon)
    tokens: dict  # role → API token key


def _contribute(owner, name: str, records) -> Contribution:
    return contribution_create(owner=owner, file=io.BytesIO(jsonl_bytes(records)), filename=name)


def _base_model() -> BaseModel:
    """The registered base model every round of the world ran on (staff-only API and admin rows)."""
    return BaseModel.objects.get_or_create(name="tiny", defaults=dict(
        path="/models/tiny", source_kind=BaseModel.Source.BUILT, source="/models/tiny", architecture="LlamaForCausalLM",
        n_parameters=1_000_000, context_length=256, has_chat_template=False, dtype="float32",
        content_hash="0" * 64))[0]


def _round(name: str, eval_set: EvalSet, status: str) -> ValuationRound:
    return ValuationRound.objects.create(
        name=name, eval_set=eval_set, eval_set_hash=eval_set.sha256, base_model_path="/models/tiny",
        base_model_hash="0" * 64, base_model=_base_model(), pool=Decimal("100"), status=status)


def _take_part(valuation_round, owner, index: int, contribution, o: dict | None = None) -> None:
    model = OwnerModel.objects.get_or_create(cache_key=f"{index}{owner.pk}".ljust(64, "0")[:64], defaults=dict(
        base_model_hash="0" * 64, data_hash=f"{index}" * 64, config_hash="c" * 64, artifact_path="/m",
        model_hash=(o or {}).get("model", "f" * 64)))[0]
    participation = RoundOwner.objects.create(round=valuation_round, owner=owner, index=index, owner_model=model,
                                              n_pairs=contribution.n_pairs, data_hash=f"{index}" * 64)
    participation.contributions.add(contribution)
    if o is not None:
        low, high, banzhaf, loo = o["ci"]
        OwnerValue.objects.create(round=valuation_round, owner=owner, shapley=o["shapley"], stderr=0.01,
                                  ci_low=low, ci_high=high, banzhaf=banzhaf, leave_one_out=loo)
        Payout.objects.create(round=valuation_round, owner=owner, amount=Decimal(o["amount"]),
                              share=Decimal(o["amount"]) / 100, currency="USD")


def _owner_data(owner, o: dict) -> tuple[Contribution, Contribution]:
    used = _contribute(owner, o["files"][0], make_pairs(3, tag=o["tag"]))
    free = _contribute(owner, o["files"][1], make_pairs(2, tag=f"{o['tag']}-free"))
    with pytest.raises(UploadRefused):
        _contribute(owner, o["files"][2], [{"prompt": o["tag"], "chosen": "", "rejected": "x"}])
    return used, free


def _report(valuation_round) -> FidelityReport:
    row = {"utility": "preference_accuracy", "composition": "sum", "mode": "sequential", "matching": True, "n": 4,
           "pearson": 0.9, "spearman": 0.9, "mae": 0.1, "shapley_spearman": 1.0, "shapley_exact": True,
           "max_payout_diff": 0.01, "max_payout_diff_owner": A["username"]}
    return FidelityReport.objects.create(
        round=valuation_round, mode="sequential", n_coalitions=4, exhaustive=True, status="done",
        correlations=[row], headline=row, shapley=[{"owners": [A["username"], B["username"]]}],
        coalitions=[{"mask": 1, "size": 1, "members": [A["username"]],
                     "arithmetic": {"sum": {"preference_accuracy": 0.61}},
                     "trained": {"sequential": {"preference_accuracy": 0.58}}}])


OBJECTIVES = ("helpfulness", "harmlessness")


def _reward(valuation_round, owners) -> None:
    """Make the shared round a two-objective reward round: values per objective, and what coalitions
    generated (their responses quote the eval prompts: staff only)."""
    valuation_round.config = {"reward": {"objectives": [{"name": name, "judge": "demo.judges." + name}
                                                        for name in OBJECTIVES],
                                         "payout": {"helpfulness": 1.0}, "prompts": 2, "decoding": {}}}
    valuation_round.save(update_fields=["config"])
    for owner, o in owners:
        for name, value in zip(OBJECTIVES, o["objectives"]):
            ObjectiveValue.objects.create(round=valuation_round, owner=owner, objective=name, shapley=value,
                                          stderr=0.0, ci_low=value, ci_high=value, n_evaluations=4, method="exact")
    for mask in range(4):
        CoalitionGeneration.objects.create(round=valuation_round, mask=mask, size=mask.bit_count(),
                                           scores=dict.fromkeys(OBJECTIVES, 0.5), n_tokens=8, seconds=0.1,
                                           responses=[f"{EVAL_TAG} answer {mask}"] * 2)
    for index in (RoundTask.BASE_INDEX, 0, 1):
        RoundTask.objects.create(round=valuation_round, stage=RoundTask.Stage.SCORING, index=index,
                                 status=RoundTask.Status.DONE, worker="foreground@test", seconds=0.1)


@pytest.fixture
def world(owner_a, owner_b, staff_user) -> World:
    for owner, o in ((owner_a, A), (owner_b, B)):
        owner.display_name = o["display"]
        owner.save()
        owner.payee.name = o["display"]  # a player is shown by its payee's name: the marker must be it
        owner.payee.save()
        get_user_model().objects.filter(pk=owner.user_id).update(email=o["email"])
    a_used, a_free = _owner_data(owner_a, A)
    b_used, b_free = _owner_data(owner_b, B)
    eval_set = eval_set_create(name="heldout", file=io.BytesIO(jsonl_bytes(make_pairs(4, tag=EVAL_TAG))),
                               filename="heldout.jsonl", created_by=staff_user)
    both = _round("round-one", eval_set, ValuationRound.Status.DONE)
    _take_part(both, owner_a, 0, a_used, A)
    _take_part(both, owner_b, 1, b_used, B)
    services.payout_approve(valuation_round=both, approved_by=staff_user)
    ledger.payout_correct(valuation_round=both, amounts={A["username"]: A["corrected"], B["username"]: B["corrected"]},
                          reason="recount after a late file", corrected_by=staff_user)
    a_only = _round(A["round"], eval_set, ValuationRound.Status.DRAFT)
    _take_part(a_only, owner_a, 0, a_used)
    b_only = _round(B["round"], eval_set, ValuationRound.Status.DRAFT)
    _take_part(b_only, owner_b, 0, b_used)
    Group.objects.create(name="auditors")  # every admin model has an object to open
    ScoreCache.objects.create(model_hash="5" * 64, eval_hash=eval_set.sha256, chosen_logps=[-1.5],
                              rejected_logps=[-2.5])
    _reward(both, ((owner_a, A), (owner_b, B)))
    write_data_quality(both, [owner_a, owner_b], [A["pair_value"], B["pair_value"]])
    CoalitionUtility.objects.bulk_create(CoalitionUtility(round=both, mask=m, size=m.bit_count(), value=v)
                                         for m, v in enumerate((0.5, 0.6, 0.7, 0.9)))
    users = {"anon": None, "a": owner_a.user, "b": owner_b.user, "staff": staff_user}
    tokens = {role: Token.objects.create(user=user).key for role, user in users.items() if user is not None}
    both.refresh_from_db()
    return World(a_used, a_free, b_used, b_free, both, a_only, b_only, eval_set, _report(both), users, tokens)
