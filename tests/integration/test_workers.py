"""A round on real Celery worker processes — Redis broker, PostgreSQL — equals the in-process run.

Two workers (`celery -A config worker`, subprocesses of this test) share one round: both take
units, one is killed (SIGKILL) in the middle of a fine-tune, a third starts and resumes the round
(a starting worker re-sends the unfinished rounds; the dead worker's lease is taken over), and the
values and payouts are bit-identical to the same round run in this process by the foreground runner.

The workers must see this test's data, so they are pointed at pytest-django's test database
(`test_<name>`, created from DATABASE_URL) and the test commits (`transactional_db`). The test owns
the Redis database of INTEGRATION_REDIS_URL (flushed before and after). Skips with the reason
without PostgreSQL or Redis; `make test` runs it in its PostgreSQL pass (`make test-postgres`).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection

from valuation import services, tasks
from valuation.engine import synthetic
from valuation.engine.base_model import BaseModelConfig, build_base_model
from valuation.models import OwnerModel, Payout, RoundTask, ScoreCache, ValuationRound
from tests.valuation.conftest import add_eval_set, add_owner

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REDIS_URL = os.environ.get("INTEGRATION_REDIS_URL", "redis://127.0.0.1:6379/15")
TRAINING = {"epochs": 2, "batch_size": 8}  # 24 pairs: 6 steps, a few seconds per owner
# Quality is beside the point here (equality is): a quarter of the demo model, trained for 40 steps.
TINY_BASE = BaseModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256, steps=40)
KINDS = ("clean_helpful", "noisy", "adversarial", "clean_harmless")
STARTUP_SECONDS = 240  # a worker imports torch + TRL before it answers: slow on a busy 2-core machine
ROUND_SECONDS = 300


def _redis():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"needs Redis at {REDIS_URL} (set INTEGRATION_REDIS_URL): {exc}")
    return client


@pytest.fixture(autouse=True)  # autouse runs first: skip before building a model
def redis_db(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://… (make test-postgres does)")
    client = _redis()
    client.flushdb()
    yield client
    client.flushdb()


def _database_url() -> str:
    """pytest-django's test database, as a URL the worker processes' settings read."""
    d = connection.settings_dict
    auth = quote(d["USER"] or "") + (":" + quote(d["PASSWORD"]) if d["PASSWORD"] else "")
    return f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


class Workers:
    """Celery worker subprocesses on this test's queue, and a client app to send to and ping them."""

    def __init__(self, tmp_path: Path, artifacts: Path):
        from celery import Celery

        self.queue = f"itest-{uuid.uuid4().hex[:8]}"
        self.logs = tmp_path
        self.env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=_database_url(),
                        CELERY_BROKER_URL=REDIS_URL, CELERY_TASK_DEFAULT_QUEUE=self.queue,
                        ARTIFACTS_DIR=str(artifacts), CACHE_URL=f"filecache://{tmp_path}/cache",
                        VALUATION_TORCH_THREADS="1", LOG_LEVEL="INFO")
        self.procs: dict[str, subprocess.Popen] = {}
        self.client = Celery("itest-client", broker=REDIS_URL)
        self.client.conf.task_default_queue = self.queue

    def start(self, name: str) -> str:
        node = f"{name}@{os.uname().nodename}"
        log = open(self.logs / f"{name}.log", "wb")
        self.procs[node] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-n", node, "--pool", "solo",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            cwd=django_settings.BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return node

    def wait_ready(self, *nodes: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            answered = {node for reply in self.client.control.ping(destination=list(nodes), timeout=1.0)
                        for node in reply}
            if answered >= set(nodes):
                return
            for node in nodes:
                if self.procs[node].poll() is not None:
                    pytest.fail(f"worker {node} exited:\n{self.log_tail(node)}")
        pytest.fail(f"workers {nodes} did not answer within {STARTUP_SECONDS} s:\n"
                    + "\n".join(self.log_tail(n) for n in nodes))

    def kill(self, node: str) -> None:
        self.procs[node].send_signal(signal.SIGKILL)
        self.procs[node].wait(timeout=30)

    def log_tail(self, node: str) -> str:
        return (self.logs / f"{node.split('@')[0]}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGQUIT)  # cold shutdown: do not finish a fine-tune first
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(redis_db, tmp_path):
    pool = Workers(tmp_path, tmp_path / "worker-artifacts")
    yield pool
    pool.stop()


@pytest.fixture
def market(transactional_db, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("itest-corpus") / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(0), encoding="utf-8")
    base = build_base_model(corpus, tmp_path_factory.mktemp("itest-base") / "model", seed=0, config=TINY_BASE)
    for i, kind in enumerate(KINDS):
        add_owner(f"{kind}-{i}", synthetic.owner_pairs(kind, 24, 60 + i))
    return add_eval_set("eval", synthetic.eval_pairs(48, 1)), base.path


def _create(market, name):
    eval_set, base = market
    return services.round_create(name=name, pool="1000.00", eval_set=eval_set, base_model_dir=str(base),
                                 training=TRAINING, seed=5)


def _result(r):
    return ({v.owner.name: v.shapley for v in r.values.all()}, {p.owner.name: p.amount for p in r.payouts.all()})


def _forget(r):
    Payout.objects.filter(round=r).delete()
    r.delete()
    OwnerModel.objects.all().delete()
    ScoreCache.objects.all().delete()


def _wait(r, until, what: str, workers: Workers, seconds=ROUND_SECONDS):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r.refresh_from_db()
        if r.status == ValuationRound.Status.FAILED:
            pytest.fail(f"round failed: {r.error}")
        found = until(r)
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"{what} within {seconds} s; round {r.status} {r.progress}\n"
                + "\n".join(workers.log_tail(node) for node in workers.procs))


def test_two_workers_share_a_round_survive_a_killed_worker_and_match_the_in_process_values(
        market, workers, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("VALUATION_TORCH_THREADS", "1")  # as the workers: same kernels, same bits
    settings.ARTIFACTS_DIR = tmp_path / "in-process-artifacts"
    reference = services.round_execute(round_id=_create(market, "in-process").pk)
    expected = _result(reference)
    _forget(reference)  # cold caches: the workers train every owner again

    w1, w2 = workers.start("w1"), workers.start("w2")
    workers.wait_ready(w1, w2)
    monkeypatch.setattr(tasks.round_execute_task, "delay",  # the web/API path, its message on the real broker
                        lambda round_id: workers.client.send_task(tasks.round_execute_task.name, args=[round_id]))
    r = services.round_queue(valuation_round=_create(market, "on-workers"))

    def both_running(r):
        running = {worker: pk for pk, worker in RoundTask.objects.filter(round=r, status="running")
                   .values_list("pk", "worker")}
        return running if {w1, w2} <= set(running) else None

    running = _wait(r, both_running, "both workers running a unit", workers)  # both took tasks
    workers.kill(w2)  # mid-unit: its unit stays leased by a dead process, its message unacknowledged
    killed = RoundTask.objects.get(pk=running[w2])
    w3 = workers.start("w3")  # a starting worker re-sends the round; the dead lease is taken over
    _wait(r, lambda r: r.status == ValuationRound.Status.DONE, "the round done", workers)

    assert _result(r) == expected  # bit-identical values, payouts to the cent
    units = RoundTask.objects.filter(round=r)
    assert units.count() == 2 * len(KINDS) + 1 and {u.status for u in units} == {"done"}
    killed.refresh_from_db()
    if killed.status == "done" and killed.worker == w2:  # it finished before the signal landed
        assert killed.attempts == 1
    else:
        assert killed.attempts == 2 and killed.worker in (w1, w3)
    assert all(u.attempts == 1 for u in units.exclude(pk=killed.pk))  # nothing else ran twice
    assert {u.worker for u in units} <= {w1, w2, w3} and w1 in {u.worker for u in units}
    assert OwnerModel.objects.count() == len(KINDS) and r.runner == "" and r.finished_at is not None
    assert r.progress["training"] == {"done": len(KINDS), "total": len(KINDS)}
