"""Each owner's fine-tune as the round page and the owner's statement show it: TRL's per-step log of the
owner's model (engine/training_log.py; it belongs to the cached model, so a reused model shows the run that
trained it) beside the owner's solo utility v({i}), the value of their data alone (docs/design.md §2).
Callers pass only the participants the viewer may see: staff all of them, an owner their own."""
from __future__ import annotations

import numpy as np

from .models import OwnerModel, ValuationRound

CURVES_LIMIT = 24  # owners drawn on the round page's curves; more lines than this no one can tell apart


def _solo_utilities(valuation_round: ValuationRound, indices: list[int]) -> dict[int, float]:
    """v({i}) for each index, from the coalition rows (small rounds) or the .npy table (any size it has)."""
    masks = {1 << i: i for i in indices if i < 63}
    rows = valuation_round.coalition_utilities.filter(mask__in=list(masks) + [0]).values_list("mask", "value")
    found = {masks.get(mask, -1): value for mask, value in rows}
    missing = [i for i in indices if i not in found]
    if missing and valuation_round.utilities_path:
        try:
            table = np.load(valuation_round.utilities_path, mmap_mode="r")
        except (OSError, ValueError):
            return found
        found.update({i: float(table[1 << i]) for i in missing if (1 << i) < len(table)})
        if 0 < len(table):
            found[-1] = float(table[0])
    return found


def training_rows(*, valuation_round: ValuationRound, participants) -> list[dict]:
    """[{"owner", "index", "steps", "every", "tokens", "seconds", "reused", "solo", "empty"}] in index order;
    "steps" is empty for a model trained before logs were kept, "solo" None before the round is valued.
    "empty" is v(∅), the base model's utility the solo value is measured against."""
    participants = sorted(participants, key=lambda p: p.index)
    solo = _solo_utilities(valuation_round, [p.index for p in participants]) if participants else {}
    # The log and token count alone, for these owners alone: pages list participants without the metrics JSON.
    models = {pk: (seconds, log or {}, tokens) for pk, seconds, log, tokens in OwnerModel.objects.filter(
        pk__in=[p.owner_model_id for p in participants if p.owner_model_id]).values_list(
        "pk", "seconds", "metrics__log", "metrics__tokens")}
    rows = []
    for p in participants:
        seconds, log, tokens = models.get(p.owner_model_id, (None, {}, None))
        rows.append({"owner": p.owner.name, "index": p.index, "steps": log.get("steps", []),
                     "every": log.get("every", 1), "tokens": tokens, "seconds": seconds, "reused": p.model_reused,
                     "solo": solo.get(p.index), "empty": solo.get(-1)})
    return rows
