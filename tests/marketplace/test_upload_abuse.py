"""What bounds an owner who uses refusals as an oracle: the per-owner upload limits, the capped refusal
records, and the "possible probing" flag that only staff see."""
import io

import pytest
from django.test import Client

from marketplace.models import Contribution, RefusalTally
from marketplace.parsing import UploadRefused
from marketplace.services import contribution_create
from tests.conftest import PASSWORD, jsonl_bytes, make_pairs, upload

HELD = [{"prompt": f"Question: How long should I boil a {size} egg for a {kind} yolk?\nAnswer:",
         "chosen": f"About {minutes} minutes for a {size} egg, then cool it in cold water at once.",
         "rejected": "Just boil it until it looks done."}
        for size, kind, minutes in (("small", "runny", 4), ("large", "jammy", 7), ("huge", "firm", 11))]


def _post(client, records, name="p.jsonl"):
    return client.post("/api/contributions/", {"file": upload(name, jsonl_bytes(records))}, format="multipart")


def _copies(records):
    return [{**r, "chosen": r["chosen"] + "!"} for r in records]


def test_uploads_over_the_rate_get_429_with_retry_after_on_the_api(api_a, settings):
    settings.UPLOAD_RATE = "3/h"
    for i in range(3):
        assert _post(api_a, make_pairs(1, tag=f"t{i}")).status_code == 201
    response = _post(api_a, make_pairs(1, tag="t4"))
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600
    assert "upload limit reached" in response.json()["detail"]
    assert Contribution.objects.count() == 3  # the throttled upload was not even parsed


def test_refused_uploads_count_toward_the_rate(api_a, owner_b, settings):
    settings.UPLOAD_RATE = "2/h"
    contribution_create(owner=owner_b, file=io.BytesIO(jsonl_bytes(HELD)), filename="b.jsonl")
    assert _post(api_a, _copies(HELD)).status_code == 400
    assert _post(api_a, _copies(HELD)).status_code == 400
    assert _post(api_a, make_pairs(1)).status_code == 429


def test_the_rate_is_per_owner(api_a, api_b, settings):
    settings.UPLOAD_RATE = "1/h"
    assert _post(api_a, make_pairs(1, tag="a")).status_code == 201
    assert _post(api_a, make_pairs(1, tag="a2")).status_code == 429
    assert _post(api_b, make_pairs(1, tag="b")).status_code == 201


WORDS = ("apple banana cherry damson elder fig grape hazel iris juniper kale lemon mango nectar olive pear quince "
         "radish sage thyme ugli vanilla walnut yam zucchini acorn birch cedar dahlia ebony fern ginger holly ivy "
         "jasmine kelp lilac maple nettle oak poppy reed sorrel tulip umber violet willow yarrow zinnia").split()


def test_rows_per_day_ceiling(api_a, settings):
    settings.UPLOAD_ROWS_PER_DAY = 5
    assert _post(api_a, make_pairs(5, tag="x")).status_code == 201
    response = _post(api_a, make_pairs(1, tag="y"))
    assert response.status_code == 429 and int(response["Retry-After"]) <= 86400


def test_a_refused_file_counts_every_row_it_submitted(api_a, owner_b, settings):
    """A prober hides many candidate rows behind one known-held row: the file is refused, and all its rows
    count toward the day's ceiling, not just the one refused."""
    settings.UPLOAD_ROWS_PER_DAY = 50
    contribution_create(owner=owner_b, file=io.BytesIO(jsonl_bytes(make_pairs(1, tag="held"))), filename="b.jsonl")
    probe = make_pairs(1, tag="held") + [{"prompt": f"candidate {w} about the {w}s?", "chosen": f"{w} yes",
                                            "rejected": f"{w} no"} for w in WORDS[:49]]
    assert _post(api_a, probe).status_code == 400  # refused: its first row is held
    response = _post(api_a, make_pairs(1, tag="after"))
    assert response.status_code == 429  # the 50 rows submitted used the day's ceiling


def test_the_web_form_says_so_with_429(owner_a, settings):
    settings.UPLOAD_RATE = "1/h"
    client = Client()
    client.force_login(owner_a.user)
    assert client.post("/contributions/", {"file": upload("a.jsonl", jsonl_bytes(make_pairs(1)))}).status_code == 302
    response = client.post("/contributions/", {"file": upload("b.jsonl", jsonl_bytes(make_pairs(1, tag="b")))})
    assert response.status_code == 429 and response["Retry-After"]
    assert "upload limit reached; you can upload again in" in response.content.decode()
    assert Contribution.objects.count() == 1


def test_refusal_records_are_capped_per_owner_and_per_upload(owner_a, owner_b, settings):
    settings.REFUSAL_RECORDS_KEPT = 3
    settings.REFUSAL_STORED_ROW_ERRORS = 2
    contribution_create(owner=owner_b, file=io.BytesIO(jsonl_bytes(HELD)), filename="b.jsonl")
    for i in range(10):
        with pytest.raises(UploadRefused):
            contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(_copies(HELD))), filename=f"p{i}.jsonl")
    refused = Contribution.objects.filter(owner=owner_a, status="refused").order_by("created_at")
    assert [c.original_name for c in refused] == ["p7.jsonl", "p8.jsonl", "p9.jsonl"]
    assert all(len(c.row_errors) == 3 and c.row_errors[-1]["message"] == "1 more not shown" for c in refused)
    tally = RefusalTally.objects.get(owner=owner_a)  # the counts of all ten survive
    assert (tally.uploads_refused, tally.rows_near_copy, tally.rows_exact_copy) == (10, 30, 0)


def _overview(user) -> str:
    client = Client()
    client.force_login(user)
    return client.get("/overview/").content.decode()


def test_probing_is_flagged_to_staff_only(owner_a, owner_b, staff_user, settings, api_a):
    settings.PROBING_MIN_ROWS = 6
    contribution_create(owner=owner_b, file=io.BytesIO(jsonl_bytes(HELD)), filename="b.jsonl")
    assert _post(api_a, _copies(HELD)).status_code == 400
    assert "possible probing" not in _overview(staff_user)  # 3 refused rows: under the threshold
    assert _post(api_a, HELD).status_code == 400
    html = _overview(staff_user)
    assert "possible probing" in html and "3 / 3 / 0" in html  # exact / near / eval rows
    admin = Client()
    staff_user.is_superuser = True
    staff_user.save()
    admin.force_login(staff_user)
    owners = admin.get("/admin/marketplace/dataowner/").content.decode()
    assert "3 / 3 / 0" in owners and "icon-yes" in owners
    # the owner sees neither the flag nor the counts anywhere they can go
    client = Client()
    client.login(username="owner_a", password=PASSWORD)
    for path in ("/contributions/", "/overview/", "/api/contributions/"):
        body = client.get(path).content.decode()
        assert "probing" not in body.lower() and "3 / 3 / 0" not in body


def test_a_high_refusal_share_is_flagged_too(owner_a, owner_b, settings):
    from marketplace.selectors import owner_refusals

    settings.PROBING_MIN_UPLOADS, settings.PROBING_REFUSED_SHARE = 4, 0.5
    contribution_create(owner=owner_b, file=io.BytesIO(jsonl_bytes(HELD)), filename="b.jsonl")
    for i, records in enumerate([make_pairs(1, tag="ok"), HELD[:1], HELD[1:2]]):
        try:
            contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(records)), filename=f"{i}.jsonl")
        except UploadRefused:
            pass
    assert not owner_refusals()[owner_a.pk]["probing"]  # 3 uploads: too few to judge
    with pytest.raises(UploadRefused):
        contribution_create(owner=owner_a, file=io.BytesIO(jsonl_bytes(HELD[2:])), filename="3.jsonl")
    assert owner_refusals()[owner_a.pk]["probing"]
    assert not owner_refusals().get(owner_b.pk, {}).get("probing")
