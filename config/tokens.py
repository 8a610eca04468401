"""API tokens that expire (API_TOKEN_DAYS): DRF's one token per user, refused once it is older than that
and replaced by a new one at the next `POST /api/auth/token/`. Apart from config/api.py because DRF
imports authentication classes while its views module is still loading."""
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed


def token_expires_at(token: Token):
    return token.created + timedelta(days=settings.API_TOKEN_DAYS)


@transaction.atomic
def token_obtain(*, user) -> Token:
    """The user's token, a new one if they had none or theirs expired (one token per user, as DRF keeps)."""
    token = Token.objects.select_for_update().filter(user=user).first()
    if token is not None and token_expires_at(token) <= timezone.now():
        token.delete()
        token = None
    return token or Token.objects.create(user=user)


class ExpiringTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, except that a token older than API_TOKEN_DAYS is refused (401): a token
    copied from a script or a log stops working by itself."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        expired = token_expires_at(token)
        if expired <= timezone.now():
            raise AuthenticationFailed(f"this token expired on {expired:%Y-%m-%d %H:%M} UTC; get a new one with "
                                       "POST /api/auth/token/ (username and password)")
        return user, token
