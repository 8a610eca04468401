"""A round's precision is chosen where it is created (VALUATION_DTYPE) and each worker brings its own device
(VALUATION_DEVICE): a GPU worker serving a bf16 round runs cuda + bf16, a CPU worker the same round cpu + bf16,
and a float32 round records nothing new (docs/gpu.md). No GPU needed: this is the bookkeeping."""
import pytest

from valuation import stages
from valuation.engine.runtime import Runtime
from valuation.models import ValuationRound
from valuation.stages.common import runtime_of


def round_with(settings, dtype: str) -> ValuationRound:
    settings.VALUATION_DTYPE = dtype
    config = stages.round_config(training={}, seed=0, beta=None, budget=16, target=0.01)
    return ValuationRound(name="r", config=config)


def test_a_bf16_round_runs_bf16_on_whichever_device_the_worker_has(settings):
    r = round_with(settings, "bfloat16")
    assert r.config["dtype"] == "bfloat16"
    settings.VALUATION_DEVICE = "cuda"
    assert runtime_of(r) == Runtime(device="cuda", dtype="bfloat16", threads=r.config["threads"])
    settings.VALUATION_DEVICE = "cpu"
    assert runtime_of(r) == Runtime(device="cpu", dtype="bfloat16", threads=r.config["threads"])
    settings.VALUATION_DTYPE = "float32"  # the worker's own setting does not change a recorded round
    assert runtime_of(r).dtype == "bfloat16"


def test_a_float32_round_records_no_dtype_and_runs_as_before(settings):
    r = round_with(settings, "float32")
    assert "dtype" not in r.config and runtime_of(r).dtype == "float32" and runtime_of(r).key_suffix() == ""


def test_an_unknown_precision_is_refused_at_creation(settings):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="VALUATION_DTYPE 'fp8' is not one of: float32, bfloat16, float16"):
        round_with(settings, "fp8")
