"""50,000 pairs in one JSONL file go through the REST API in under 20 s (the issue's bar).

Timed around the request only (building the file is not the product's work). Marked
slow because each test moves ~5 MB through multipart parsing, hashing and bulk insert;
`make test` and CI still run them. bench/upload.py reports the same path as pairs/second.
"""
import time

import pytest

from marketplace.models import Contribution, PreferencePair
from marketplace.services import REPLICATION_MESSAGE
from tests.conftest import jsonl_bytes, make_pairs, upload

N_PAIRS = 50_000
LIMIT_SECONDS = 20.0


def _post(client, name: str, data: bytes):
    started = time.perf_counter()
    response = client.post("/api/contributions/", {"file": upload(name, data, "application/jsonl")},
                           format="multipart")
    return response, time.perf_counter() - started


@pytest.mark.slow
def test_50k_pairs_are_accepted_in_under_20_seconds(api_a, owner_a):
    records = make_pairs(N_PAIRS, tag="bulk")
    data = jsonl_bytes(records)
    assert len(data) > 4_000_000  # a real multipart upload spooled to disk, not a toy
    response, seconds = _post(api_a, "bulk.jsonl", data)
    assert response.status_code == 201, response.content[:500]
    assert seconds < LIMIT_SECONDS, f"{N_PAIRS} pairs took {seconds:.1f} s"
    assert response.json()["n_pairs"] == N_PAIRS
    assert PreferencePair.objects.count() == N_PAIRS
    last = PreferencePair.objects.get(row_number=N_PAIRS)
    assert (last.prompt, last.chosen, last.rejected) == tuple(records[-1].values())
    assert Contribution.objects.get().status == Contribution.Status.ACCEPTED


@pytest.mark.slow
def test_a_50k_copy_is_refused_just_as_fast_and_reports_the_first_100(api_a, api_b, owner_a, owner_b):
    records = make_pairs(N_PAIRS, tag="bulk")
    assert _post(api_a, "bulk.jsonl", jsonl_bytes(records))[0].status_code == 201
    shouted = [{k: v.upper() for k, v in r.items()} for r in records]  # anti-replication ignores case
    response, seconds = _post(api_b, "copy.jsonl", jsonl_bytes(shouted))
    assert response.status_code == 400
    assert seconds < LIMIT_SECONDS, f"refusing {N_PAIRS} copied pairs took {seconds:.1f} s"
    body = response.json()
    assert body["n_errors"] == N_PAIRS and len(body["errors"]) == 100
    assert body["errors"][0] == {"row": 1, "field": None, "message": REPLICATION_MESSAGE}
    assert PreferencePair.objects.count() == N_PAIRS
    assert set(PreferencePair.objects.values_list("contribution__owner", flat=True).distinct()) == {owner_a.pk}
