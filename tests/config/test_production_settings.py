"""config/settings/production.py: `check --deploy` clean with the documented variables, and a refusal
to start without them. Each case is a fresh interpreter: settings are read once per process."""
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(64), "DJANGO_ALLOWED_HOSTS": "market.example.org"}
SHOW = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({k: getattr(s, k) for k in (
    "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "CSRF_COOKIE_HTTPONLY", "SECURE_HSTS_SECONDS",
    "SECURE_SSL_REDIRECT", "CSRF_TRUSTED_ORIGINS", "ALLOWED_HOSTS", "X_FRAME_OPTIONS")}
    | {"min_length": [v.get("OPTIONS", {}).get("min_length") for v in s.AUTH_PASSWORD_VALIDATORS
                      if v["NAME"].endswith("MinimumLengthValidator")][0],
       "cache": s.CACHES["default"]["BACKEND"], "login_limits": s.LOGIN_FAILURE_LIMITS, "token_days": s.API_TOKEN_DAYS,
       "cache_entries": s.CACHES["default"]["OPTIONS"]["MAX_ENTRIES"]}))
"""


def run(args, **env_vars):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k != "DATABASE_URL"}
    env.update(env_vars, DJANGO_SETTINGS_MODULE="config.settings.production", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_documented_variables():
    result = run(["manage.py", "check", "--deploy"], **GOOD)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_production_values():
    result = run(["-c", SHOW], **GOOD, DJANGO_CSRF_TRUSTED_ORIGINS="https://market.example.org,https://admin.example.org")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values == {
        "DEBUG": False, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "CSRF_COOKIE_HTTPONLY": True,
        "SECURE_HSTS_SECONDS": 31_536_000, "SECURE_SSL_REDIRECT": True,
        "CSRF_TRUSTED_ORIGINS": ["https://market.example.org", "https://admin.example.org"],
        "ALLOWED_HOSTS": ["market.example.org"], "X_FRAME_OPTIONS": "DENY", "min_length": 12,
        "cache": "django.core.cache.backends.filebased.FileBasedCache",
        "login_limits": {"account_address": "10/15m", "address": "50/15m", "account": "30/1h"}, "token_days": 30,
        "cache_entries": 10_000}


@pytest.mark.parametrize("env_vars, says", [
    ({"DJANGO_ALLOWED_HOSTS": "x.org"}, "set DJANGO_SECRET_KEY"),
    ({"DJANGO_ALLOWED_HOSTS": "x.org", "DJANGO_SECRET_KEY": "short"}, "set DJANGO_SECRET_KEY"),
    ({"DJANGO_ALLOWED_HOSTS": "x.org", "DJANGO_SECRET_KEY": "dev-insecure-change-me-0123456789abcdef" * 2},
     "set DJANGO_SECRET_KEY"),
    ({"DJANGO_SECRET_KEY": GOOD["DJANGO_SECRET_KEY"]}, "set DJANGO_ALLOWED_HOSTS"),
    (dict(GOOD, DJANGO_DEBUG="true"), "never run with DEBUG"),
])
def test_refuses_to_start_without_what_production_needs(env_vars, says):
    result = run(["manage.py", "check"], **env_vars)
    assert result.returncode != 0 and says in result.stderr


def test_base_settings_keep_debug_off_by_default():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_DEBUG"}
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=dict(env, DJANGO_SETTINGS_MODULE="config.settings.base", PYTHONPATH=str(ROOT)))
    assert result.stdout.strip() == "False", result.stderr
