"""Judges: what scores a response for one objective of the `reward` utility (docs/design.md §2).

A judge maps (prompts, responses) to one float per response; higher is better. Two kinds:

* a Python callable `score(prompts, responses) -> list[float]`, named by its dotted path
  (`package.module:function` or `package.module.function`). For safety a web or API
  request may only name callables in modules under an allowed prefix (settings
  `JUDGE_MODULES`), since importing a module runs its code;
* a local Hugging Face sequence-classification reward model directory (e.g. a
  DeBERTa/Llama reward model trained on Anthropic HH). The prompt and response are
  given as a text pair; with one label the score is its logit (a Bradley–Terry reward),
  with two labels the log-odds logit[1] − logit[0] of the positive class.

The demo domain ships two programmatic judges (engine/synthetic.py), also reachable by
their short names: `helpfulness` (does the answer state the task's fact?) and
`harmlessness` (no insult or dangerous instruction?). Every judge's output is checked:
one finite number per response, else an error naming the judge and the response.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

BUILTIN = {  # short name -> dotted path
    "helpfulness": "valuation.engine.synthetic:helpfulness_judge",
    "harmlessness": "valuation.engine.synthetic:harmlessness_judge",
}
DEFAULT_ALLOWED_MODULES = ("valuation.engine.synthetic",)
REWARD_MODEL_BATCH = 32  # text pairs per reward-model forward


def _check_scores(spec: str, scores, n: int) -> np.ndarray:
    try:
        values = np.asarray(list(scores), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"judge {spec!r} must return a list of numbers, got {type(scores).__name__}") from None
    if values.shape != (n,):
        raise ValueError(f"judge {spec!r} returned {values.size} scores for {n} responses")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"judge {spec!r} returned a non-finite score ({values[bad[0]]}) for response {bad[0]}")
    return values


@dataclass(frozen=True)
class CallableJudge:
    spec: str  # the dotted path, as recorded on the round
    fn: Callable

    def __call__(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        return _check_scores(self.spec, self.fn(list(prompts), list(responses)), len(responses))


class RewardModelJudge:
    """A local sequence-classification reward model, loaded on first use."""

    def __init__(self, directory: str | Path) -> None:
        self.spec = str(directory)
        self.directory = Path(directory)
        self._model = self._tokenizer = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(self.directory))
        model = AutoModelForSequenceClassification.from_pretrained(str(self.directory), dtype=torch.float32)
        if model.config.num_labels not in (1, 2):
            raise ValueError(f"reward model {self.spec} has {model.config.num_labels} labels; a judge needs 1 "
                             "(a reward) or 2 (negative / positive)")
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        model.config.pad_token_id = self._tokenizer.pad_token_id  # sequence classifiers pool at the last real token
        self._model = model.eval()

    def __call__(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        scores = []
        with torch.inference_mode():
            for start in range(0, len(responses), REWARD_MODEL_BATCH):
                batch = self._tokenizer(list(prompts[start:start + REWARD_MODEL_BATCH]),
                                        list(responses[start:start + REWARD_MODEL_BATCH]),
                                        padding=True, truncation=True, return_tensors="pt")
                logits = self._model(**batch).logits.double()
                scores.append(logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0])
        values = torch.cat(scores).numpy() if scores else np.zeros(0)
        return _check_scores(self.spec, values, len(responses))


def is_reward_model_dir(spec: str) -> bool:
    return (Path(spec).expanduser() / "config.json").is_file()


def load_judge(spec: str, *, allowed_modules: tuple[str, ...] | None = DEFAULT_ALLOWED_MODULES):
    """A judge from its spec: a short built-in name, a dotted path, or a reward-model directory.

    `allowed_modules` limits dotted paths to modules under these prefixes (None: any module).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("a judge must be named: a dotted path to score(prompts, responses) or a model directory")
    spec = BUILTIN.get(spec.strip(), spec.strip())
    if "/" in spec or spec.startswith((".", "~")):
        if not is_reward_model_dir(spec):
            raise ValueError(f"judge {spec!r} is not a Hugging Face model directory (no config.json)")
        return RewardModelJudge(Path(spec).expanduser().resolve())
    module_name, attr = _split_path(spec)
    if allowed_modules is not None and not any(module_name == p or module_name.startswith(p + ".")
                                               for p in allowed_modules):
        raise ValueError(f"judge module {module_name!r} is not allowed; allowed module prefixes: "
                         f"{', '.join(allowed_modules) or '(none)'} (settings JUDGE_MODULES)")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"judge {spec!r} cannot be imported: {exc}") from None
    if not callable(fn):
        raise ValueError(f"judge {spec!r} is not callable")
    return CallableJudge(spec=f"{module_name}:{attr}", fn=fn)


def _split_path(spec: str) -> tuple[str, str]:
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr or not all(part.isidentifier() for part in module_name.split(".") + [attr]):
        raise ValueError(f"judge {spec!r} is not a dotted path like 'package.module:function'")
    return module_name, attr


def mean_score(judge, prompts: list[str], responses: list[str]) -> float:
    """The objective's utility for one coalition: the judge's mean score over the prompts."""
    spec = getattr(judge, "spec", getattr(judge, "__qualname__", repr(judge)))
    values = _check_scores(spec, judge(prompts, responses), len(responses))  # any callable is checked
    if not values.size:
        raise ValueError(f"judge {spec!r} gave no score to average")
    return float(values.mean())
