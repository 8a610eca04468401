"""Units of a round's work (stages/units.py): done once however often they are delivered, leased
while they run, taken over when their holder died. The scoring engine is replaced by known
log-probs that count calls: the orchestration is under test here, the model in test_round_e2e."""
import socket
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from valuation.engine import scoring
from valuation.engine.scoring import ScoreResult
from valuation.models import RoundTask, ScoreCache, ValuationRound
from valuation.stages import units
from valuation.stages.scoring import score_key
from tests.valuation.test_valuing_stage import T, market_with_scores

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored_round(fake_model_dir):
    r, _ = market_with_scores(3, fake_model_dir)
    return r


@pytest.fixture
def engine(monkeypatch):
    """score_model returning known log-probs; ``engine.calls`` counts passes, ``engine.fail`` makes one raise."""
    class Engine:
        calls = 0
        fail = None

        def score_model(self, model_dir, base_dir, pairs, **kwargs):
            if self.fail:
                raise self.fail
            self.calls += 1
            return ScoreResult(chosen=np.full(len(pairs), -3.0), rejected=np.full(len(pairs), -4.5))

    fake = Engine()
    monkeypatch.setattr(scoring, "score_model", fake.score_model)
    return fake


def forget_score(r, index):
    model = r.participants.get(index=index).owner_model
    ScoreCache.objects.filter(model_hash=score_key(r, model)).delete()
    return score_key(r, model)


def run(r, index, worker="w1@host"):
    return units.unit_run(round_id=r.pk, stage="scoring", index=index, worker=worker)


def test_a_unit_delivered_twice_does_its_work_once(scored_round, engine):
    key = forget_score(scored_round, 1)
    first = run(scored_round, 1)
    again = run(scored_round, 1, worker="w2@host")
    assert engine.calls == 1
    row = ScoreCache.objects.get(model_hash=key)
    assert row.chosen_logps == [-3.0] * T and row.rejected_logps == [-4.5] * T
    assert (first.status, first.worker, first.attempts, first.cached, first.lease) == ("done", "w1@host", 1, False, "")
    assert (again.pk, again.worker, again.attempts) == (first.pk, "w1@host", 1)
    assert first.seconds is not None and first.finished_at >= first.started_at


def test_units_whose_results_are_cached_do_no_work(scored_round, engine):
    done = [units.unit_run(round_id=scored_round.pk, stage=stage, index=i, worker="w")
            for stage, indices in (("training", [0, 1, 2]), ("scoring", [-1, 0, 1, 2])) for i in indices]
    assert engine.calls == 0 and all(t.status == "done" and t.cached for t in done)
    assert units.stage_pending(scored_round, "training") == [] and units.stage_pending(scored_round, "scoring") == []


def test_a_unit_held_by_a_live_process_is_not_run_twice(scored_round, engine):
    forget_score(scored_round, 0)
    units.stage_units(scored_round, "scoring")
    RoundTask.objects.filter(round=scored_round, stage="scoring", index=0).update(
        status="running", lease="other-host:4242", worker="w9@other-host", heartbeat_at=timezone.now())
    with pytest.raises(units.UnitBusy, match="w9@other-host") as busy:
        run(scored_round, 0)
    assert engine.calls == 0 and 170 < busy.value.retry_in <= 180


@pytest.fixture
def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("holder", ["dead-process-on-this-host", "silent-other-host"])
def test_a_lease_whose_holder_died_is_taken_over(scored_round, engine, dead_pid, holder):
    forget_score(scored_round, 2)
    units.stage_units(scored_round, "scoring")
    if holder == "dead-process-on-this-host":
        lease, beat = f"{socket.gethostname()}:{dead_pid}", timezone.now()
    else:
        lease, beat = "other-host:4242", timezone.now() - units.LEASE_STALE - timedelta(seconds=1)
    RoundTask.objects.filter(round=scored_round, stage="scoring", index=2).update(
        status="running", lease=lease, worker="w9", attempts=1, heartbeat_at=beat)
    task = run(scored_round, 2)
    assert engine.calls == 1 and (task.status, task.attempts, task.worker) == ("done", 2, "w1@host")


def test_a_failed_unit_records_why_and_runs_again(scored_round, engine):
    forget_score(scored_round, 1)
    engine.fail = OSError("disk full")
    with pytest.raises(OSError):
        run(scored_round, 1)
    task = RoundTask.objects.get(round=scored_round, stage="scoring", index=1)
    assert (task.status, task.lease, task.error) == ("failed", "", "OSError: disk full")
    engine.fail = None
    task = run(scored_round, 1)
    assert (task.status, task.attempts, task.error, engine.calls) == ("done", 2, "", 1)


def test_an_interrupted_unit_is_left_pending_for_the_next_runner(scored_round, engine):
    forget_score(scored_round, 1)
    engine.fail = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        run(scored_round, 1)
    task = RoundTask.objects.get(round=scored_round, stage="scoring", index=1)
    assert (task.status, task.lease) == ("pending", "")


def test_units_of_a_cancelled_round_do_nothing(scored_round, engine):
    forget_score(scored_round, 0)
    ValuationRound.objects.filter(pk=scored_round.pk).update(status="cancelled")
    with pytest.raises(RuntimeError, match="cancelled"):
        run(scored_round, 0)
    assert engine.calls == 0


def test_unknown_units_are_refused(scored_round):
    with pytest.raises(ValueError, match="no owner with index 7"):
        units.unit_run(round_id=scored_round.pk, stage="training", index=7, worker="w")
    with pytest.raises(ValueError):
        units.unit_run(round_id=scored_round.pk, stage="polishing", index=0, worker="w")


def test_scoring_an_owner_before_its_model_exists_says_so(scored_round, engine):
    participant = scored_round.participants.get(index=0)
    participant.owner_model = None
    participant.save()
    with pytest.raises(RuntimeError, match="owner 0 has no model yet"):
        run(scored_round, 0)


def test_the_heartbeat_beats_while_the_work_runs_and_stops_after():
    import threading
    import time

    from valuation.leases import heartbeat

    beats = []
    with heartbeat(lambda: beats.append(threading.current_thread().name), every=0.01):
        time.sleep(0.1)
    count = len(beats)
    time.sleep(0.05)
    assert count >= 3 and len(beats) == count and set(beats) == {"valuation-heartbeat"}
