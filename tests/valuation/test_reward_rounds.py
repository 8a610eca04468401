"""Reward rounds without training: creation and its checks through the service, the API, the web form
and the CLI; values per objective through the API (an owner sees only their own) and the selectors."""
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from tests.dashboards import round_for, write_objective_values, write_results
from tests.valuation.conftest import add_eval_set, add_owner
from valuation import selectors, services
from valuation.engine import synthetic
from valuation.models import ValuationRound

pytestmark = pytest.mark.django_db
JUDGE = "valuation.engine.synthetic:helpfulness_judge"


@pytest.fixture
def market():
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 8, 1))
    add_owner("bob", synthetic.owner_pairs("clean_harmless", 8, 2))
    return add_eval_set("eval", synthetic.eval_pairs(6, 0))


def create(eval_set, model_dir, **overrides):
    kwargs = dict(name="r1", pool="100.00", eval_set=eval_set, base_model_dir=str(model_dir), utility="reward",
                  objectives=["helpfulness", "harm=harmlessness"])
    kwargs.update(overrides)
    return services.round_create(**kwargs)


def test_a_reward_round_records_resolved_judges_an_equal_blend_and_its_decoding(market, fake_model_dir):
    r = create(market, fake_model_dir, seed=3, decoding={"temperature": 0.7, "max_new_tokens": 24}, prompts=5)
    reward = r.config["reward"]
    assert reward["objectives"] == [{"name": "helpfulness", "judge": JUDGE},
                                    {"name": "harm", "judge": "valuation.engine.synthetic:harmlessness_judge"}]
    assert reward["payout"] == {"helpfulness": 0.5, "harm": 0.5} and reward["prompts"] == 5
    assert reward["decoding"]["temperature"] == 0.7 and reward["decoding"]["max_new_tokens"] == 24
    assert reward["decoding"]["seed"] == 3  # the round's seed unless the decoding names its own
    assert r.config["budget"] == 128  # each coalition is a decoding pass: exact up to 7 owners, not 2^20


def test_payout_weights_are_normalised_and_a_single_objective_may_pay(market, fake_model_dir):
    r = create(market, fake_model_dir, payout_objective="helpfulness=3, harm=1")
    assert r.config["reward"]["payout"] == {"helpfulness": 0.75, "harm": 0.25}
    one = create(market, fake_model_dir, name="r2", payout_objective="harm")
    assert one.config["reward"]["payout"] == {"harm": 1.0}
    zero_dropped = create(market, fake_model_dir, name="r3", payout_objective={"helpfulness": 1, "harm": 0})
    assert zero_dropped.config["reward"]["payout"] == {"helpfulness": 1.0}


@pytest.mark.parametrize("overrides, message", [
    ({"objectives": None}, "needs at least one objective"),
    ({"objectives": ["helpfulness", "helpfulness"]}, "must be unique"),
    ({"objectives": ["Help=helpfulness"]}, "must be lower-case"),
    ({"objectives": ["x=os:system"]}, "objective 'x': judge module 'os' is not allowed"),
    ({"objectives": ["x=/no/such/model"]}, "is not a Hugging Face model directory"),
    ({"payout_objective": "kindness"}, "not one of the round's objectives"),
    ({"payout_objective": "helpfulness=-1"}, "non-negative"),
    ({"payout_objective": "helpfulness=0"}, "must not all be zero"),
    ({"decoding": {"temprature": 0.5}}, "unknown decoding option"),
    ({"decoding": {"top_p": 2}}, "top_p must be in"),
    ({"prompts": 0}, "prompts must be a whole number"),
    ({"utility": "bt_loglik"}, "objectives only apply to the 'reward' utility"),
])
def test_bad_reward_requests_are_refused_before_anything_is_written(market, fake_model_dir, overrides, message):
    with pytest.raises(ValidationError, match=message):
        create(market, fake_model_dir, **overrides)
    assert ValuationRound.objects.count() == 0


def test_the_judge_allow_list_comes_from_settings(market, fake_model_dir, settings):
    spec = "tests.valuation.engine.test_judges:length_judge"
    with pytest.raises(ValidationError, match="not allowed"):
        create(market, fake_model_dir, objectives=[f"length={spec}"])
    settings.JUDGE_MODULES = ["tests.valuation"]
    r = create(market, fake_model_dir, objectives=[f"length={spec}"])
    assert r.config["reward"]["objectives"] == [{"name": "length", "judge": spec}]


def test_api_creates_a_reward_round_and_refuses_a_bad_one(api_staff, market, fake_model_dir):
    data = {"name": "api-reward", "pool": "10.00", "eval_set": "eval", "base_model": str(fake_model_dir),
            "utility": "reward", "composition": "mean",
            "objectives": [{"name": "helpfulness", "judge": "helpfulness"}, "harmlessness"],
            "payout_objective": {"harmlessness": 1}, "decoding": {"greedy": True}, "prompts": 4}
    r = api_staff.post("/api/rounds/", data, format="json")
    assert r.status_code == 201, r.json()
    reward = r.json()["config"]["reward"]
    assert [o["name"] for o in reward["objectives"]] == ["helpfulness", "harmlessness"]
    assert reward["payout"] == {"harmlessness": 1.0} and reward["decoding"]["greedy"] is True
    bad = api_staff.post("/api/rounds/", dict(data, name="bad", objectives=["x=subprocess:run"]), format="json")
    assert bad.status_code == 400 and "not allowed" in str(bad.json())


def test_values_api_gives_staff_every_objective_and_an_owner_only_their_own(api_staff, market, staff_user):
    from marketplace.models import DataOwner
    from rest_framework.test import APIClient

    team = list(DataOwner.objects.order_by("user__username"))
    r = write_results(round_for("done-reward", market, team), [0.2, 0.1])
    write_objective_values(r, {"helpfulness": [0.3, -0.1], "harmlessness": [0.05, 0.2]}, stderr=0.01)
    body = api_staff.get(f"/api/rounds/{r.pk}/values/").json()
    assert body["payout_objective"] == {"helpfulness": 0.5, "harmlessness": 0.5}
    assert [v["owner"] for v in body["objectives"]["helpfulness"]] == ["alice", "bob"]
    assert body["objectives"]["harmlessness"][1]["shapley"] == 0.2
    assert body["objectives"]["harmlessness"][1]["ci_low"] == pytest.approx(0.2 - 0.0196)
    alice = APIClient()
    alice.force_authenticate(team[0].user)
    own = alice.get(f"/api/rounds/{r.pk}/values/").json()
    assert {name: [v["owner"] for v in rows] for name, rows in own["objectives"].items()} == {
        "helpfulness": ["alice"], "harmlessness": ["alice"]}


def test_signature_selector_orders_owners_and_objectives_as_the_round_does(market):
    from marketplace.models import DataOwner

    team = list(DataOwner.objects.order_by("user__username"))
    r = write_results(round_for("sig", market, team), [0.2, 0.1])
    write_objective_values(r, {"zeta": [0.3, -0.1], "alpha": [0.05, 0.2]})
    signature = selectors.round_signature(valuation_round=r)
    assert (signature["x_objective"], signature["y_objective"]) == ("zeta", "alpha")  # round order, not a–z
    assert signature["names"] == ["alice", "bob"] and signature["y_values"] == [0.05, 0.2]
    assert selectors.round_signature(valuation_round=r, x="alpha", y="zeta")["x_values"] == [0.05, 0.2]
    plain = write_results(round_for("plain", market, team), [0.2, 0.1])
    assert selectors.round_signature(valuation_round=plain) is None
    assert selectors.round_generations(valuation_round=plain, names={0: "alice", 1: "bob"}) is None


def test_web_form_creates_a_reward_round(client, staff_user, market, fake_model_dir):
    client.force_login(staff_user)
    form = {"name": "web-reward", "pool": "10", "currency": "USD", "eval_set": "eval",
            "base_model": str(fake_model_dir), "utility": "reward", "composition": "mean", "estimator": "auto",
            "seed": "0", "objectives": "helpfulness\nharmlessness", "payout_objective": "helpfulness",
            "prompts": "4", "max_new_tokens": "16", "top_p": "0.9"}
    response = client.post("/rounds/new/", form)
    assert response.status_code == 302
    reward = ValuationRound.objects.get(name="web-reward").config["reward"]
    assert reward["payout"] == {"helpfulness": 1.0} and reward["prompts"] == 4
    assert reward["decoding"]["max_new_tokens"] == 16 and reward["decoding"]["top_p"] == 0.9
    bad = client.post("/rounds/new/", dict(form, name="web-bad", utility="preference_accuracy"))
    assert bad.status_code == 400 and "only apply to the &#x27;reward&#x27; utility" in bad.content.decode()


def test_run_round_cli_needs_an_objective_for_the_reward_utility(market, fake_model_dir):
    with pytest.raises(CommandError, match="needs at least one objective"):
        call_command("run_round", "--name", "cli", "--pool", "1", "--base-model", str(fake_model_dir),
                     "--eval-set", "eval", "--utility", "reward")
    with pytest.raises(CommandError, match="payout objective names 'kindness'"):
        call_command("run_round", "--name", "cli", "--pool", "1", "--base-model", str(fake_model_dir),
                     "--eval-set", "eval", "--utility", "reward", "--objective", "helpfulness",
                     "--payout-objective", "kindness")
    assert ValuationRound.objects.count() == 0


def test_generations_api_lists_each_coalitions_responses_for_staff_only(api_staff, api_a, market):
    from marketplace.models import DataOwner
    from valuation.models import CoalitionGeneration

    team = list(DataOwner.objects.filter(user__username__in=["alice", "bob"]).order_by("user__username"))
    r = write_objective_values(write_results(round_for("gen", market, team), [0.2, 0.1]), {"helpfulness": [0.1, 0.2]})
    ValuationRound.objects.filter(pk=r.pk).update(config=dict(r.config, reward=dict(r.config["reward"], prompts=2)))
    for mask, text in [(0, "base"), (1, "alice"), (3, "both")]:
        CoalitionGeneration.objects.create(round=r, mask=mask, size=mask.bit_count(), scores={"helpfulness": 0.5},
                                           responses=[f"{text} a", f"{text} b"], n_tokens=4, seconds=0.1)
    body = api_staff.get(f"/api/rounds/{r.pk}/generations/").json()
    assert body["count"] == 3 and len(body["prompts"]) == 2
    assert [g["members"] for g in body["results"]] == [[], ["alice"], ["alice", "bob"]]
    assert body["results"][2]["responses"] == ["both a", "both b"]
    assert api_a.get(f"/api/rounds/{r.pk}/generations/").status_code == 403
    plain = write_results(round_for("plain", market, team), [0.2, 0.1])
    assert api_staff.get(f"/api/rounds/{plain.pk}/generations/").status_code == 404
