"""The training presets as the new-round form shows them: every preset's config side by side, and the
effective one — the chosen preset (``auto`` resolved against the chosen base model) with the overrides
typed into the form. Read-only; round creation resolves the same way (stages/common.round_config)."""
from __future__ import annotations

import dataclasses
import json


def _shown(value) -> str:
    return ", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def _effective(base_model: str, preset: str, overrides: dict) -> tuple[dict | None, str]:
    """(effective config as a dict, or None, and a sentence saying how it was resolved or why it was not)."""
    from valuation.engine import presets

    try:
        name = presets.resolve(preset, base_model) if preset == presets.AUTO else preset
        cfg = presets.effective_config(name, overrides)
    except (ValueError, TypeError, OSError) as exc:
        return None, f"effective config not shown: {exc}"
    how = f"'{preset}' is '{name}' for this base model" if preset == presets.AUTO else f"preset '{name}'"
    return dataclasses.asdict(cfg), how + (f" with {', '.join(sorted(overrides))} overridden" if overrides else "")


def preset_table(*, base_model: str, preset: str, overrides_text: str = "") -> dict:
    """{"columns": preset names, "rows": [{"field", "values": [...], "effective"}], "note", "threshold"}
    (the seed is left out: the round's own seed field sets it)."""
    from valuation.engine import presets
    from valuation.engine.dpo import TrainingConfig

    concrete = [presets.TINY, presets.LORA]
    configs = [dataclasses.asdict(presets.preset_config(name)) for name in concrete]
    try:
        overrides = json.loads(overrides_text) if overrides_text.strip() else {}
    except json.JSONDecodeError:
        overrides = None
    if not isinstance(overrides, dict):
        effective, note = None, "effective config not shown: the training overrides are not a JSON object"
    else:
        overrides.pop("seed", None)  # the round's seed field sets it
        effective, note = _effective(base_model, preset or presets.AUTO, overrides)
    rows = [{"field": f.name, "values": [_shown(c[f.name]) for c in configs],
             "effective": _shown(effective[f.name]) if effective else ""}
            for f in dataclasses.fields(TrainingConfig) if f.name != "seed"]
    return {"columns": concrete, "rows": rows, "note": note, "threshold": presets.LORA_MIN_PARAMETERS}
