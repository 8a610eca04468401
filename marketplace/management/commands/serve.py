"""`make serve`: the web server and one Celery worker in one command; Ctrl-C stops both.

Both run as child processes in sessions of their own, so the terminal's Ctrl-C reaches only this
supervisor, which then stops them: the web server gracefully, the worker at once (Celery's cold
shutdown: a fine-tune in progress is abandoned, its message put back, and the round goes on when a
worker starts again — valuation/dispatch.py). If either child exits by itself the other is stopped
too and the command fails with the reason, so a dead worker never leaves a web server queueing
rounds nobody runs. The embedded default needs no server: SQLite and the SQLite broker under var/.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

STOP_SECONDS = 20  # per child, before it is killed
# Sync workers, one per core and one more: the pages are CPU-bound Python, so threads in one process only
# queue on its GIL. On 2 cores, 20 concurrent dashboard clients (bench/dashboard_load.py) had a p95 about
# half as long with 3 sync workers as with 2 workers × 4 threads over keep-alive connections.
WEB_WORKERS = (os.cpu_count() or 1) + 1


class Command(BaseCommand):
    help = "Serve the web app (gunicorn) and run one Celery worker; Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port of the web server")
        parser.add_argument("--web-workers", type=int, default=WEB_WORKERS,
                            help=f"gunicorn worker processes, one request at a time each (default cores + 1: {WEB_WORKERS})")
        parser.add_argument("--concurrency", type=int, default=None,
                            help="Celery worker processes (default CELERY_WORKER_CONCURRENCY, 1)")

    def handle(self, *args, addr, web_workers, concurrency, **options):
        call_command("migrate", verbosity=0)
        children = {"web": self._spawn(web_command(addr, web_workers)),
                    "worker": self._spawn(worker_command(concurrency or settings.CELERY_WORKER_CONCURRENCY))}
        self.stdout.write(f"serving http://{addr}/ with one Celery worker ({settings.CELERY_BROKER_URL.split(':')[0]} "
                          "broker); Ctrl-C stops both")
        stopping = []
        previous = {sig: signal.signal(sig, lambda signum, frame: stopping.append(signum))
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            died = _wait_for(children, stopping)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _stop(children)
        if died:
            name, code = died
            raise CommandError(f"the {name} exited with status {code}; stopped the other one too")
        self.stdout.write("stopped the web server and the worker; unfinished rounds resume when a worker starts")

    def _spawn(self, command: list[str]) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=settings.BASE_DIR, start_new_session=True)


def web_command(addr: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", addr, "--workers", str(workers),
            "--threads", "1", "--timeout", "120", "--access-logfile", "-"]  # 120 s: a 50k-pair upload fits


def worker_command(concurrency: int) -> list[str]:
    # solo: with one process there is nothing to fork, and the warm base model stays in the worker itself
    pool = ["--pool", "solo"] if concurrency == 1 else ["--pool", "prefork", "--concurrency", str(concurrency)]
    return [sys.executable, "-m", "celery", "-A", "config", "worker", *pool, "--loglevel", "INFO"]


def _wait_for(children: dict[str, subprocess.Popen], stopping: list) -> tuple[str, int] | None:
    """Block until a stop signal (None) or a child's own exit ((name, status))."""
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                return name, child.returncode
        time.sleep(0.2)
    return None


def _stop(children: dict[str, subprocess.Popen]) -> None:
    # gunicorn: SIGTERM is its graceful stop; Celery: SIGQUIT is the cold one (SIGTERM would finish the task)
    signals = {"web": signal.SIGTERM, "worker": signal.SIGQUIT}
    for name, child in children.items():
        if child.poll() is None:
            child.send_signal(signals[name])
    for child in children.values():
        try:
            child.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
