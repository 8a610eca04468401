#!/bin/sh
# web: migrate and serve; worker: a Celery worker; demo: the full demo.
set -e
case "$1" in
  web) python manage.py migrate --noinput && exec python manage.py runserver 0.0.0.0:8000 --noreload ;;
  worker) exec celery -A config worker --loglevel info --concurrency "${WORKER_CONCURRENCY:-1}" ;;
  demo) exec python manage.py demo --addr 0.0.0.0:8000 ;;
  *) exec "$@" ;;
esac
