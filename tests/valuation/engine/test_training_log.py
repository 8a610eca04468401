"""The training log a fine-tune records: TRL's steps kept whole up to a cap, thinned evenly above it."""
from valuation.engine.lengths import PairLength
from valuation.engine.training_log import STEP_KEYS, step_log


def history(n: int) -> list[dict]:
    steps = [{"loss": 1.0 / k, "rewards/margins": 0.1 * k, "rewards/accuracies": 0.5, "rewards/chosen": 0.2,
              "rewards/rejected": -0.1, "learning_rate": 1e-3, "grad_norm": 2.0, "epoch": k / n, "step": k,
              "logps/chosen": -5.0} for k in range(1, n + 1)]
    return steps + [{"train_loss": 0.3, "train_runtime": 1.0, "step": n}]  # TRL's closing summary is no step


def test_every_step_up_to_the_cap():
    log = step_log(history(12), cap=500)
    assert log["every"] == 1 and [s["step"] for s in log["steps"]] == list(range(1, 13))
    assert set(log["steps"][0]) == {"step", "epoch", *STEP_KEYS}  # logps and the summary entry are not kept
    assert log["steps"][2]["loss"] == 1 / 3


def test_above_the_cap_every_kth_step_and_the_last():
    log = step_log(history(1001), cap=100)
    steps = [s["step"] for s in log["steps"]]
    assert log["every"] == 11 and len(steps) <= 100
    assert steps[:3] == [1, 12, 23] and steps[-1] == 1001


def test_grad_norm_only_when_logged():
    entries = [{"loss": 0.5, "rewards/margins": 0.0, "step": 1, "epoch": 1.0}]
    assert step_log(entries)["steps"] == [{"step": 1, "epoch": 1.0, "loss": 0.5, "rewards/margins": 0.0}]


def test_trained_tokens_follow_trls_cut():
    assert PairLength(prompt=10, chosen=5, rejected=7, max_length=None).trained_tokens == 15 + 17
    assert PairLength(prompt=10, chosen=5, rejected=7, max_length=16).trained_tokens == 15 + 16
    assert PairLength(prompt=20, chosen=5, rejected=7, max_length=16).trained_tokens == 0  # dropped by TRL
