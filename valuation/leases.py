"""Who runs what: a process identity, whether its holder still lives, and a heartbeat.

A round is claimed by one runner (`services.round_claim`) and each unit of its work
(one fine-tune, one scoring pass) by one process (`stages/units.py`), so a message
delivered twice, or a second runner, never does the same work at the same time. A
holder on this host is alive while its pid is; a holder on another host while its
heartbeat is fresh, which a background thread keeps fresh during long work.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from typing import Callable

logger = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 30.0  # how often running work says it is alive


def process_id() -> str:
    """This process as a lease holder: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_alive(holder: str) -> bool:
    """False only when ``holder`` is a process of this host that has exited; other hosts: ask the heartbeat."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine (or the Celery runner): trust the heartbeat instead
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def heartbeat(beat: Callable[[], None], every: float = HEARTBEAT_SECONDS):
    """Call ``beat`` every ``every`` seconds from a thread while the block runs (e.g. a fine-tune)."""
    from django.db import connections

    stop = threading.Event()

    def loop():
        try:
            while not stop.wait(every):
                try:
                    beat()
                except Exception:  # a missed beat only makes the lease look older
                    logger.warning("heartbeat failed", exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=loop, name="valuation-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every)
