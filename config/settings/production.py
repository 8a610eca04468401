"""Production settings: everything base.py has, locked down. `DJANGO_SETTINGS_MODULE=config.settings.production`.

Refuses to start without a real secret key and the host names it serves; HTTPS everywhere (secure
cookies, HSTS, redirect), never DEBUG; a cache every web process shares, so the sign-in limits of
config/ratelimit.py hold across processes. `manage.py check --deploy --settings=config.settings.production`
passes with the variables of docs/deployment.md set (tests/config/test_production_settings.py).
"""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import AUTH_PASSWORD_VALIDATORS, DATABASES, env

# --- Core -------------------------------------------------------------------
if env.bool("DJANGO_DEBUG", default=False):
    raise ImproperlyConfigured("DJANGO_DEBUG is set: production settings never run with DEBUG (it shows "
                               "tracebacks, settings and SQL to whoever triggers an error)")
DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith(("dev-insecure", "django-insecure")):
    raise ImproperlyConfigured("set DJANGO_SECRET_KEY to a random value of 50 or more characters, e.g. "
                               "python -c 'import secrets; print(secrets.token_urlsafe(64))'")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("set DJANGO_ALLOWED_HOSTS to the host names this site is served at")

# --- HTTPS, cookies, headers -------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=True)
# Only behind a proxy that terminates TLS and sets this header itself (and strips a client's).
if env.bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # forms carry the token; no script reads the cookie
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_SECONDS", default=8 * 3600)
# Origins allowed to POST forms (scheme + host), e.g. https://market.example.org; default: https on every
# allowed host that is not a wildcard.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[
    f"https://{host}" for host in ALLOWED_HOSTS if "*" not in host and not host.startswith(".")])

# --- Passwords ----------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    dict(v, OPTIONS={"min_length": env.int("DJANGO_PASSWORD_MIN_LENGTH", default=12)})
    if v["NAME"].endswith("MinimumLengthValidator") else v for v in AUTH_PASSWORD_VALIDATORS
]

# --- Cache and connections: base.py's (a cache directory every web process shares, CACHE_URL=redis://…
# across machines; connections kept DJANGO_CONN_MAX_AGE = 60 s); here a dead connection is also noticed.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# --- Logging: refused requests and suspicious operations reach the log -----------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django.security": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "marketplace": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
        "valuation": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    },
}
