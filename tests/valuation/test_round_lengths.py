"""A round checks every owner's pairs at creation as TRL will cut them (valuation/lengths.py): owners with no
trainable pair are excluded with a reason, cut pairs are counted; only a running or finished round locks an
owner's data, and a round whose snapshot lost data refuses to run. No training involved."""
import numpy as np
import pytest
from django.core.exceptions import ValidationError

from marketplace.models import Contribution
from marketplace.services import contribution_delete
from valuation import selectors, services
from valuation.engine import synthetic
from valuation.engine.data import Pair
from valuation.models import RoundExclusion, RoundOwner, ScoreCache, ValuationRound
from valuation.stages.scoring import score_eval_hash, score_key, score_matrix, score_order
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = pytest.mark.django_db
LONG = " ".join(p.chosen for p in synthetic.owner_pairs("clean_mix", 40, 5))[:7_900]  # far over 128 tokens


def long_prompt(pair: Pair) -> Pair:
    """The pair with its prompt repeated to ~7,900 characters: far over 128 tokens, and still as distinct from
    the other long prompts as the short ones were (upload refuses near-copies, even inside one file)."""
    return Pair(prompt=" ".join([pair.prompt] * (7_900 // (len(pair.prompt) + 1))), chosen=pair.chosen,
                rejected=pair.rejected)


@pytest.fixture
def market():
    add_owner("alice", synthetic.owner_pairs("clean_mix", 6, 1))
    short = synthetic.owner_pairs("noisy", 5, 2)
    add_owner("bob", short[:3] + [long_prompt(p) for p in short[3:]] + [Pair(short[0].prompt, LONG, "no")])
    add_owner("mallory", [long_prompt(p) for p in synthetic.owner_pairs("clean_mix", 4, 3)])
    return add_eval_set("eval", synthetic.eval_pairs(6, 0))


def create(eval_set, model_dir, name="r1", **overrides):
    return services.round_create(name=name, pool="100.00", eval_set=eval_set, base_model_dir=str(model_dir),
                                 **overrides)


def test_an_owner_with_no_trainable_pair_is_excluded_with_the_reason(market, fake_model_dir):
    r = create(market, fake_model_dir)
    assert [(p.owner.name, p.index, p.n_pairs, p.n_usable, p.n_truncated) for p in r.participants.all()] == [
        ("alice", 0, 6, 6, 0), ("bob", 1, 6, 4, 1)]
    excluded = RoundExclusion.objects.get(round=r)
    assert (excluded.owner.name, excluded.n_pairs, excluded.n_dropped) == ("mallory", 4, 4)
    assert excluded.reason.startswith("None of your 4 pairs fits this round's training length of 128 tokens")
    assert r.config["eval_lengths"] == {"max_length": 128, "n_pairs": 6, "n_truncated": 0, "n_unscored": 0}


def test_the_rounds_own_max_length_decides(market, fake_model_dir):
    r = create(market, fake_model_dir, training={"max_length": 8192})
    assert RoundExclusion.objects.count() == 0
    assert [(p.owner.name, p.n_usable, p.n_truncated) for p in r.participants.all()] == [
        ("alice", 6, 0), ("bob", 6, 0), ("mallory", 4, 0)]


def test_a_round_where_every_owner_would_be_excluded_is_refused_whole(market, fake_model_dir):
    with pytest.raises(ValidationError) as info:
        create(market, fake_model_dir, owners=["mallory"])
    assert "no owner has a pair that fits the training length of 128 tokens" in info.value.messages[0]
    assert not ValuationRound.objects.exists() and not RoundExclusion.objects.exists()


def test_an_eval_set_with_no_scorable_pair_is_refused(market, fake_model_dir):
    eval_set = add_eval_set("long-eval", [long_prompt(p) for p in synthetic.eval_pairs(3, 0)])
    with pytest.raises(ValidationError, match="no pair of eval set 'long-eval' fits the training length of 128"):
        create(eval_set, fake_model_dir)
    assert not ValuationRound.objects.exists()


def test_an_eval_set_the_cut_changes_is_scored_cut_and_cached_apart(market, fake_model_dir):
    plain = create(market, fake_model_dir, name="plain")
    mixed = add_eval_set("mixed", synthetic.eval_pairs(3, 0) + [long_prompt(synthetic.eval_pairs(1, 1)[0])])
    r = create(mixed, fake_model_dir, name="cut")
    assert r.config["eval_lengths"] == {"max_length": 128, "n_pairs": 4, "n_truncated": 0, "n_unscored": 1}
    assert score_eval_hash(r) not in (r.eval_set_hash, plain.eval_set_hash, score_eval_hash(plain))


def test_a_new_round_scores_by_length_and_caches_apart_from_rounds_that_scored_in_eval_order(market, fake_model_dir):
    """Batched by length the scores differ in their last bits (engine/scoring.py), so a new round neither reads
    nor writes the rows of rounds recorded before the order existed, which keep theirs and replay with them."""
    new = create(market, fake_model_dir, name="by-length")
    assert new.config["score_order"] == "length" and score_order(new) == "length"
    earlier = create(market, fake_model_dir, name="earlier")
    earlier.config.pop("score_order")
    assert score_order(earlier) == "input"
    assert score_eval_hash(earlier) == earlier.eval_set_hash  # nothing cut: the very scores earlier rounds cached
    assert score_eval_hash(new) != score_eval_hash(earlier)


def test_mean_weights_count_only_the_pairs_training_keeps(market, fake_model_dir):
    r = create(market, fake_model_dir)
    for model in [None, *[p for p in r.participants.all()]]:
        key = score_key(r, None) if model is None else f"m{model.index}"
        if model is not None:  # stand-in owner models: the weights, not the scores, are under test
            from valuation.models import OwnerModel

            om = OwnerModel.objects.create(cache_key=key, base_model_hash="b", data_hash="d", config_hash="c",
                                           artifact_path="/x", model_hash=key)
            RoundOwner.objects.filter(pk=model.pk).update(owner_model=om)
            key = score_key(r, om)
        ScoreCache.objects.create(model_hash=key, eval_hash=score_eval_hash(r), chosen_logps=[0.0] * 6,
                                  rejected_logps=[0.0] * 6)
    _, sizes = score_matrix(r)
    assert sizes.tolist() == [6, 4]  # bob uploaded 6 pairs; 2 of them TRL would drop
    assert isinstance(sizes, np.ndarray)


# --- which rounds lock data, and what a round does when its snapshot is gone ------------------------

def contribution_of(username: str) -> Contribution:
    return Contribution.objects.get(owner__user__username=username)


@pytest.mark.parametrize("status, locked", [
    (ValuationRound.Status.DRAFT, False), (ValuationRound.Status.FAILED, False),
    (ValuationRound.Status.CANCELLED, False), (ValuationRound.Status.QUEUED, True),
    (ValuationRound.Status.TRAINING, True), (ValuationRound.Status.SCORING, True),
    (ValuationRound.Status.VALUING, True), (ValuationRound.Status.DONE, True),
])
def test_only_a_running_or_finished_round_locks_an_owners_data(market, fake_model_dir, status, locked):
    r = create(market, fake_model_dir)
    ValuationRound.objects.filter(pk=r.pk).update(status=status)
    assert selectors.contribution_used_in_round(contribution=contribution_of("bob")) is locked
    if locked:
        with pytest.raises(ValidationError, match="can no longer be deleted"):
            contribution_delete(contribution=contribution_of("bob"))
    else:
        contribution_delete(contribution=contribution_of("bob"))
        assert not Contribution.objects.filter(owner__user__username="bob").exists()


def test_an_excluded_owners_data_is_not_locked_by_the_round(market, fake_model_dir):
    r = create(market, fake_model_dir)
    ValuationRound.objects.filter(pk=r.pk).update(status=ValuationRound.Status.DONE)
    assert not selectors.contribution_used_in_round(contribution=contribution_of("mallory"))


@pytest.mark.parametrize("run", ["execute", "queue"])
def test_a_round_whose_snapshot_lost_data_refuses_to_run_with_the_reason(market, fake_model_dir, run):
    r = create(market, fake_model_dir)
    ValuationRound.objects.filter(pk=r.pk).update(status=ValuationRound.Status.FAILED, error="earlier failure")
    contribution_delete(contribution=contribution_of("bob"))
    r.refresh_from_db()
    with pytest.raises(ValidationError) as info:
        if run == "execute":
            services.round_execute(round_id=r.pk)
        else:
            services.round_queue(valuation_round=r)
    message = "withdrew data this round snapshotted (6 pairs at creation, 0 now)"
    assert f"owner 'bob' {message}" in info.value.messages[0]  # staff, who ran it, learn whose
    r.refresh_from_db()  # the round's error, which its other owners may read, names nobody
    assert r.status == ValuationRound.Status.FAILED and r.error.startswith(f"an owner {message}")
    assert "bob" not in r.error and "Traceback" not in r.error
    assert r.runner == "" and not r.tasks.exists()


def test_training_reads_exactly_the_snapshot(market, fake_model_dir):
    from valuation.stages.common import SnapshotChanged, participant_pairs

    r = create(market, fake_model_dir)
    bob = r.participants.get(owner__user__username="bob")
    assert len(participant_pairs(bob)) == 6
    add_owner_data = synthetic.owner_pairs("noisy", 2, 9)  # new data after creation is not the round's
    from marketplace.services import contribution_create
    from tests.conftest import jsonl_bytes, upload
    from tests.valuation.conftest import pairs_records

    contribution_create(owner=bob.owner, file=upload("more.jsonl", jsonl_bytes(pairs_records(add_owner_data))),
                        filename="more.jsonl")
    assert len(participant_pairs(bob)) == 6
    contribution_delete(contribution=bob.contributions.get())
    with pytest.raises(SnapshotChanged):
        participant_pairs(bob)


def test_the_excluded_owner_sees_the_round_and_the_reason(market, fake_model_dir):
    r = create(market, fake_model_dir)
    mallory = contribution_of("mallory").owner.user
    history = selectors.owner_round_history(user=mallory)
    assert [(h["round"], h["value"], h["excluded"]) for h in history] == [
        ("r1", None, RoundExclusion.objects.get(round=r).reason)]
    bob = selectors.owner_round_history(user=contribution_of("bob").owner.user)
    assert [(h["round"], h["n_truncated"], h["excluded"]) for h in bob] == [("r1", 1, "")]


# --- who sees the length check where -------------------------------------------------------------

def user_of(username: str):
    return contribution_of(username).owner.user


def test_round_api_shows_staff_every_owners_check_and_an_owner_only_their_own(market, fake_model_dir, api_staff):
    from tests.conftest import _api

    r = create(market, fake_model_dir)
    staff = api_staff.get(f"/api/rounds/{r.pk}/").json()["length_check"]
    assert staff["max_length"] == 128
    assert [(o["owner"], o["n_pairs"], o["n_usable"], o["n_truncated"]) for o in staff["owners"]] == [
        ("alice", 6, 6, 0), ("bob", 6, 4, 1)]
    assert [(e["owner"], e["n_dropped"]) for e in staff["excluded"]] == [("mallory", 4)]

    mallory = _api(user_of("mallory")).get(f"/api/rounds/{r.pk}/")
    assert mallory.status_code == 200  # left out, yet they can see the round and why
    check = mallory.json()["length_check"]
    assert check["owners"] == [] and [e["reason"] for e in check["excluded"]] == [
        RoundExclusion.objects.get(round=r).reason]
    bob = _api(user_of("bob")).get(f"/api/rounds/{r.pk}/").json()["length_check"]
    assert [o["owner"] for o in bob["owners"]] == ["bob"] and bob["excluded"] == []
    assert r.pk in [row["id"] for row in _api(user_of("mallory")).get("/api/rounds/").json()["results"]]


def test_round_page_and_owner_pages_say_who_was_left_out_and_what_was_cut(market, fake_model_dir, staff_user):
    from django.test import Client

    r = create(market, fake_model_dir)
    reason = "None of your 4 pairs fits this round&#x27;s training length of 128 tokens"  # as the page escapes it
    admin = Client()
    admin.force_login(staff_user)
    page = admin.get(f"/rounds/{r.pk}/").content.decode()
    assert 'id="excluded-owners"' in page and "mallory" in page and reason in page
    assert "1 cut to 128 tokens, 2 not trainable" in page

    owner = Client()
    owner.force_login(user_of("mallory"))
    assert reason in owner.get("/rounds/my-payouts/").content.decode()
    owner.force_login(user_of("bob"))
    assert "1 of my pairs cut to the round's training length" in owner.get("/rounds/my-payouts/").content.decode()
    statement = owner.get(f"/rounds/{r.pk}/statement/").content.decode()
    assert "1 cut to the round's training length of 128 tokens" in statement
    assert "2 left out of training" in statement


def test_the_web_form_over_everyone_queues_the_round_without_the_untrainable_owner(market, fake_model_dir, staff_user):
    from django.test import Client

    admin = Client()
    admin.force_login(staff_user)
    response = admin.post("/rounds/new/", {"name": "everyone", "pool": "100.00", "currency": "USD", "eval_set": "eval",
                                           "base_model": str(fake_model_dir), "utility": "preference_accuracy",
                                           "composition": "sum", "estimator": "auto", "seed": 0}, follow=True)
    r = ValuationRound.objects.get(name="everyone")
    assert r.status == ValuationRound.Status.QUEUED
    assert sorted(p.owner.name for p in r.participants.all()) == ["alice", "bob"]
    assert "1 owner left out: no pair fits the training length" in response.content.decode()
    assert 'id="excluded-owners"' in response.content.decode()


@pytest.mark.parametrize("cut, expected", [(False, None), (True, 128)])
def test_scoring_cuts_the_eval_set_as_training_cuts_only_when_that_changes_it(market, fake_model_dir, monkeypatch,
                                                                              cut, expected):
    from valuation.engine import scoring
    from valuation.stages.scoring import ensure_scores

    pairs = synthetic.eval_pairs(3, 0) + ([long_prompt(synthetic.eval_pairs(1, 1)[0])] if cut else [])
    r = create(add_eval_set("e2", pairs), fake_model_dir)
    seen = []

    def fake_score(model_dir, base_dir, pairs, *, max_length=None, **kwargs):
        seen.append(max_length)
        return scoring.ScoreResult(chosen=np.zeros(len(pairs)), rejected=np.zeros(len(pairs)))

    monkeypatch.setattr(scoring, "score_model", fake_score)
    ensure_scores(r, key="k", model_dir=fake_model_dir, pairs=pairs)
    assert seen == [expected]
    assert ScoreCache.objects.get(model_hash="k").eval_hash == score_eval_hash(r)


def test_every_account_of_an_excluded_payee_sees_the_exclusion(market, fake_model_dir):
    """Exclusions belong to the payee: its other accounts see the round and the reason too."""
    from marketplace.payees import owner_set_status
    from marketplace.services import owner_create

    mallory = contribution_of("mallory").owner
    second = owner_create(username="mallory2")
    owner_set_status(owner=second, status="verified", payee_name=mallory.payee.name)  # mallory's other account
    r = create(market, fake_model_dir)
    history = selectors.owner_round_history(user=second.user)
    assert [(h["round"], h["excluded"]) for h in history] == [("r1", RoundExclusion.objects.get(round=r).reason)]
    assert list(selectors.round_list_for(user=second.user)) == [r]
    assert [e.owner for e in selectors.round_exclusions(valuation_round=r, user=second.user)] == [mallory]
    stranger = owner_create(username="stranger")
    assert list(selectors.round_exclusions(valuation_round=r, user=stranger.user)) == []
    assert list(selectors.round_list_for(user=stranger.user)) == []
