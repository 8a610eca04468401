"""The semantic screen on the tiny base model's own representations, in a real round (slow: DPO training).

The tiny model catches copies of eval pairs with words swapped (bench/similarity_screen.py: every one at
cosine 0.95); it does not separate reworded templates from distinct questions, so that is not asserted here.
The copier uploads before the eval set exists — an owner who got hold of eval pairs — so no upload check
could have refused the copies."""
import numpy as np
import pytest

from valuation import replay, screening, services
from valuation.engine import synthetic
from valuation.engine.data import Pair
from valuation.models import OwnerScreen, Payout, ScreenReport
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def swap_words(text: str, rng) -> str:
    """Two adjacent words of the text swapped (not the "Question:"/"Answer:" markers)."""
    words = text.split(" ")
    movable = [i for i in range(len(words) - 1) if words[i] and words[i + 1] and ":" not in words[i] + words[i + 1]]
    i = movable[int(rng.integers(len(movable)))]
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


@pytest.fixture
def market(settings, tmp_path):
    settings.REPRESENTATIONS_DIR = tmp_path / "representations"
    evals = synthetic.eval_pairs(40, 4)
    rng = np.random.default_rng(0)
    copies = [Pair(prompt=swap_words(p.prompt, rng), chosen=swap_words(p.chosen, rng),
                   rejected=swap_words(p.rejected, rng)) for p in evals[:12]]
    add_owner("copier", copies + synthetic.owner_pairs("clean_mix", 12, 51))
    add_owner("clean", synthetic.owner_pairs("clean_helpful", 32, 52))
    add_owner("noisy", synthetic.owner_pairs("noisy", 24, 53))
    add_owner("adversary", synthetic.owner_pairs("adversarial", 16, 54))
    return add_eval_set("eval", evals)


def test_a_real_round_flags_the_copier_of_eval_and_not_the_honest_owners(market, tiny_base_model,
                                                                         isolated_artifacts, staff_user):
    r = services.round_create(name="screened", pool="100.00", eval_set=market, base_model_dir=str(tiny_base_model),
                              training={"epochs": 1}, seed=3)
    r = services.round_execute(round_id=r.pk)
    assert r.status == "done" and r.values.count() == 4
    report = r.screen_report
    assert report.status == ScreenReport.Status.DONE, report.error
    assert report.n_pairs == 24 + 32 + 24 + 16 and report.n_eval == 40
    by = {row.owner.name: row for row in OwnerScreen.objects.filter(report=report).select_related("owner__user")}
    assert by["copier"].flagged and by["copier"].n_eval >= 12 and by["copier"].share_eval >= 0.5
    for honest in ("clean", "noisy", "adversary"):
        assert not by[honest].flagged, (honest, by[honest].share_eval, by[honest].share_owner)

    with pytest.raises(Exception, match="copier is above the screen's threshold"):
        services.payout_approve(valuation_round=r, approved_by=staff_user)
    screening.screen_acknowledge(valuation_round=r, owner=by["copier"].owner, acknowledged_by=staff_user,
                                 note="copies of eval pairs: payout withheld by correction")

    check = replay.round_replay(valuation_round=r)
    screen_check = next(c for c in check.checks if c.what == "semantic screen")
    assert screen_check.status == "ok" and check.matches, screen_check.detail
    OwnerScreen.objects.filter(pk=by["clean"].pk).update(n_eval=by["clean"].n_eval + 1)  # a tampered row
    tampered = replay.round_replay(valuation_round=r)
    assert next(c for c in tampered.checks if c.what == "semantic screen").status == "failed" and not tampered.matches
    OwnerScreen.objects.filter(pk=by["clean"].pk).update(n_eval=by["clean"].n_eval)

    assert services.payout_approve(valuation_round=r, approved_by=staff_user) == Payout.objects.filter(round=r).count()
