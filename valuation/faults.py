"""Fault injection for the crash tests (bench/reliability.py, tests/valuation/test_crash_resume.py).

Off unless the environment variable VALUATION_FAULT_POINT names a point; then the process kills itself
with SIGKILL — no cleanup, no exception handler, exactly like the OOM killer or a pulled plug — the n-th
time it reaches that point (`NAME` or `NAME@n`, n from 1). The points sit where a crash is hardest to
survive: between finishing work and recording it, and inside the transaction that writes payouts.

  training:model-saved   an owner model is on disk, its OwnerModel row not yet written
  scoring:scored         an eval set's log-probs are computed, not yet cached
  valuing:computed       values and the split are computed, nothing of them written
  valuing:payouts-written inside the results transaction: payouts inserted, round not yet `done`

Never set it in production: it exists so that the tests can hit these instants deterministically
instead of hoping a timer lands in a microsecond window.
"""
from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "VALUATION_FAULT_POINT"
POINTS = ("training:model-saved", "scoring:scored", "valuing:computed", "valuing:payouts-written")
_reached: Counter = Counter()


def fault_point(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
