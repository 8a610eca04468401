"""A round's worker killed with SIGKILL and resumed through `manage.py run_round` (crash_harness.py):
in training at a random instant, right after scoring, and inside the transaction that writes payouts.
Each resumed round equals the uninterrupted one — values as floats, payouts to the cent — with one
payout per owner and Σ payouts == pool. bench/reliability.py runs ≥ 20 such kills."""
import random

import pytest

from tests.valuation import crash_harness

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crash_setup(tiny_base_model, tmp_path_factory):
    return crash_harness.prepare(tmp_path_factory.mktemp("crash"), tiny_base_model)


def test_the_reference_round_is_a_real_valuation(crash_setup):
    ref = crash_setup.reference
    assert ref["status"] == "done" and set(ref["values"]) == {"clean", "noisy", "adversary"}
    assert ref["values"]["clean"] > ref["values"]["adversary"]
    assert sum(float(a) for a in ref["payouts"].values()) == pytest.approx(100.0)


@pytest.mark.parametrize("kind", ["training", "scoring:scored", "valuing:payouts-written"])
def test_killed_and_resumed_round_matches_the_uninterrupted_one(crash_setup, kind):
    result = crash_harness.crash_run(crash_setup, f"ci-{kind.replace(':', '-')}", kind, random.Random(kind))
    assert result["killed"], f"the worker finished before the kill: {result}"
    expected_stage = kind.split(":")[0]
    assert result["stage_at_kill"] == expected_stage, result
    assert not crash_harness.mismatch(result), result
    assert result["double_payouts"] == 0 and result["ledger_rows"] == {"clean": 1, "noisy": 1, "adversary": 1}
