"""The Celery app. Embedded default: SQLAlchemy transport on a SQLite file (no server);
scale-out: CELERY_BROKER_URL=redis://... (docs/deployment.md). Tasks live in each app's tasks.py.

A worker warms itself once when it starts (the training stack imported, the heap frozen out
of gc scans: valuation/engine/runtime.py) and re-sends the unfinished rounds the workers
own, so a round whose worker died goes on as soon as a worker is back (valuation/dispatch.py).
"""
import logging
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logger = logging.getLogger("valuation.worker")


@signals.worker_init.connect
def _warm_worker(**kwargs) -> None:
    # In the parent before the pool forks (prefork) or in the only process (solo): children inherit it.
    from valuation.engine.runtime import prepare_process

    prepare_process()


@signals.worker_ready.connect
def _resume_rounds(**kwargs) -> None:
    from valuation.dispatch import rounds_resume

    try:
        resumed = rounds_resume()
    except Exception:  # e.g. the database is not migrated yet: the worker still serves new rounds
        logger.warning("could not look for unfinished rounds to resume", exc_info=True)
        return
    if resumed:
        logger.info("re-sent %d unfinished round(s)", resumed)
