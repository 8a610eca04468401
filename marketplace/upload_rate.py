"""Per-owner upload limits of the web form and the API: uploads per window (UPLOAD_RATE) and rows
submitted per day (UPLOAD_ROWS_PER_DAY).

Each refused row answers "does the marketplace hold something like this?", so without a limit an owner
could ask it about as many candidate pairs as they like. Counters live in Django's cache (shared by every
web process in production, like the sign-in limits of config/ratelimit.py), in fixed windows aligned to
the clock so the wait until the next window is exact. The CLI (`import_pairs`) is staff's and not limited.
"""
from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from config.ratelimit import parse_rate

DAY = 86400


def _windows() -> dict[str, tuple[int, int]]:
    """scope → (limit, window seconds)."""
    return {"uploads": parse_rate(settings.UPLOAD_RATE), "rows": (settings.UPLOAD_ROWS_PER_DAY, DAY)}


def _key(owner_id: int, scope: str, seconds: int, now: float) -> str:
    return f"upload-rate:{scope}:{owner_id}:{seconds}:{int(now // seconds)}"


def upload_wait(owner) -> int:
    """Seconds until this owner may upload again (0: now)."""
    now = time.time()
    waits = [seconds - int(now % seconds) for scope, (limit, seconds) in _windows().items()
             if (cache.get(_key(owner.pk, scope, seconds, now)) or 0) >= limit]
    return max(waits, default=0)


def upload_counted(owner, *, rows: int) -> None:
    """Count one upload attempt (accepted or refused) and the rows it submitted."""
    now = time.time()
    for scope, (_, seconds) in _windows().items():
        key = _key(owner.pk, scope, seconds, now)
        cache.add(key, 0, timeout=seconds + 60)
        try:
            cache.incr(key, 1 if scope == "uploads" else max(rows, 0))
        except ValueError:  # expired between add and incr
            cache.set(key, 1 if scope == "uploads" else rows, timeout=seconds + 60)


def wait_message(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"upload limit reached; you can upload again in {minutes} minute{'s' if minutes != 1 else ''}"
