"""Ids an owner sees (contributions, rounds, fidelity reports) are random (config/ids.py): two of them
say nothing about how many objects were created in between."""
import io

import pytest

from config.ids import HIGH, LOW, random_id
from marketplace.services import contribution_create
from tests.conftest import jsonl_bytes, make_pairs, upload

pytestmark = pytest.mark.django_db


def test_random_ids_are_in_range_and_unordered():
    ids = [random_id() for _ in range(2000)]
    assert all(LOW <= i < HIGH for i in ids) and len(set(ids)) == len(ids)
    assert ids != sorted(ids)


def test_an_owners_consecutive_uploads_do_not_count_anyones(api_a, owner_b):
    mine = []
    for k in range(6):
        contribution_create(owner=owner_b, file=io.BytesIO(jsonl_bytes(make_pairs(1, tag=f"b{k}"))),
                            filename="b.jsonl")  # someone else's activity in between
        response = api_a.post("/api/contributions/", {"file": upload("a.jsonl", jsonl_bytes(make_pairs(1, tag=f"a{k}")))},
                              format="multipart")
        mine.append(response.json()["id"])
    gaps = [b - a for a, b in zip(mine, mine[1:])]
    assert all(i >= LOW for i in mine)
    assert not all(0 < g <= 2 for g in gaps)  # sequential ids would step by exactly 2 here
