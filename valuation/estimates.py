"""How long a round will take, from this machine's own measurements: pure arithmetic on numbers.

Training costs tokens: an owner's fine-tune trains its usable pairs' sequences (both answers, cut at
max_length) once per epoch, and this machine's finished fine-tunes recorded their tokens and seconds. Scoring
costs one pass per model over the eval set, measured per eval pair by the rounds' recorded scoring units.
A measurement from another base model is scaled by parameter count (a forward and backward pass costs about
6 FLOPs per parameter per token, Kaplan et al. 2020), and the estimate says so. Without any measurement an
estimate is None: the page says "no measurement yet" rather than guess.

The database reads are in estimate_selectors.py; nothing here touches Django.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Throughput:
    per_second: float  # tokens (training) or eval pairs (scoring) per second
    runs: int  # finished runs it was measured on
    scaled: bool = False  # measured on other base models, scaled by parameter count

    @property
    def source(self) -> str:
        runs = f"{self.runs} run{'s' if self.runs != 1 else ''}"
        return f"{runs} on other base models, scaled by parameter count" if self.scaled else f"{runs} on this model"


def throughput(samples: list[tuple[float, float]]) -> Throughput | None:
    """Work per second over (work, seconds) samples: total work over total time, so long runs weigh more."""
    kept = [(work, seconds) for work, seconds in samples if work > 0 and seconds > 0]
    if not kept:
        return None
    return Throughput(per_second=sum(w for w, _ in kept) / sum(s for _, s in kept), runs=len(kept))


def scaled_throughput(samples: list[tuple[float, float, int]], parameters: int) -> Throughput | None:
    """Throughput on a model of ``parameters`` from (work, seconds, parameters) samples on other models: the
    cost of a unit of work grows with the parameters, so work x parameters per second carries over."""
    kept = [(work, seconds, n) for work, seconds, n in samples if work > 0 and seconds > 0 and n and n > 0]
    if not kept or parameters <= 0:
        return None
    rate = sum(work * n for work, _, n in kept) / sum(seconds for _, seconds, _ in kept)
    return Throughput(per_second=rate / parameters, runs=len(kept), scaled=True)


def seconds_for(work: float, rate: Throughput | None) -> float | None:
    """Seconds that ``work`` takes at ``rate``; None without a measurement."""
    if rate is None:
        return None
    return work / rate.per_second


def remaining_seconds(*, done: int, total: int, elapsed: float, planned: float | None) -> float | None:
    """What is left of a stage ``done`` of ``total`` units into it, ``elapsed`` seconds in: the pace so far
    once a unit is done, else the planned duration less the time spent (never below zero). A stage that has
    not counted its units yet (total 0) is still at its plan."""
    if total > 0 and done >= total:
        return 0.0
    if total > 0 and done > 0:
        return elapsed * (total - done) / done
    if planned is None:
        return None
    return max(planned - elapsed, 0.0)


def duration_text(seconds: float | None) -> str:
    """A duration as a person reads it: seconds under two minutes, minutes under two hours, else hours."""
    if seconds is None:
        return "no measurement yet"
    if seconds < 120:
        return f"{max(round(seconds), 1)} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
