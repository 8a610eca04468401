#!/bin/sh
# The image's roles. web: migrate, then gunicorn on :8000. worker: one Celery worker (solo pool for
# one process, prefork above). demo: the whole demo on the embedded default, served on :8000.
# migrate: apply migrations and exit. Anything else runs as given (e.g. `python manage.py run_round ...`).
set -e
role="${1:-web}"
echo "$role" > /tmp/container-role  # read by docker/healthcheck.py
case "$role" in
  web)
    python manage.py migrate --noinput
    # sync workers (--threads 1): CPU-bound pages queue on the GIL when threads share a process
    exec gunicorn config.wsgi --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-3}" --threads 1 --timeout 120 \
      --access-logfile - ;;
  worker)
    concurrency="${CELERY_WORKER_CONCURRENCY:-1}"
    if [ "$concurrency" = 1 ]; then pool=solo; else pool=prefork; fi
    exec celery -A config worker --pool "$pool" --concurrency "$concurrency" --loglevel INFO \
      --hostname "worker@%h" --pidfile /tmp/celery-worker.pid ;;
  demo)
    exec python manage.py demo --addr 0.0.0.0:8000 ;;
  migrate)
    exec python manage.py migrate --noinput ;;
  *)
    exec "$@" ;;
esac
