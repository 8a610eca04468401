"""The Celery app. Embedded default: SQLAlchemy transport on a SQLite file (no server);
scale-out: CELERY_BROKER_URL=redis://... . Tasks live in each app's tasks.py."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
