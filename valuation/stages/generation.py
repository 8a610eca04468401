"""Valuing a `reward` round: decode coalitions, judge their responses, one Shapley vector per objective.

Called by the valuing stage (valuing.compute_values) for utility `reward`. The engine's
GenerationGame (engine/reward.py) decodes each coalition once by token-level arithmetic
(engine/decoding.py) over the round's eval prompts and scores it with every judge; here:

* the payout objective (one objective or the admin's blend) is valued first, through the
  same `value_utility` as every other round — exact over all 2^n coalitions when they fit
  the budget, else the budgeted estimator with its CIs and stopping rule;
* then each objective with the same seed, so the estimators ask for (mostly) the same
  coalitions and find them decoded already;
* every decoded coalition is checkpointed as a CoalitionGeneration row the moment it is
  judged, with a heartbeat and a cancellation check: a killed round resumes without
  decoding anything twice, and an admin can read what each coalition generated.

A replay (valuation/replay.py) passes the model directories it checked and decodes
afresh, without reading or writing those rows.
"""
from __future__ import annotations

import numpy as np

from ..models import CoalitionGeneration, ObjectiveValue, ValuationRound
from .common import check_not_cancelled, report_progress, uses_chat


def eval_prompts(eval_set, limit: int, *, chat: bool = False) -> list:
    """The eval set's distinct prompts in row order, the first `limit` of them: text, or message tuples the
    decoder renders through the chat template (`chat`, the round's `uses_chat`)."""
    from .common import eval_pairs

    seen: dict = {}
    for pair in eval_pairs(eval_set, chat=chat):
        seen.setdefault(pair.prompt, None)
        if len(seen) == limit:
            break
    return list(seen)


def reward_game(valuation_round: ValuationRound, sizes, *, model_dirs=None, on_record=None, records=None):
    """The round's GenerationGame: its models, eval prompts, judges and decoding config."""
    from valuation.engine.decoding import DecodingConfig
    from valuation.engine.judges import load_judge
    from valuation.engine.policies import PolicySet
    from valuation.engine.reward import GenerationGame

    from ..objectives import allowed_judge_modules

    settings = valuation_round.config["reward"]
    if model_dirs is None:
        participants = valuation_round.participants.select_related("owner_model").order_by("index")
        model_dirs = [p.owner_model.artifact_path for p in participants]
    judges = {o["name"]: load_judge(o["judge"], allowed_modules=allowed_judge_modules())
              for o in settings["objectives"]}
    return GenerationGame(
        policies=PolicySet(valuation_round.base_model_path, list(model_dirs)),
        prompts=eval_prompts(valuation_round.eval_set, settings["prompts"], chat=uses_chat(valuation_round)),
        judges=judges,
        composition=valuation_round.composition, sizes=np.asarray(sizes, dtype=np.float64),
        config=DecodingConfig(**settings["decoding"]), records=records or {}, on_record=on_record)


def reward_values(valuation_round: ValuationRound, sizes, *, model_dirs=None, on_progress=None):
    """The round's Valuation (payout objective) with `objectives` holding one ShapleyResult per objective."""
    from valuation.engine.shapley import estimate_shapley, exact_shapley_result

    from .valuing import exact_applies, value_utility

    persist = model_dirs is None
    n, config = len(sizes), valuation_round.config
    budget, seed = int(config["budget"]), int(config["seed"])
    exact = exact_applies(valuation_round.estimator, n, budget)
    planned = (1 << n) if exact else budget
    records = _stored_records(valuation_round) if persist else {}
    on_record = _checkpoint(valuation_round, planned, len(records), on_progress, persist)
    game = reward_game(valuation_round, sizes, model_dirs=model_dirs, on_record=on_record, records=records)
    valuation = value_utility(valuation_round, game.utility(config["reward"]["payout"]), n,
                              sampled_interactions=False)
    for name in game.objectives:
        utility = game.utility({name: 1.0})
        valuation.objectives[name] = (
            exact_shapley_result(utility.table(), budget=budget, requested_method=valuation_round.estimator)
            if exact else estimate_shapley(utility, n, method=valuation_round.estimator, budget=budget, seed=seed,
                                           target=config["target"]))
    return valuation


def _stored_records(valuation_round) -> dict:
    from valuation.engine.reward import CoalitionRecord

    return {row.mask: CoalitionRecord(mask=row.mask, scores=row.scores, responses=row.responses,
                                      n_tokens=row.n_tokens, seconds=row.seconds)
            for row in CoalitionGeneration.objects.filter(round=valuation_round)}


def _checkpoint(valuation_round, planned: int, stored: int, on_progress, persist: bool):
    """Per decoded coalition: store it (when persisting), report progress, honour a cancellation."""
    done = [stored]

    def on_record(record) -> None:
        if persist:
            CoalitionGeneration.objects.get_or_create(round=valuation_round, mask=record.mask, defaults=dict(
                size=int(record.mask).bit_count(), scores=record.scores, responses=record.responses,
                n_tokens=record.n_tokens, seconds=record.seconds))
            done[0] += 1
            report_progress(valuation_round, "valuing", min(done[0], planned), max(planned, done[0]), on_progress)
            check_not_cancelled(valuation_round)

    return on_record


def objective_values_create(valuation_round, participants, objectives: dict) -> None:
    """One ObjectiveValue row per (owner, objective); called inside the valuing stage's final transaction."""
    ObjectiveValue.objects.filter(round=valuation_round).delete()
    ObjectiveValue.objects.bulk_create(
        ObjectiveValue(round=valuation_round, owner=p.owner, objective=name, shapley=float(r.values[p.index]),
                       stderr=float(r.stderr[p.index]), ci_low=float(r.ci_low[p.index]),
                       ci_high=float(r.ci_high[p.index]), n_evaluations=int(r.n_evaluations), method=r.method)
        for name, r in objectives.items() for p in participants)
