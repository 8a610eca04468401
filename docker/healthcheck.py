"""The image's HEALTHCHECK, by role (docker/entrypoint.sh writes it to /tmp/container-role).

web, demo: the login page answers 200. worker: the worker answers a Celery ping over the broker
(Redis); on the embedded SQLite broker, which carries no broadcasts, its process is alive.
Exit 0 healthy, 1 not (Docker's convention)."""
import os
import socket
import sys
import urllib.request
from pathlib import Path


def web_ok() -> bool:
    try:
        with urllib.request.urlopen("http://127.0.0.1:8000/login/", timeout=10) as response:
            return response.status == 200
    except OSError:
        return False


def worker_ok() -> bool:
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if broker.startswith(("redis://", "rediss://", "amqp://")):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from config.celery import app

        replies = app.control.ping(destination=[f"worker@{socket.gethostname()}"], timeout=5.0)
        return bool(replies)
    try:
        os.kill(int(Path("/tmp/celery-worker.pid").read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


if __name__ == "__main__":
    role = Path("/tmp/container-role").read_text().strip() if Path("/tmp/container-role").exists() else "web"
    sys.exit(0 if (worker_ok() if role == "worker" else web_ok()) else 1)
