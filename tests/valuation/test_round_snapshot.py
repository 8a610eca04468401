"""Every stage reads a round's data from the snapshot the round took when it was created
(valuation/stages/common.py `snapshot_pairs`): uploads made while it runs never enter it, the
data-quality stage values exactly the pairs training used, and data that changed under the round is
refused with a plain message instead of a traceback."""
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from marketplace.models import Contribution
from marketplace.services import contribution_create
from valuation import services
from valuation.engine import synthetic
from valuation.models import DataQualityReport
from valuation.stages.common import owner_pairs, pairs_digest, snapshot_pairs
from valuation.stages.data_quality import _pool, ensure_data_quality, run_data_quality
from tests.conftest import jsonl_bytes, upload
from tests.valuation.conftest import add_eval_set, add_owner, pairs_records

pytestmark = pytest.mark.django_db
SMALL = {"chain_size": 8, "coverage": 2, "permutations": 3, "clusters": 2, "proxy_permutations": 10}


def upload_more(owner, seed: int, n: int = 4):
    pairs = synthetic.owner_pairs("clean_helpful", n, seed)
    return contribution_create(owner=owner, file=upload(f"more-{seed}.jsonl", jsonl_bytes(pairs_records(pairs))),
                               filename=f"more-{seed}.jsonl")


def two_uploads_in_reverse_id_order(owner) -> None:
    """Contribution ids are random (config/ids.py): make the larger id the older upload, the case where
    id order and upload order disagree."""
    upload_more(owner, 80)
    older, newer = sorted(Contribution.objects.filter(owner=owner), key=lambda c: c.created_at)
    low, high = sorted([older, newer], key=lambda c: c.pk)
    Contribution.objects.filter(pk=high.pk).update(created_at=low.created_at - timedelta(seconds=1))


def make_round(model_dir, options=None):
    alice = add_owner("alice", synthetic.owner_pairs("clean_helpful", 6, 71))
    two_uploads_in_reverse_id_order(alice)
    bob = add_owner("bob", synthetic.owner_pairs("clean_harmless", 5, 72))
    eval_set = add_eval_set("snap-eval", synthetic.eval_pairs(12, 3))
    r = services.round_create(name="snap", pool="10.00", eval_set=eval_set, base_model_dir=str(model_dir),
                              data_quality=True, data_quality_options=options or SMALL)
    return r, alice, bob


def test_the_data_quality_pool_is_the_snapshot_training_reads_in_its_order(fake_model_dir):
    r, alice, bob = make_round(fake_model_dir)
    snapshot = {p.owner_id: snapshot_pairs(p)[1] for p in r.participants.all()}
    upload_more(alice, 81)  # mid-round uploads by both owners
    upload_more(bob, 82)
    rows, owners, pairs = _pool(r)
    assert len(rows) == 6 + 4 + 5 == len(pairs) == len(owners)
    for p in r.participants.order_by("index"):
        mine = [pair for pair, o in zip(pairs, owners) if o == p.owner_id]
        assert mine == snapshot[p.owner_id] and pairs_digest(mine) == p.data_hash
        assert mine == owner_pairs(p.contributions.all())  # the order the data hash (and training) uses
    assert Contribution.objects.filter(owner=alice).count() == 3  # the new upload exists, outside the round


def test_data_deleted_under_a_round_is_refused_in_plain_words(fake_model_dir):
    r, alice, _ = make_round(fake_model_dir)
    Contribution.objects.filter(owner=alice).order_by("created_at").first().delete()  # e.g. by a database admin
    participant = r.participants.get(owner=alice)
    changed = "owner 'alice' withdrew data this round snapshotted .* the data changed since the round was created"
    with pytest.raises(ValidationError, match=changed):
        snapshot_pairs(participant)
    with pytest.raises(ValidationError, match="changed since the round was created"):
        ensure_data_quality(r)
    report = run_data_quality(r)
    assert report.status == DataQualityReport.Status.FAILED
    assert report.error.startswith("owner 'alice' withdrew data this round snapshotted (10 pairs at creation, ")
    assert "Traceback" not in report.error and "ValidationError" not in report.error


@pytest.mark.slow
def test_an_upload_during_a_round_leaves_its_data_quality_stage_to_succeed(tiny_base_model, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    settings.REPRESENTATIONS_DIR = tmp_path / "representations"
    r, alice, bob = make_round(tiny_base_model)
    upload_more(alice, 83)
    upload_more(bob, 84)
    report = ensure_data_quality(r)
    assert report.status == DataQualityReport.Status.DONE and report.error == ""
    assert report.n_pairs == 15 == report.pair_values.count()
    used = {c.pk for p in r.participants.all() for c in p.contributions.all()}
    assert set(report.pair_values.values_list("pair__contribution_id", flat=True)) == used


def test_training_reads_the_snapshot_and_refuses_changed_data(fake_model_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from valuation.engine import dpo
    from valuation.stages.training import _train_or_adopt

    trained = {}

    def fake_train(base_model_path, pairs, out_dir, cfg, **kwargs):
        trained["pairs"] = pairs
        return SimpleNamespace(model_hash="h", seconds=0.0, metrics={})

    monkeypatch.setattr(dpo, "train_owner_model", fake_train)
    r, alice, _ = make_round(fake_model_dir)
    participant = r.participants.get(owner=alice)
    upload_more(alice, 85)
    _train_or_adopt(r, participant, None, tmp_path / "model")
    assert len(trained["pairs"]) == 10 and pairs_digest(trained["pairs"]) == participant.data_hash
    Contribution.objects.filter(owner=alice).order_by("created_at").first().delete()
    changed = "owner 'alice' withdrew data this round snapshotted .* the data changed since the round was created"
    with pytest.raises(ValidationError, match=changed):
        _train_or_adopt(r, participant, None, tmp_path / "model")


def test_an_eval_set_changed_under_the_round_is_refused_in_plain_words(fake_model_dir):
    from marketplace.models import EvalPair

    r, _, _ = make_round(fake_model_dir)
    EvalPair.objects.filter(eval_set=r.eval_set, row_number=1).update(chosen="an answer edited in the database")
    report = run_data_quality(r)
    assert report.status == DataQualityReport.Status.FAILED
    assert report.error == "the eval set 'snap-eval' changed since the round was created"
