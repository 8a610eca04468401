#!/bin/sh
# web: migrate and serve; worker: a Celery worker; demo: the full demo.
set -e
case "$1" in
  web) python manage.py migrate --noinput && exec gunicorn config.wsgi --bind 0.0.0.0:8000 \
         --workers "${WEB_WORKERS:-2}" --threads "${WEB_THREADS:-4}" --timeout 120 ;;
  worker) exec celery -A config worker --loglevel info --concurrency "${WORKER_CONCURRENCY:-1}" ;;
  demo) exec python manage.py demo --addr 0.0.0.0:8000 ;;
  *) exec "$@" ;;
esac
