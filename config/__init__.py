"""Project configuration: settings, URL routing, WSGI/ASGI entry points, Celery app."""

import os

# Before any torch import in this process (web, worker, manage.py): see valuation/engine/__init__.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
