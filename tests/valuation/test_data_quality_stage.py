"""The data-quality stage on the tiny model: a real round that opted in, resumed after a kill,
and the value_pairs / curate commands. Slow: trains DPO models (one epoch) and embeds every pair."""
import io
import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marketplace.parsing import parse_upload
from valuation import data_quality, services
from valuation.engine import synthetic
from valuation.models import DataQualityReport, PairValue, ValuationRound
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
# Below the defaults (64, 6, 16) for time, but not so far that the ranking is noise: at (24, 4, 8) the lowest
# 12 of the mixed owner held 8 reversed pairs on one CPU family and 10 on another; at (32, 6, 16), 11.
OPTIONS = {"chain_size": 32, "coverage": 6, "permutations": 16, "clusters": 8, "proxy_permutations": 60}


class Interrupt(BaseException):
    """Stands in for a kill: not an Exception, so nothing is marked failed."""


@pytest.fixture
def shared_artifacts(settings, tmp_path_factory, tmp_path):
    """Owner models shared by this module's rounds (trained once), embeddings per test (each starts cold)."""
    settings.ARTIFACTS_DIR = tmp_path_factory.getbasetemp() / "data-quality-artifacts"
    settings.REPRESENTATIONS_DIR = tmp_path / "representations"
    return tmp_path


@pytest.fixture
def market():
    """clean (helpful), mixed (harmless with 25% of its labels reversed) and an adversary (all reversed)."""
    add_owner("clean", synthetic.owner_pairs("clean_helpful", 48, 21))
    mixed, flipped = synthetic.flip_labels(synthetic.owner_pairs("clean_harmless", 48, 22), 0.25, seed=1)
    add_owner("mixed", mixed)
    add_owner("adversary", synthetic.owner_pairs("adversarial", 24, 23))
    return add_eval_set("eval", synthetic.eval_pairs(80, 2)), flipped


def values_by_owner(r) -> dict[str, np.ndarray]:
    rows = PairValue.objects.filter(report__round=r).order_by("pair__contribution_id", "pair__row_number")
    out: dict[str, list] = {}
    for owner, value in rows.values_list("owner__user__username", "value"):
        out.setdefault(owner, []).append(value)
    return {k: np.asarray(v) for k, v in out.items()}


def test_an_opted_in_round_values_every_pair_and_flags_the_reversed_ones(market, tiny_base_model, shared_artifacts):
    eval_set, flipped = market
    r = services.round_create(name="dq", pool="100.00", eval_set=eval_set, base_model_dir=str(tiny_base_model),
                              training={"epochs": 1}, data_quality=True, data_quality_options=OPTIONS)
    r = services.round_execute(round_id=r.pk)
    assert r.status == ValuationRound.Status.DONE and r.values.count() == 3  # the round itself is untouched
    report = r.data_quality_report
    assert report.status == DataQualityReport.Status.DONE and report.error == ""
    assert report.n_pairs == 120 == PairValue.objects.filter(report=report).count()
    # The semantic screen embedded every pair before valuing; the stage found them all on disk.
    assert r.screen_report.n_embedded == 120 + 80 and report.n_embedded == 0
    assert report.values_seed == 0 and report.n_chains == 6 * 4  # coverage × ⌈120 / 32⌉
    values = values_by_owner(r)
    lowest = np.argsort(values["mixed"])[: flipped.sum()]
    assert flipped[lowest].mean() >= 0.8  # the reversed labels are the mixed owner's lowest-valued pairs
    mixed_flags = PairValue.objects.filter(report=report, owner__user__username="mixed").order_by(
        "pair__row_number").values_list("flagged", flat=True)
    assert flipped[np.asarray(list(mixed_flags))].mean() >= 0.8  # what is flagged was reversed
    assert values["adversary"].mean() < 0 < values["clean"].mean()
    adversary = PairValue.objects.filter(report=report, owner__user__username="adversary")
    assert adversary.filter(flagged=True, reason="reversed").count() >= 0.8 * adversary.count()
    clusters = list(report.clusters.all())
    assert sum(c.size for c in clusters) == 120
    worst = min(clusters, key=lambda c: c.value)
    assert worst.n_flagged >= worst.size // 2  # the lowest cluster is the reversed labels


def test_a_killed_stage_resumes_embeds_nothing_twice_and_gives_the_same_values(market, tiny_base_model,
                                                                            shared_artifacts):
    eval_set, _ = market
    r = services.round_create(name="dq-kill", pool="100.00", eval_set=eval_set, base_model_dir=str(tiny_base_model),
                              training={"epochs": 1}, data_quality=True, data_quality_options=OPTIONS)

    def kill_during_values(stage, done, total):
        if stage == "pair values" and done == 3:
            raise Interrupt("killed")

    with pytest.raises(Interrupt):
        services.round_execute(round_id=r.pk, on_progress=kill_during_values)
    r.refresh_from_db()
    report = DataQualityReport.objects.get(round=r)
    assert r.status == ValuationRound.Status.DONE and r.payouts.count() == 3  # values and payouts stand
    assert report.status == DataQualityReport.Status.RUNNING and report.runner == "" and not report.pair_values.exists()
    resumed = services.round_execute(round_id=r.pk)  # a finished round: only the stage resumes
    report.refresh_from_db()
    assert report.status == DataQualityReport.Status.DONE and report.n_embedded == 0  # every embedding was on disk
    first = values_by_owner(resumed)
    # Recompute from scratch (a failed report starts over): the seeded values are identical.
    DataQualityReport.objects.filter(pk=report.pk).update(status=DataQualityReport.Status.FAILED)
    data_quality.data_quality_request(valuation_round=resumed, queue=False)
    data_quality.data_quality_run(valuation_round=resumed)
    again = values_by_owner(resumed)
    assert all(np.array_equal(first[k], again[k]) for k in first)

    out = io.StringIO()
    call_command("value_pairs", str(r.pk), "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["n_pairs"] == 120 and {o["username"] for o in summary["owners"]} == {"clean", "mixed", "adversary"}
    curated = shared_artifacts / "curated.jsonl"
    call_command("curate", "--size", "30", "--method", "qocs", "--round", "dq-kill", "--out", str(curated),
                 stderr=io.StringIO())
    with open(curated, "rb") as handle:
        parsed = parse_upload(handle, filename="curated.jsonl")
    assert not parsed.errors and len(parsed.pairs) == 30  # the upload format, accepted by the one parser
    stdout = io.StringIO()
    call_command("curate", "--size", "10", "--method", "qwcs", "--tau", "0.5", stdout=stdout)
    assert len(stdout.getvalue().splitlines()) == 10
    with pytest.raises(CommandError, match=r"1\.\.120"):
        call_command("curate", "--size", "500", "--method", "qocs", "--round", str(r.pk))
    out = io.StringIO()
    call_command("value_pairs", str(r.pk), "--chain-size", "12", stdout=out, stderr=io.StringIO())
    report.refresh_from_db()
    assert report.config["values"]["chain_size"] == 12 and report.config["values"]["coverage"] == 6  # only what was named
    assert report.n_embedded == 0 and report.n_chains == 6 * 10
    assert "flagged" in out.getvalue()
