"""Cross-cutting REST pieces: token login and the error format every endpoint shares.

Every user-caused error is a 4xx with JSON {"detail": ..., "errors": [...]} — an
UploadRefused carries its row-numbered reasons; Django ValidationErrors become 400.
"""
from django.core.exceptions import PermissionDenied, ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from marketplace.parsing import UploadRefused


class TokenObtainApi(ObtainAuthToken):
    """POST username + password, get {"token": ...} for `Authorization: Token <token>`."""


def exception_handler(exc, context):
    if isinstance(exc, UploadRefused):
        return Response(exc.as_dict(), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        messages = exc.messages if hasattr(exc, "messages") else [str(exc)]
        return Response({"detail": "; ".join(messages), "errors": messages}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, PermissionDenied):
        return Response({"detail": str(exc) or "permission denied"}, status=status.HTTP_403_FORBIDDEN)
    return drf_exception_handler(exc, context)
