"""Test settings: fast hashing, artifacts in a temp dir, DEBUG off like production."""
import tempfile
from pathlib import Path

from .base import *  # noqa: F401,F403
from .base import env

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests may run against PostgreSQL: DATABASE_URL=postgres://... make test
DATABASES = {"default": env.db("DATABASE_URL", default="sqlite:///:memory:")}
ARTIFACTS_DIR = Path(tempfile.gettempdir()) / "pdm-test-artifacts"
# Tasks are queued in memory, not run: tests call services directly.
CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# One process's memory: nothing cached outlives the test run (base.py's directory would, across runs).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# WhiteNoise finds static files per request instead of scanning every app's files when each test
# client starts (the scan is ~50 ms, paid once per server process in production).
WHITENOISE_AUTOREFRESH = True
# The fuzz and isolation suites post hundreds of files as one owner; tests of the per-owner upload limit
# set their own (tests/marketplace/test_upload_abuse.py).
UPLOAD_RATE = "100000/h"
