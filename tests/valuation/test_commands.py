"""The round commands end to end with the real tiny model: `run_round --json`,
`export_payouts`, and `demo --no-serve` (what `make demo` runs before serving)."""
import csv
import io
import json
import shutil
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marketplace.models import Contribution, PreferencePair
from valuation.models import ValuationRound
from valuation.engine import synthetic
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_run_round_json_then_export(tiny_base_model, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    add_owner("clean", synthetic.owner_pairs("clean_mix", 60, 21))
    add_owner("adversary", synthetic.owner_pairs("adversarial", 60, 22))
    add_eval_set("eval", synthetic.eval_pairs(60, 1))
    out = io.StringIO()
    call_command("run_round", "--name", "cli", "--pool", "10.00", "--base-model", str(tiny_base_model),
                 "--eval-set", "eval", "--utility", "bt_loglik", "--seed", "1", "--json", stdout=out,
                 stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert result["round"] == "cli" and result["status"] == "done" and result["estimator"] == "exact"
    assert result["values"]["clean"] > 0 > result["values"]["adversary"]
    assert result["payouts"] == {"clean": "10.00", "adversary": "0.00"}
    assert set(result["utilities"]) == {"{}", "adversary", "clean", "adversary+clean"}
    assert result["utilities"]["{}"] == pytest.approx(-0.6931471805599453)

    out = io.StringIO()
    call_command("export_payouts", "cli", "--format", "csv", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["owner"], r["amount"]) for r in rows] == [("clean", "10.00"), ("adversary", "0.00")]
    out = io.StringIO()
    call_command("export_payouts", str(ValuationRound.objects.get().pk), "--format", "json", stdout=out)
    assert sum(Decimal(r["amount"]) for r in json.loads(out.getvalue())) == Decimal("10")
    with pytest.raises(CommandError, match="no round 'nope'"):
        call_command("export_payouts", "nope")
    with pytest.raises(CommandError, match="no eval set named 'missing'"):
        call_command("run_round", "--name", "x", "--pool", "1", "--base-model", str(tiny_base_model),
                     "--eval-set", "missing")


def test_demo_command_sets_up_the_marketplace_and_runs_a_round(tiny_base_model, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.ARTIFACTS_DIR = tmp_path / "var" / "artifacts"
    # The session's tiny model is the demo's own build (same corpus, config, seed): a cache hit.
    shutil.copytree(tiny_base_model, settings.ARTIFACTS_DIR / "base_model")
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    assert "mallory: upload refused as expected" in text and "admin / admin-demo-pass" in text
    r = ValuationRound.objects.get(name="demo-round")
    assert r.status == "done" and r.participants.count() == len(synthetic.DEMO_OWNERS)
    # The demo registers its tiny model and runs its rounds on it by name.
    assert r.base_model.name == "tiny-demo" and r.base_model_hash == r.base_model.content_hash
    # The demo's staff verify its owners (each its own payee); the refused copier stays unverified.
    assert "alice: payee 'alice' verified" in text
    assert sorted(r.participants.values_list("payee__name", flat=True)) == \
        sorted(name for name, _, _ in synthetic.DEMO_OWNERS)
    values = {v.owner.name: v.shapley for v in r.values.all()}
    assert min(values, key=values.get) == "dave" and values["dave"] < 0
    assert values["alice"] > values["carol"] and values["bob"] > values["carol"]
    assert sum(p.amount for p in r.payouts.all()) == Decimal("1000.00")
    assert Contribution.objects.get(owner__user__username="mallory").status == "refused"
    report = r.data_quality_report  # the demo opts into the data-quality stage: owners see flagged pairs
    assert report.status == "done" and report.n_pairs == sum(n for _, _, n in synthetic.DEMO_OWNERS)
    dave = report.pair_values.filter(owner__user__username="dave")
    assert dave.filter(flagged=True).count() >= 0.8 * dave.count()  # every one of dave's labels is reversed
    assert not report.pair_values.filter(owner__user__username="alice", flagged=True).exists()
    n_pairs = sum(n for _, _, n in synthetic.DEMO_OWNERS)
    assert PreferencePair.objects.count() == n_pairs
    assert_demo_signatures(ValuationRound.objects.get(name="demo-signatures"), values)
    again = io.StringIO()
    call_command("demo", "--no-serve", stdout=again, stderr=io.StringIO())  # idempotent: reuses everything
    assert ValuationRound.objects.count() == 2 and PreferencePair.objects.count() == n_pairs


def assert_demo_signatures(r, first_round_values):
    """The seed paper's figure on the demo domain: what each owner's data does to generations, per objective."""
    assert r.status == "done" and r.utility == "reward" and r.estimator_used == "exact"
    assert all(p.model_reused for p in r.participants.all())  # the first round's models: no training
    phi = {(v.owner.name, v.objective): v.shapley for v in r.objective_values.all()}
    helpful = {owner: phi[(owner, "helpfulness")] for owner, _, _ in synthetic.DEMO_OWNERS}
    harmless = {owner: phi[(owner, "harmlessness")] for owner, _, _ in synthetic.DEMO_OWNERS}
    assert max(helpful, key=helpful.get) == "alice", helpful  # clean helpful data: most helpful generations
    assert max(harmless, key=harmless.get) == "bob", harmless  # clean harmless data: most harmless generations
    assert helpful["dave"] < 0 and harmless["dave"] < 0  # the adversary hurts both
    assert min(helpful, key=helpful.get) == "dave" and min(harmless, key=harmless.get) == "dave"
    assert r.generations.count() == 2 ** len(synthetic.DEMO_OWNERS)
    assert sum(p.amount for p in r.payouts.all()) == Decimal("1000.00")
