"""Torch threads are a fixed, recorded number, never a guess from the machine's load: CPU kernels split
reductions by thread count, so the count is part of what reproduces a model bit for bit."""
import os

import torch

from valuation.engine import base_model
from valuation.engine.base_model import threads_to_use, torch_threads
from valuation.engine.runtime import Runtime


def test_override_wins(monkeypatch):
    monkeypatch.setenv("VALUATION_TORCH_THREADS", "3")
    assert threads_to_use() == 3
    monkeypatch.setenv("VALUATION_TORCH_THREADS", "0")
    assert threads_to_use() == 1


def test_default_is_the_cores_capped_and_ignores_load(monkeypatch):
    monkeypatch.delenv("VALUATION_TORCH_THREADS", raising=False)
    monkeypatch.setattr(base_model.os, "cpu_count", lambda: 2)
    assert threads_to_use() == 2
    monkeypatch.setattr(base_model.os, "cpu_count", lambda: 64)
    assert threads_to_use() == base_model.MAX_DEFAULT_THREADS
    assert not hasattr(base_model, "_other_runnable_tasks")  # nothing reads /proc/loadavg any more


def test_torch_threads_takes_an_explicit_count_and_restores_the_callers(monkeypatch):
    monkeypatch.setenv("VALUATION_TORCH_THREADS", "2")
    before = torch.get_num_threads()
    with torch_threads(1) as threads:
        assert threads == torch.get_num_threads() == 1
    with torch_threads() as threads:
        assert threads == torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_runtime_carries_threads_and_refuses_nonsense():
    assert Runtime().threads == 0 and Runtime(threads=3).threads == 3
    for bad in (-1, 1.5, True):
        try:
            Runtime(threads=bad)
        except ValueError as exc:
            assert "threads" in str(exc)
        else:
            raise AssertionError(f"Runtime(threads={bad!r}) was accepted")


def test_engine_import_makes_idle_openmp_threads_sleep():
    assert os.environ.get("OMP_WAIT_POLICY", "").upper() in ("PASSIVE", "ACTIVE")  # set unless given explicitly
