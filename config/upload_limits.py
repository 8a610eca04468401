"""Upload size limits enforced before a byte of the body is parsed (docs/design.md §6: file ≤ a configured size).

Two layers, so no request body larger than any acceptable upload is ever read or spooled to disk:
* `RequestSizeLimitMiddleware` answers 413 to a request whose Content-Length exceeds UPLOAD_MAX_BYTES
  plus REQUEST_OVERHEAD (room for multipart headers and the other form fields);
* `SizeLimitedUploadHandler`, first in FILE_UPLOAD_HANDLERS, counts the bytes of each uploaded file as
  they stream in (a chunked request has no Content-Length) and stops at the same bound.
The parser (marketplace/parsing.py) then refuses a file over UPLOAD_MAX_BYTES with the exact size, and
Django's DATA_UPLOAD_MAX_MEMORY_SIZE bounds the non-file fields of a form.
"""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse, JsonResponse

REQUEST_OVERHEAD = 1 << 20  # multipart boundaries, headers and small fields of an upload form


def request_limit() -> int:
    return settings.UPLOAD_MAX_BYTES + REQUEST_OVERHEAD


def too_large(request, declared: int | None = None) -> HttpResponse:
    limit = request_limit()
    detail = (f"the request is {declared:,} bytes; uploads are limited to {settings.UPLOAD_MAX_BYTES:,} bytes"
              if declared else f"uploads are limited to {settings.UPLOAD_MAX_BYTES:,} bytes")
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail, "limit": limit}, status=413)
    return HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit():
            return HttpResponse("bad Content-Length", status=400, content_type="text/plain; charset=utf-8")
        if int(declared) > request_limit():
            return too_large(request, int(declared))
        return self.get_response(request)


class SizeLimitedUploadHandler(FileUploadHandler):
    """Passes chunks on to the next handler, and stops the upload once a file is over the limit."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > request_limit():  # just over the limit still reaches the parser, which says by how much
            raise RequestDataTooBig(f"the file is over the upload limit of {settings.UPLOAD_MAX_BYTES:,} bytes")
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler builds the file
