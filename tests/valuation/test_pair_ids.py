"""Preference pairs have random ids (config/ids.py): owners see them (pair values, flagged pairs), and
sequential ones would tell an owner how many pairs everyone else uploaded in between. The migration
keeps existing pairs and everything that refers to them (pair values, cluster proxies)."""
import io

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from config.ids import HIGH, LOW
from marketplace.models import PreferencePair
from marketplace.services import contribution_create, owner_create
from tests.conftest import jsonl_bytes, make_pairs
from tests.valuation.quality_fixtures import make_assessed_round
from valuation.quality_models import PairCluster, PairValue


def upload(owner, n: int, tag: str):
    return contribution_create(owner=owner, file=io.BytesIO(jsonl_bytes(make_pairs(n, tag=tag))),
                               filename=f"{tag}.jsonl")


@pytest.mark.django_db
def test_pair_ids_are_random_and_say_nothing_about_how_many_pairs_exist():
    owner = owner_create(username="ann")
    first, second = upload(owner, 50, "a"), upload(owner, 50, "b")
    ids = list(PreferencePair.objects.values_list("id", flat=True))
    assert len(set(ids)) == 100 and all(LOW <= i < HIGH for i in ids)
    ordered = sorted(ids)
    assert max(b - a for a, b in zip(ordered, ordered[1:])) > 1_000  # no run of consecutive ids
    assert first.pairs.count() == second.pairs.count() == 50


@pytest.mark.django_db
def test_an_id_drawn_twice_is_drawn_again_not_refused_as_a_copy(monkeypatch):
    owner = owner_create(username="ann")
    taken = upload(owner, 3, "a").pairs.values_list("id", flat=True)[0]
    field = PreferencePair._meta.get_field("id")
    draws = iter([taken])
    monkeypatch.setattr(field, "_get_default", lambda: next(draws, None) or field.default())
    contribution = upload(owner, 4, "b")
    assert contribution.pairs.count() == 4 and PreferencePair.objects.count() == 7


@pytest.mark.django_db
def test_the_pair_values_api_shows_random_pair_ids(fake_model_dir, api_staff):
    r = make_assessed_round(fake_model_dir)["round"]
    body = api_staff.get(f"/api/rounds/{r.pk}/pair-values/?owner=alice").json()
    assert body["results"] and all(LOW <= row["pair_id"] < HIGH for row in body["results"])


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_existing_pairs_and_what_refers_to_them(fake_model_dir):
    executor = MigrationExecutor(connection)
    executor.migrate([("marketplace", "0005_near_duplicate_index")])  # sequential ids again
    try:
        make_assessed_round(fake_model_dir)  # pairs, pair values and cluster proxies that point at them
        before = sorted(PairValue.objects.values_list("pair_id", "pair__content_hash"))
        proxies = sorted(PairCluster.objects.values_list("proxy_id", "proxy__content_hash"))
        n_pairs = PreferencePair.objects.count()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert PreferencePair.objects.count() == n_pairs > 0
    assert sorted(PairValue.objects.values_list("pair_id", "pair__content_hash")) == before
    assert sorted(PairCluster.objects.values_list("proxy_id", "proxy__content_hash")) == proxies
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            assert cursor.execute("PRAGMA foreign_key_check").fetchall() == []
    new = upload(owner_create(username="newcomer"), 2, "new")
    assert all(LOW <= i < HIGH for i in new.pairs.values_list("id", flat=True))
