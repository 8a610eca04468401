"""Cross-cutting REST pieces: token login and the error format every endpoint shares.

Every user-caused error is a 4xx with JSON {"detail": ..., "errors": [...]} — an
UploadRefused carries its row-numbered reasons; Django ValidationErrors become 400, a request over
the size limits 413, any other SuspiciousOperation (a hostile multipart body) 400.
"""
from django.core.exceptions import (
    PermissionDenied, RequestDataTooBig, SuspiciousOperation, ValidationError as DjangoValidationError,
)
from rest_framework import status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.ratelimit import LoginIPThrottle, LoginUsernameThrottle
from marketplace.parsing import UploadRefused


class TokenObtainApi(ObtainAuthToken):
    """POST username + password, get {"token": ...} for `Authorization: Token <token>`. Throttled per
    client address and per username (config/ratelimit.py): 429 with Retry-After over the limit."""

    throttle_classes = [LoginIPThrottle, LoginUsernameThrottle]


def exception_handler(exc, context):
    if isinstance(exc, UploadRefused):
        return Response(exc.as_dict(), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        messages = exc.messages if hasattr(exc, "messages") else [str(exc)]
        return Response({"detail": "; ".join(messages), "errors": messages}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": str(exc) or "the request is too large"},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):  # e.g. a multipart file name that is a path, too many fields
        return Response({"detail": f"bad request: {str(exc)[:200]}"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PermissionDenied):
        return Response({"detail": str(exc) or "permission denied"}, status=status.HTTP_403_FORBIDDEN)
    return drf_exception_handler(exc, context)
