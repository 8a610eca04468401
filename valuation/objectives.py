"""Objectives of `reward` rounds: checking and recording what an admin asks for.

A reward round (docs/design.md §2, utility `reward`) values owners by what the composed model
generates, scored by judges. The admin names one or more objectives (name = judge), the
payout objective (one objective, or a weighted blend whose weights are normalised to sum
to 1) and the decoding settings; `reward_settings` checks all of it before anything is
trained — every judge is loaded once — and returns the JSON block stored as
`config["reward"]` on the round, which the generation stage (stages/generation.py) reads.
The web form, the API and `run_round` all go through here.
"""
from __future__ import annotations

import dataclasses
import math
import re

from django.conf import settings
from django.core.exceptions import ValidationError

NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_OBJECTIVES = 8
DEFAULT_PROMPTS = 128  # eval prompts decoded per coalition: ±0.04 standard error on a 0/1 judge's mean
MAX_PROMPTS = 5000
DEFAULT_BUDGET = 128  # coalitions decoded per objective: exact Shapley up to 7 owners, sampled above
DEMO_OBJECTIVES = ("helpfulness", "harmlessness")  # the demo domain's two built-in judges


def allowed_judge_modules() -> tuple[str, ...]:
    return tuple(getattr(settings, "JUDGE_MODULES", ("valuation.engine.synthetic",)))


def parse_objectives(value) -> list[dict]:
    """[{"name", "judge"}] from dicts, "name=judge" strings or built-in short names ("helpfulness")."""
    if isinstance(value, str):
        value = [part for part in re.split(r"[\n,]", value) if part.strip()]
    if not value:
        raise ValidationError("the reward utility needs at least one objective: name=judge (e.g. "
                              "helpfulness=valuation.engine.synthetic:helpfulness_judge, or just helpfulness)")
    out = []
    for item in value:
        if isinstance(item, dict):
            name, judge = str(item.get("name", "")).strip(), str(item.get("judge", "")).strip()
        else:
            name, sep, judge = str(item).strip().partition("=")
            name, judge = name.strip(), (judge.strip() if sep else name.strip())
        if not NAME.match(name):
            raise ValidationError(f"objective name '{name}' must be lower-case letters, digits or _ (at most 32, "
                                  "starting with a letter)")
        out.append({"name": name, "judge": judge})
    names = [o["name"] for o in out]
    if len(set(names)) != len(names):
        raise ValidationError(f"objective names must be unique, got {', '.join(names)}")
    if len(out) > MAX_OBJECTIVES:
        raise ValidationError(f"at most {MAX_OBJECTIVES} objectives per round, got {len(out)}")
    return out


def parse_payout(value, names: list[str]) -> dict[str, float]:
    """Weights of the payout objective: None = equal blend; "name"; "a=0.7,b=0.3"; or a dict. Sum to 1."""
    if value in (None, "", {}):
        return {name: 1.0 / len(names) for name in names}
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        value = {}
        for part in parts:
            name, sep, weight = part.partition("=")
            value[name.strip()] = weight.strip() if sep else "1"
    if not isinstance(value, dict):
        raise ValidationError("payout objective must be an objective name or weights like 'a=0.5,b=0.5'")
    weights = {}
    for name, weight in value.items():
        if name not in names:
            raise ValidationError(f"payout objective names '{name}', which is not one of the round's objectives "
                                  f"({', '.join(names)})")
        try:
            weights[name] = float(weight)
        except (TypeError, ValueError):
            raise ValidationError(f"payout weight of '{name}' is not a number: {weight!r}") from None
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise ValidationError(f"payout weight of '{name}' must be a non-negative number, got {weight!r}")
    total = sum(weights.values())
    if total <= 0:
        raise ValidationError("payout weights must not all be zero")
    return {name: w / total for name, w in weights.items() if w > 0}


def decoding_config(overrides: dict | None, *, seed: int):
    """The engine's DecodingConfig from the round's overrides (unknown names and bad values refused)."""
    from valuation.engine.decoding import DecodingConfig

    fields = {f.name for f in dataclasses.fields(DecodingConfig)}
    overrides = dict(overrides or {})
    unknown = set(overrides) - fields
    if unknown:
        raise ValidationError(f"unknown decoding option(s): {', '.join(sorted(unknown))}; "
                              f"valid: {', '.join(sorted(fields))}")
    overrides.setdefault("seed", seed)
    try:
        return DecodingConfig(**overrides)
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None


def reward_settings(*, objectives, payout_objective=None, decoding: dict | None = None, prompts: int | None = None,
                    seed: int = 0, n_owners: int) -> dict:
    """Check a reward round's options (loading every judge once) and return its config["reward"] block."""
    from valuation.engine.judges import load_judge
    from valuation.engine.reward import MAX_OWNERS

    if n_owners > MAX_OWNERS:
        raise ValidationError(f"a reward round handles at most {MAX_OWNERS} owners, this one would have {n_owners}")
    parsed = parse_objectives(objectives)
    for objective in parsed:
        try:
            judge = load_judge(objective["judge"], allowed_modules=allowed_judge_modules())
        except ValueError as exc:
            raise ValidationError(f"objective '{objective['name']}': {exc}") from None
        objective["judge"] = judge.spec  # the resolved dotted path or absolute directory, as run
    names = [o["name"] for o in parsed]
    payout = parse_payout(payout_objective, names)
    n_prompts = DEFAULT_PROMPTS if prompts is None else prompts
    if isinstance(n_prompts, bool) or not isinstance(n_prompts, int) or not 1 <= n_prompts <= MAX_PROMPTS:
        raise ValidationError(f"prompts must be a whole number from 1 to {MAX_PROMPTS}, got {n_prompts!r}")
    config = decoding_config(decoding, seed=seed)
    return {"objectives": parsed, "payout": payout, "prompts": n_prompts, "decoding": dataclasses.asdict(config)}


def reward_settings_for(utility: str, *, objectives, payout_objective, decoding, prompts, seed: int,
                        n_owners: int) -> dict | None:
    """config["reward"] of a round with this utility: checked settings for `reward`, None otherwise
    (and an error when reward-only options were given to another utility)."""
    if utility == "reward":
        return reward_settings(objectives=objectives, payout_objective=payout_objective, decoding=decoding,
                               prompts=prompts, seed=seed, n_owners=n_owners)
    given = [name for name, value in (("objectives", objectives), ("payout objective", payout_objective),
                                      ("decoding options", decoding), ("prompts", prompts)) if value]
    if given:
        raise ValidationError(f"{', '.join(given)} only apply to the 'reward' utility, not '{utility}'")
    return None


def payout_label(weights: dict[str, float]) -> str:
    """'helpfulness' or '0.5 × helpfulness + 0.5 × harmlessness'."""
    if len(weights) == 1:
        return next(iter(weights))
    return " + ".join(f"{w:g} × {name}" for name, w in weights.items())
