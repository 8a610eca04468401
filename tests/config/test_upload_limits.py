"""Upload size limits hold before parsing (config/upload_limits.py): an oversized request is answered
413 from its Content-Length alone, a file streaming past the limit is cut off, and just over the limit
the parser names the exact size."""
import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import Client

from config.upload_limits import REQUEST_OVERHEAD, SizeLimitedUploadHandler
from marketplace.models import Contribution
from tests.conftest import jsonl_bytes, make_pairs, upload

pytestmark = pytest.mark.django_db


def test_a_request_declaring_more_than_any_upload_is_refused_unread(settings, api_a):
    settings.UPLOAD_MAX_BYTES = 1_000
    body = b"x" * (1_000 + REQUEST_OVERHEAD + 1)
    response = api_a.generic("POST", "/api/contributions/", body, content_type="application/octet-stream")
    assert response.status_code == 413
    assert response.json()["detail"] == f"the request is {len(body):,} bytes; uploads are limited to 1,000 bytes"
    web = Client()
    assert web.generic("POST", "/contributions/", body, content_type="text/plain").status_code == 413
    assert not Contribution.objects.exists()


def test_a_malformed_content_length_is_a_400(api_a):
    response = api_a.generic("POST", "/api/contributions/", b"", CONTENT_LENGTH="12abc")
    assert response.status_code == 400


def test_just_over_the_limit_the_parser_says_by_how_much(settings, api_a):
    data = jsonl_bytes(make_pairs(30))
    settings.UPLOAD_MAX_BYTES = len(data) - 1
    response = api_a.post("/api/contributions/", {"file": upload("p.jsonl", data)}, format="multipart")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"row": None, "field": None,
                                          "message": f"file is {len(data):,} bytes; the limit is {len(data) - 1:,} bytes"}]


def test_the_upload_handler_stops_a_file_streaming_past_the_limit(settings):
    settings.UPLOAD_MAX_BYTES = 100
    handler = SizeLimitedUploadHandler()
    handler.new_file("file", "p.jsonl", "application/jsonl", None)
    assert handler.receive_data_chunk(b"x" * REQUEST_OVERHEAD, 0) == b"x" * REQUEST_OVERHEAD
    with pytest.raises(RequestDataTooBig, match="over the upload limit of 100 bytes"):
        handler.receive_data_chunk(b"x" * 101, REQUEST_OVERHEAD)
