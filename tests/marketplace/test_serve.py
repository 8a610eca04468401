"""`manage.py serve` (`make serve`): the web server and a Celery worker from one command, on the
embedded default (SQLite database and broker, no server). Ctrl-C stops both; a child that dies
takes the other down and fails the command. Slow: a worker imports torch and TRL when it starts."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.slow
STARTUP_SECONDS = 240


def free_port() -> int:
    if os.environ.get("SERVE_TEST_PORT"):
        return int(os.environ["SERVE_TEST_PORT"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    def __init__(self, tmp_path: Path):
        self.port = free_port()
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.base",
                   DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
                   CELERY_BROKER_URL=f"sqla+sqlite:///{tmp_path}/broker.sqlite3",
                   ARTIFACTS_DIR=str(tmp_path / "artifacts"), CACHE_URL=f"filecache://{tmp_path}/cache")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{self.port}", "--web-workers", "1"],
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace"))

    def output(self) -> str:
        return "".join(self.lines)

    def wait_up(self) -> None:
        """Until the login page answers and the worker says it is ready."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            if " ready." in self.output() and self._page_status() == 200:
                return
            time.sleep(0.5)
        pytest.fail(f"serve not up within {STARTUP_SECONDS} s:\n{self.output()[-3000:]}")

    def _page_status(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login/", timeout=2) as response:
                return response.status
        except OSError:
            return None

    def children(self) -> list[int]:
        """Pids of the supervisor's child processes (the web server and the worker)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped


@pytest.fixture
def served(tmp_path):
    server = Served(tmp_path)
    yield server
    server.stop()


def test_ctrl_c_stops_the_web_server_and_the_worker(served):
    served.wait_up()
    children = served.children()
    assert len(children) == 2
    served.proc.send_signal(signal.SIGINT)  # what the terminal sends on Ctrl-C
    assert served.proc.wait(timeout=60) == 0
    assert all(gone(pid) for pid in children)
    assert served._page_status() is None
    assert "stopped the web server and the worker" in served.output()


def test_a_worker_that_dies_takes_the_web_server_down_with_it(served):
    served.wait_up()
    children = served.children()
    worker = next(pid for pid in children if b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(worker, signal.SIGKILL)
    assert served.proc.wait(timeout=60) != 0
    assert "the worker exited with status -9; stopped the other one too" in served.output()
    assert all(gone(pid) for pid in children) and served._page_status() is None
