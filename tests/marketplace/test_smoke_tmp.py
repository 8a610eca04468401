from tests.conftest import jsonl_bytes, make_pairs, upload
from marketplace.models import PreferencePair


def test_upload_roundtrip(api_a, api_b):
    r = api_a.post("/api/contributions/", {"file": upload("a.jsonl", jsonl_bytes(make_pairs(5)))}, format="multipart")
    assert r.status_code == 201, r.json()
    assert r.json()["n_pairs"] == 5
    r = api_b.post("/api/contributions/", {"file": upload("b.jsonl", jsonl_bytes(make_pairs(5)))}, format="multipart")
    assert r.status_code == 400
    print(r.json())
    assert PreferencePair.objects.count() == 5
    assert api_b.get("/api/contributions/").json()["count"] == 1  # the refusal record
