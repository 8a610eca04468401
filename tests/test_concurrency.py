"""50 uploaders × 20 files at once, and 8 simultaneous approvals of one round, over loopback HTTP
against gunicorn (tests/load_harness.py): on the embedded SQLite (WAL, busy timeout, BEGIN IMMEDIATE)
and on PostgreSQL. No 5xx, no lost or duplicated row, each contested pair accepted exactly once, the
round paid once. Slow: a real server, 1,000 uploads per database."""
import os
from pathlib import Path

import pytest

from tests import load_harness

pytestmark = pytest.mark.slow


def postgres_url():
    """POSTGRES_URL (make test passes it) → a database of its own next to it, created if missing."""
    url = os.environ.get("POSTGRES_URL") or (os.environ.get("DATABASE_URL", "") if os.environ.get(
        "DATABASE_URL", "").startswith("postgres") else "")
    if not url:
        pytest.skip("no POSTGRES_URL: the PostgreSQL half runs where one is configured (make test)")
    try:
        return load_harness.fresh_postgres(url)
    except Exception as exc:  # noqa: BLE001 - any reason PostgreSQL is unusable here is a skip with its reason
        pytest.skip(f"PostgreSQL at {url} is not usable: {exc}")


def free_port() -> int:
    """A free loopback port: from TEST_SERVER_PORTS=LOW-HIGH when set (shared machines), else any."""
    import socket

    low, _, high = os.environ.get("TEST_SERVER_PORTS", "0-0").partition("-")
    for port in range(int(low), int(high) + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    pytest.fail(f"no free port in TEST_SERVER_PORTS={os.environ['TEST_SERVER_PORTS']}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_uploads_and_approvals(backend, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}" if backend == "sqlite" else postgres_url()
    outcome = load_harness.run(url, free_port(), tmp_path)
    summary = load_harness.summary(outcome)
    assert summary["uploads"] == load_harness.UPLOADERS * load_harness.FILES
    assert summary["server_errors"] == 0 and summary["lost_rows"] == 0 and summary["duplicate_pairs"] == 0
    assert summary["statuses"] == {"201": 950, "400": 50}
    assert summary["approvals"] == {200: 1, 400: load_harness.APPROVERS - 1}
    assert not outcome.problems, outcome.problems[:10]
