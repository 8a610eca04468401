"""The measured failure, end to end with the tiny model: one owner uploads 32 pairs whose ~7,900-character
prompts pass the upload limit (characters) but fill TRL's max_length (tokens). The round excludes that owner
with the reason, runs with the others, finishes, and pays them; the excluded owner's data stays theirs."""
from decimal import Decimal

import pytest

from marketplace.models import Contribution
from marketplace.services import contribution_delete
from valuation import selectors, services
from valuation.engine import synthetic
from valuation.engine.data import Pair
from valuation.models import RoundExclusion, ValuationRound
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _long_pairs(n: int):
    # Each prompt repeated to ~7,900 characters: as distinct from the others as the short prompts were
    # (a filler shared by every row would make them near-copies, which upload refuses).
    return [Pair(prompt=" ".join([p.prompt] * (7_900 // (len(p.prompt) + 1))), chosen=p.chosen, rejected=p.rejected)
            for p in synthetic.owner_pairs("clean_mix", n, 6)]


def test_an_owner_with_only_over_long_pairs_is_excluded_and_the_round_pays_the_others(
        tiny_base_model, isolated_artifacts):
    add_owner("clean", synthetic.owner_pairs("clean_mix", 48, 11))
    add_owner("noisy", synthetic.owner_pairs("noisy", 48, 12))
    long_owner = add_owner("longwinded", _long_pairs(32))
    assert Contribution.objects.get(owner=long_owner).status == Contribution.Status.ACCEPTED  # upload let it in
    eval_set = add_eval_set("eval", synthetic.eval_pairs(40, 0))

    r = services.round_create(name="lengths", pool="100.00", eval_set=eval_set, base_model_dir=str(tiny_base_model),
                              training={"epochs": 1})
    excluded = RoundExclusion.objects.get(round=r)
    assert excluded.owner == long_owner and excluded.n_pairs == excluded.n_dropped == 32
    assert "None of your 32 pairs fits this round's training length of 128 tokens" in excluded.reason
    assert sorted(p.owner.name for p in r.participants.all()) == ["clean", "noisy"]

    r = services.round_execute(round_id=r.pk)
    assert r.status == ValuationRound.Status.DONE, r.error
    paid = {p.owner.name: p.amount for p in r.payouts.all()}
    assert set(paid) == {"clean", "noisy"} and sum(paid.values()) == Decimal("100.00")
    history = selectors.owner_round_history(user=long_owner.user)
    assert [(h["round"], h["excluded"]) for h in history] == [("lengths", excluded.reason)]
    contribution_delete(contribution=Contribution.objects.get(owner=long_owner))  # not used: still withdrawable
