import torch

from valuation.engine import base_model
from valuation.engine.base_model import threads_to_use, torch_threads


def test_override_wins(monkeypatch):
    monkeypatch.setenv("VALUATION_TORCH_THREADS", "3")
    assert threads_to_use() == 3
    monkeypatch.setenv("VALUATION_TORCH_THREADS", "0")
    assert threads_to_use() == 1


def test_busy_cores_are_left_alone(monkeypatch):
    monkeypatch.delenv("VALUATION_TORCH_THREADS", raising=False)
    monkeypatch.setattr(base_model.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(base_model, "_other_runnable_tasks", lambda: 1)
    assert threads_to_use() == 3
    monkeypatch.setattr(base_model, "_other_runnable_tasks", lambda: 9)
    assert threads_to_use() == 1


def test_other_runnable_tasks_is_a_small_count():
    assert 0 <= base_model._other_runnable_tasks() < 10_000


def test_torch_threads_restores_the_callers_setting(monkeypatch):
    monkeypatch.setenv("VALUATION_TORCH_THREADS", "1")
    before = torch.get_num_threads()
    with torch_threads() as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
