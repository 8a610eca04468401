"""Cross-cutting REST pieces: token login and the error format every endpoint shares.

Every user-caused error is a 4xx with JSON {"detail": ..., "errors": [...]} — an
UploadRefused carries its row-numbered reasons; Django ValidationErrors become 400, a request over
the size limits 413, any other SuspiciousOperation (a hostile multipart body) 400.
"""
from django.core.exceptions import (
    PermissionDenied, RequestDataTooBig, SuspiciousOperation, ValidationError as DjangoValidationError,
)
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.ratelimit import USERNAME_CHARS, login_failed, login_succeeded, login_wait, wait_minutes
from config.tokens import token_expires_at, token_obtain
from marketplace.parsing import UploadRefused


class TokenObtainApi(ObtainAuthToken):
    """POST username + password, get {"token", "expires"} for `Authorization: Token <token>`. Failed attempts
    count with the web and admin sign-ins' (config/ratelimit.py): over a limit, 429 with Retry-After before
    the password is checked. An expired token is replaced by a new one."""

    throttle_classes = []  # the sign-in limits below replace request throttling

    class TokenOutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        expires = serializers.DateTimeField(help_text="after this the token answers 401; sign in again for a new one")

    @extend_schema(request=AuthTokenSerializer, responses=TokenOutputSerializer)
    def post(self, request, *args, **kwargs):
        data = request.data if hasattr(request.data, "get") else {}
        username = str(data.get("username", ""))[:USERNAME_CHARS]
        wait = login_wait(request, username)
        if wait:
            minutes = wait_minutes(wait)
            raise Throttled(wait=wait, detail=f"Too many sign-in attempts for this account or from this address: "
                                              f"wait {minutes} minute{'s' if minutes > 1 else ''} and try again.")
        serializer = self.get_serializer(data=data)
        if not serializer.is_valid():
            login_failed(request, username)
            raise ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        login_succeeded(request, username)
        token = token_obtain(user=user)
        return Response(self.TokenOutputSerializer({"token": token.key, "expires": token_expires_at(token)}).data)


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
