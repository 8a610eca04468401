"""The semantic screen of a round (stages/screening.py, screening.py, screening_apis.py), fast: embeddings are
a deterministic stand-in (one random vector per text, so a copy has the same vector), the screen arithmetic
and everything around it are real. The tiny base model's own vectors: test_screening_stage.py (slow)."""
import hashlib

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from valuation import screening, services, stages
from valuation.engine import synthetic
from valuation.engine.representations import Representations
from valuation.models import OwnerScreen, Payout, ScreenReport, ValuationRound
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = pytest.mark.django_db


def topic_vector(prompt: str, response: str) -> np.ndarray:
    """What the question asks about and what kind of answer it is; not the words (a stand-in for a model)."""
    match = synthetic._PROMPT_RE.search(prompt)
    key = (match.groups() if match else (prompt,)) + (synthetic.helpfulness_judge([prompt], [response])[0],
                                                      synthetic.harmlessness_judge([prompt], [response])[0])
    seed = int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little")
    return np.random.default_rng(seed).normal(size=32).astype(np.float32)


def fake_representations(base_dir, pairs, **kwargs):
    chosen = np.stack([topic_vector(p.prompt, p.chosen) for p in pairs])
    rejected = np.stack([topic_vector(p.prompt, p.rejected) for p in pairs])
    return Representations(chosen=chosen, rejected=rejected, computed=len(pairs))


def _other_template(text: str, v: str, o: str) -> str:
    fact = synthetic.TASKS[v]
    for templates in (synthetic.HELPFUL, synthetic.EVASIVE, synthetic.RUDE, synthetic.DANGEROUS):
        rendered = [" " + t.format(v=v, o=o, fact=fact, Fact=fact[0].upper() + fact[1:]) for t in templates]
        if text in rendered:
            return rendered[(rendered.index(text) + 1) % len(rendered)]
    raise AssertionError(f"not a synthetic response: {text!r}")


def paraphrase(pair):
    """The same question and preference in another phrasing and other response templates: every sentence
    reworded, so the upload's copy checks do not see it."""
    from valuation.engine.data import Pair

    v, q, o = synthetic._PROMPT_RE.search(pair.prompt).groups()
    phrasing = next(i for i, t in enumerate(synthetic.PHRASINGS) if t.format(v=v, q=q, o=o) in pair.prompt)
    question = synthetic.PHRASINGS[(phrasing + 1) % len(synthetic.PHRASINGS)].format(v=v, q=q, o=o)
    return Pair(prompt=f"Question: {question}\nAnswer:", chosen=_other_template(pair.chosen, v, o),
                rejected=_other_template(pair.rejected, v, o))


@pytest.fixture
def fake_embeddings(monkeypatch):
    import valuation.engine.representations as representations

    monkeypatch.setattr(representations, "pair_representations", fake_representations)


@pytest.fixture
def market(fake_model_dir):
    """honest: its own prompts; copier: 4 of its 10 pairs paraphrase eval pairs; twin: 5 paraphrase honest's."""
    evals = synthetic.eval_pairs(12, 0)
    honest = synthetic.owner_pairs("clean_helpful", 10, 1)
    eval_set = add_eval_set("eval", evals)
    add_owner("honest", honest)
    add_owner("copier", [paraphrase(p) for p in evals[:4]] + synthetic.owner_pairs("clean_mix", 6, 2))
    add_owner("twin", [paraphrase(p) for p in honest[:5]] + synthetic.owner_pairs("clean_harmless", 5, 3))
    add_owner("other", synthetic.owner_pairs("clean_mix", 10, 4))
    return services.round_create(name="r", pool="100.00", eval_set=eval_set, base_model_dir=str(fake_model_dir))


def finish(r) -> ValuationRound:
    """Mark the round done with draft payouts (valuing itself is not what is tested here)."""
    for p in r.participants.all():
        Payout.objects.create(round=r, owner=p.owner, amount="25.00", share="0.25", currency="USD")
    ValuationRound.objects.filter(pk=r.pk).update(status=ValuationRound.Status.DONE)
    r.refresh_from_db()
    return r


def rows(r) -> dict:
    return {row.owner.name: row for row in OwnerScreen.objects.filter(report__round=r).select_related("owner__user")}


def test_the_round_records_the_thresholds_in_settings(fake_model_dir, settings, market):
    assert market.config["screening"]["screen"]["pair_threshold"] == settings.SCREEN_PAIR_THRESHOLD
    settings.SCREEN_PAIR_THRESHOLD, settings.SCREEN_SHARE_THRESHOLD = 0.8, 0.2
    add_eval_set("eval2", synthetic.eval_pairs(3, 1))
    r = services.round_create(name="r2", pool="1.00", eval_set=market.eval_set, base_model_dir=str(fake_model_dir))
    assert r.config["screening"]["screen"] | {"chunk": 0} == {"pair_threshold": 0.8, "share_threshold": 0.2,
                                                              "representation": "concat", "chunk": 0}
    settings.SCREEN_PAIR_THRESHOLD = 1.5
    with pytest.raises(ValidationError, match="invalid screening settings"):
        services.round_create(name="r3", pool="1.00", eval_set=market.eval_set, base_model_dir=str(fake_model_dir))


def test_a_copier_of_eval_and_a_twin_are_flagged_an_honest_owner_is_not_only_by_eval(market, fake_embeddings):
    report = stages.run_screening(market)
    assert report.status == ScreenReport.Status.DONE and report.error == ""
    assert report.n_pairs == 40 and report.n_eval == 12 and report.config == market.config["screening"]
    by = rows(market)
    assert (by["copier"].n_eval, by["copier"].share_eval, by["copier"].flagged) == (4, 0.4, True)
    assert by["copier"].max_eval == pytest.approx(1.0)
    assert (by["twin"].n_owner, by["twin"].n_eval, by["twin"].flagged) == (5, 0, True)
    assert by["twin"].matched_owners == [{"owner_id": by["honest"].owner_id, "owner": "honest", "pairs": 5}]
    # the owner who was copied is near-identical to another owner too: staff see to whom, and decide
    assert by["honest"].n_owner == 5 and by["honest"].matched_owners[0]["owner"] == "twin" and by["honest"].flagged
    assert (by["other"].n_eval, by["other"].n_owner, by["other"].flagged) == (0, 0, False)
    assert stages.run_screening(market).pk == report.pk and OwnerScreen.objects.count() == 4  # done: kept as is


def test_changed_owner_data_fails_the_screen_not_the_round(market, fake_embeddings):
    from marketplace.models import PreferencePair

    PreferencePair.objects.filter(contribution__owner__user__username="other").update(chosen="edited")
    report = stages.run_screening(market)  # does not raise
    assert report.status == ScreenReport.Status.FAILED and "data changed since the round was created" in report.error
    assert not OwnerScreen.objects.exists()


def test_a_screen_that_cannot_run_is_recorded_failed_and_blocks_approval_until_acknowledged(market, staff_user):
    report = stages.run_screening(market)  # the fake model directory has no weights: embedding fails
    assert report.status == ScreenReport.Status.FAILED and report.error
    r = finish(market)
    with pytest.raises(ValidationError, match="the semantic screen failed and the failure is not acknowledged"):
        services.payout_approve(valuation_round=r, approved_by=staff_user)
    assert not Payout.objects.filter(status=Payout.Status.APPROVED).exists()
    with pytest.raises(ValidationError, match="note"):
        screening.screen_acknowledge(valuation_round=r, acknowledged_by=staff_user, note="  ")
    screening.screen_acknowledge(valuation_round=r, acknowledged_by=staff_user, note="model moved; checked by hand")
    report.refresh_from_db()
    assert report.acknowledged_by == staff_user and report.acknowledged_at and "by hand" in report.acknowledgement_note
    with pytest.raises(ValidationError, match="already acknowledged"):
        screening.screen_acknowledge(valuation_round=r, acknowledged_by=staff_user, note="again")
    assert services.payout_approve(valuation_round=r, approved_by=staff_user) == 4


def test_approval_is_refused_until_every_flagged_owner_is_acknowledged(market, fake_embeddings, staff_user):
    stages.run_screening(market)
    r = finish(market)
    with pytest.raises(ValidationError) as refused:
        services.payout_approve(valuation_round=r, approved_by=staff_user)
    message = refused.value.messages[0]
    assert "acknowledge the semantic screen" in message
    assert all(f"{name} is above the screen's threshold" in message for name in ("copier", "honest", "twin"))
    assert "other" not in message
    by = rows(r)
    with pytest.raises(ValidationError, match="not above the screen's threshold"):
        screening.screen_acknowledge(valuation_round=r, owner=by["other"].owner, acknowledged_by=staff_user, note="x")
    with pytest.raises(ValidationError, match="only a failed screen"):
        screening.screen_acknowledge(valuation_round=r, acknowledged_by=staff_user, note="x")
    for name in ("copier", "honest"):
        screening.screen_acknowledge(valuation_round=r, owner=by[name].owner, acknowledged_by=staff_user, note="ok")
    with pytest.raises(ValidationError, match="twin is above") as still:
        services.payout_approve(valuation_round=r, approved_by=staff_user)
    assert "copier" not in still.value.messages[0]
    screening.screen_acknowledge(valuation_round=r, owner=by["twin"].owner, acknowledged_by=staff_user, note="ok")
    assert services.payout_approve(valuation_round=r, approved_by=staff_user) == 4
    with pytest.raises(ValidationError, match="already approved"):
        screening.screen_acknowledge(valuation_round=r, owner=by["twin"].owner, acknowledged_by=staff_user, note="x")


def test_the_api_shows_staff_the_table_and_acknowledges(market, fake_embeddings, api_staff):
    stages.run_screening(market)
    r = finish(market)
    refused = api_staff.post(f"/api/rounds/{r.pk}/approve/")
    assert refused.status_code == 400 and "acknowledge the semantic screen" in refused.json()["detail"]
    table = api_staff.get(f"/api/rounds/{r.pk}/screen/").json()
    assert table["status"] == "done" and len(table["owners"]) == 4 and len(table["approval_blockers"]) == 3
    copier = next(o for o in table["owners"] if o["owner"] == "copier")
    assert copier["share_eval"] == 0.4 and copier["flagged"] and copier["acknowledged_at"] is None
    assert api_staff.post(f"/api/rounds/{r.pk}/screen/acknowledge/", {"owner_id": copier["owner_id"]},
                          format="json").status_code == 400  # a note is required
    stranger = max(o["owner_id"] for o in table["owners"]) + 1000
    unknown = api_staff.post(f"/api/rounds/{r.pk}/screen/acknowledge/", {"owner_id": stranger, "note": "x"},
                             format="json")
    assert unknown.status_code == 400 and "not in this round's screen" in str(unknown.json())
    for owner in [o for o in table["owners"] if o["flagged"]]:
        done = api_staff.post(f"/api/rounds/{r.pk}/screen/acknowledge/",
                              {"owner_id": owner["owner_id"], "note": "looked at the pairs"}, format="json")
        assert done.status_code == 200, done.json()
    after = api_staff.get(f"/api/rounds/{r.pk}/screen/").json()
    assert after["approval_blockers"] == []
    assert {o["acknowledged_by"] for o in after["owners"] if o["flagged"]} == {"staff"}
    assert api_staff.post(f"/api/rounds/{r.pk}/approve/").json()["approved"] == 4


def test_the_round_page_shows_staff_the_table_and_the_button_acknowledges(market, fake_embeddings, staff_user):
    stages.run_screening(market)
    r = finish(market)
    client = Client()
    client.force_login(staff_user)
    html = client.get(f"/rounds/{r.pk}/").content.decode()
    assert 'id="screen-table"' in html and "3 owners above threshold" in html and html.count('class="screen-ack"') == 3
    refused = client.post(f"/rounds/{r.pk}/approve/", follow=True).content.decode()
    assert "acknowledge the semantic screen" in refused and not Payout.objects.filter(status="approved").exists()
    by = rows(r)
    empty = client.post(f"/rounds/{r.pk}/screen/acknowledge/", {"owner": by["copier"].owner_id, "note": ""},
                        follow=True).content.decode()
    assert "say why" in empty
    for name in ("copier", "honest", "twin"):
        client.post(f"/rounds/{r.pk}/screen/acknowledge/", {"owner": by[name].owner_id, "note": f"{name} checked"})
    html = client.get(f"/rounds/{r.pk}/").content.decode()
    assert "copier checked" in html and 'class="screen-ack"' not in html
    client.post(f"/rounds/{r.pk}/approve/")
    assert Payout.objects.filter(status="approved").count() == 4


def test_owners_can_neither_see_nor_acknowledge_the_screen(market, fake_embeddings, staff_user):
    from django.contrib.auth import get_user_model

    stages.run_screening(market)
    r = finish(market)
    copier = get_user_model().objects.get(username="copier")
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(copier)
    assert api.get(f"/api/rounds/{r.pk}/screen/").status_code == 403
    row = rows(r)["copier"]
    assert api.post(f"/api/rounds/{r.pk}/screen/acknowledge/", {"owner_id": row.owner_id, "note": "me"},
                    format="json").status_code == 403
    client = Client()
    client.force_login(copier)
    page = client.post(f"/rounds/{r.pk}/screen/acknowledge/", {"owner": row.owner_id, "note": "me"})
    assert page.status_code == 302 and "/login" in page["Location"]  # staff pages send others to sign in
    assert client.get(f"/rounds/{r.pk}/").status_code == 302
    row.refresh_from_db()
    assert row.acknowledged_at is None
    for path in (f"/rounds/{r.pk}/statement/", "/rounds/my-payouts/", f"/api/rounds/{r.pk}/",
                 f"/api/rounds/{r.pk}/payouts/"):
        shown = client.get(path).content.decode() if not path.startswith("/api") else api.get(path).content.decode()
        assert "semantic screen" not in shown.lower() and "near-identical" not in shown and "share_eval" not in shown
    # nor the thresholds (they would say how far to reword): staff's view of the round has them
    for config in (api.get(f"/api/rounds/{r.pk}/").json()["config"],
                   api.get("/api/rounds/").json()["results"][0]["config"]):
        assert not {"screening", "excluded_owners", "eval_lengths"} & set(config)  # staff-only parts of the config
    staff = APIClient()
    staff.force_authenticate(staff_user)
    assert staff.get(f"/api/rounds/{r.pk}/").json()["config"]["screening"] == r.config["screening"]
    assert staff.get("/api/rounds/").json()["results"][0]["config"]["screening"] == r.config["screening"]


def test_the_celery_valuing_task_screens_before_valuing(market, monkeypatch):
    from valuation import dispatch

    calls = []
    monkeypatch.setattr(stages, "run_screening", lambda r, **kw: calls.append("screening"))
    monkeypatch.setattr(stages, "run_valuing", lambda r, **kw: calls.append("valuing"))
    ValuationRound.objects.filter(pk=market.pk).update(status=ValuationRound.Status.VALUING)
    dispatch.round_value(round_id=market.pk)
    assert calls == ["screening", "valuing"]


def test_the_foreground_runner_screens_between_scoring_and_valuing(market, monkeypatch):
    calls = []
    for name in ("run_training", "run_scoring", "run_screening", "run_valuing"):
        monkeypatch.setattr(stages, name, lambda r, name=name, **kw: calls.append(name))
    monkeypatch.setattr(stages, "run_data_quality", lambda r, **kw: None)
    services.round_execute(round_id=market.pk)
    assert calls == ["run_training", "run_scoring", "run_screening", "run_valuing"]


def test_run_rounds_summary_names_the_flagged_owners(market, fake_embeddings):
    from valuation.management.commands.run_round import format_summary, round_summary

    stages.run_screening(market)
    r = finish(market)
    summary = round_summary(r)
    assert summary["screen"]["flagged"] == ["copier", "honest", "twin"] and len(summary["screen"]["approval_blockers"]) == 3
    assert "semantic screen: done, above threshold: copier, honest, twin; acknowledge" in format_summary(r, summary)


class Interrupt(BaseException):
    """Stands in for a kill: not an Exception, so nothing is recorded as failed."""


def test_an_interrupted_screen_is_left_running_and_the_next_run_finishes_it(market, monkeypatch):
    import valuation.engine.representations as representations

    def killed(*args, **kwargs):
        raise Interrupt()

    monkeypatch.setattr(representations, "pair_representations", killed)
    with pytest.raises(Interrupt):
        stages.run_screening(market)
    assert ScreenReport.objects.get(round=market).status == ScreenReport.Status.RUNNING
    r = finish(market)
    with pytest.raises(ValidationError, match="the semantic screen has not finished"):
        services.payout_approve(valuation_round=r, approved_by=None)
    monkeypatch.setattr(representations, "pair_representations", fake_representations)
    report = stages.run_screening(market)
    assert report.status == ScreenReport.Status.DONE and rows(market)["copier"].flagged


def test_a_long_screen_keeps_the_rounds_heartbeat_and_a_replay_writes_none(market, fake_embeddings):
    from datetime import timedelta

    from django.utils import timezone

    from valuation.stages import screening as stage

    old = timezone.now() - timedelta(hours=1)
    ValuationRound.objects.filter(pk=market.pk).update(heartbeat_at=old)
    stage.compute_screen(market, market.config["screening"])  # what a replay calls
    assert ValuationRound.objects.get(pk=market.pk).heartbeat_at == old
    stages.run_screening(market)
    assert ValuationRound.objects.get(pk=market.pk).heartbeat_at > old
