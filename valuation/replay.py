"""Replaying a finished round: does the recorded evidence reproduce its values and payouts exactly?

A round records everything that determines its result (`round_record`): config with
seeds, base-model hash, eval-set hash, each owner's data hash and model hash, library
versions. `round_replay` recomputes the result without writing anything:

* from the stored artifacts (default): every hash is checked against the files, the
  eval set is scored afresh under the stored base and owner models (the ScoreCache is
  not used), and values, the utility table and payouts are recomputed;
* `from_scratch`: the owner models are retrained into a temporary directory first
  (training is deterministic given the seed), so nothing stored but the inputs is used.

Values must be bit-identical (float ==) and payouts equal to the cent; a different
library version is reported, since it may change the last bits.
"""
from __future__ import annotations

import dataclasses

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError

from . import stages
from .models import ValuationRound
from .stages.common import _library_versions, runtime_of, training_config
from .stages.scoring import eval_max_length, score_order
from .stages.valuing import compute_values, payout_split

ProgressFn = Callable[[str, int, int], None]


@dataclass
class ReplayCheck:
    what: str
    status: str  # "ok" | "warning" (does not decide the result) | "failed"
    detail: str = ""


@dataclass
class ReplayReport:
    round_id: int
    from_scratch: bool
    checks: list[ReplayCheck] = field(default_factory=list)
    values: list[dict] = field(default_factory=list)  # {"owner", "recorded", "replayed", "equal"}
    payouts: list[dict] = field(default_factory=list)  # {"owner", "recorded", "replayed", "equal"} (amount strings)

    @property
    def matches(self) -> bool:
        """Values and payouts reproduced exactly, and no input check failed."""
        return bool(self.values) and all(row["equal"] for row in self.values + self.payouts) and not any(
            c.status == "failed" for c in self.checks)

    def check(self, what: str, ok: bool, detail: str = "", *, warn: bool = False) -> bool:
        self.checks.append(ReplayCheck(what, "ok" if ok else ("warning" if warn else "failed"), detail))
        return ok

    def to_dict(self) -> dict:
        return {"round": self.round_id, "from_scratch": self.from_scratch, "matches": self.matches,
                "checks": [asdict(c) for c in self.checks], "values": self.values, "payouts": self.payouts}


def round_record(*, valuation_round: ValuationRound) -> dict:
    """Everything that determines a round's result, and which owner models it reused."""
    owners = []
    for p in valuation_round.participants.select_related("owner__user", "owner_model").order_by("index"):
        model = p.owner_model
        owners.append({"owner": p.owner.name, "index": p.index, "n_pairs": p.n_pairs, "data_hash": p.data_hash,
                       "model_hash": model.model_hash if model else None,
                       "cache_key": model.cache_key if model else None,
                       "config_hash": model.config_hash if model else None, "reused": p.model_reused,
                       "trained_in_round": model.metrics.get("trained_in_round") if model else None})
    config = valuation_round.config
    return {"round": valuation_round.pk, "name": valuation_round.name, "config": config,
            "seed": config.get("seed"), "versions": config.get("versions", {}),
            "base_model_path": valuation_round.base_model_path, "base_model_hash": valuation_round.base_model_hash,
            "eval_set": valuation_round.eval_set.name, "eval_set_hash": valuation_round.eval_set_hash,
            "utility": valuation_round.utility, "composition": valuation_round.composition,
            "estimator": valuation_round.estimator, "utilities_hash": valuation_round.utilities_hash,
            "owners": owners, "n_reused": sum(o["reused"] for o in owners),
            "n_trained": sum(not o["reused"] for o in owners)}


def round_replay(*, valuation_round: ValuationRound, from_scratch: bool = False,
                 on_progress: ProgressFn | None = None) -> ReplayReport:
    """Recompute a finished round's values and payouts and compare them with what it recorded."""
    if valuation_round.status != ValuationRound.Status.DONE:
        raise ValidationError(f"only a finished round can be replayed (this one is {valuation_round.status})")
    report = ReplayReport(round_id=valuation_round.pk, from_scratch=from_scratch)
    inputs = _check_inputs(valuation_round, report)
    if inputs is None:
        return report
    participants, pairs, eval_set = inputs
    _check_screen(valuation_round, report)
    Path(settings.ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="replay-", dir=settings.ARTIFACTS_DIR) as scratch:
        model_dirs = _models(valuation_round, participants, pairs, Path(scratch), report, from_scratch, on_progress)
        if model_dirs is not None:
            _revalue(valuation_round, participants, model_dirs, eval_set, report, on_progress)
    return report


def _check_inputs(r: ValuationRound, report: ReplayReport):
    base_dir = Path(r.base_model_path)
    if not report.check("base model", base_dir.is_dir() and stages.model_dir_hash(base_dir) == r.base_model_hash,
                        f"{base_dir} must hash to {r.base_model_hash[:12]}"):
        return None
    eval_set = stages.eval_pairs(r.eval_set, chat=stages.uses_chat(r))
    if not report.check("eval set", stages.pairs_digest(eval_set) == r.eval_set_hash,
                        f"'{r.eval_set.name}' must hash to {r.eval_set_hash[:12]}"):
        return None
    participants = list(r.participants.select_related("owner__user", "owner_model").order_by("index"))
    pairs = [stages.owner_pairs(p.contributions.order_by("id"), chat=stages.uses_chat(r)) for p in participants]
    changed = [p.owner.name for p, owned in zip(participants, pairs) if stages.pairs_digest(owned) != p.data_hash]
    if not report.check("owner data", not changed, f"changed since the round: {', '.join(changed)}" if changed
                        else f"{len(participants)} owners' data hashes match"):
        return None
    now, then = _library_versions(), r.config.get("versions", {})
    differ = {k: f"{then.get(k)} → {v}" for k, v in now.items() if then.get(k) != v}
    report.check("library versions", not differ, ", ".join(f"{k} {v}" for k, v in differ.items())
                 or "as recorded", warn=True)
    return participants, pairs, eval_set


def _check_screen(r: ValuationRound, report: ReplayReport) -> None:
    """Screen the round again with the thresholds it recorded; the per-owner rows must be the same."""
    from .models import ScreenReport
    from .stages.screening import compute_screen, owner_rows

    screen = ScreenReport.objects.filter(round=r).first()
    if screen is None or screen.status != ScreenReport.Status.DONE:
        report.check("semantic screen", True, "not screened" if screen is None else f"recorded as {screen.status}",
                     warn=True)
        return
    names = {p.owner_id: p.owner.name for p in r.participants.select_related("owner__user")}
    try:
        result, *_ = compute_screen(r, screen.config)
    except Exception as exc:  # noqa: BLE001  (reported, like any other failed check)
        report.check("semantic screen", False, f"could not be recomputed: {exc}")
        return
    replayed = sorted(owner_rows(result, names), key=lambda row: row["owner_id"])
    recorded = sorted(({k: getattr(row, k) for k in replayed[0]} for row in screen.owners.all()),
                      key=lambda row: row["owner_id"]) if replayed else []
    differ = [names.get(a["owner_id"], a["owner_id"]) for a, b in zip(replayed, recorded) if a != b]
    same = len(replayed) == len(recorded) and not differ
    threshold = screen.config["screen"]["pair_threshold"]
    report.check("semantic screen", same, f"{len(replayed)} owners' rows identical at cosine {threshold}" if same
                 else f"differs for {', '.join(map(str, differ)) or 'the number of owners'}")


def _models(r, participants, pairs, scratch: Path, report, from_scratch: bool, on_progress) -> list[Path] | None:
    """The owner model directories to score: the stored ones (hash-checked) or fresh retrainings."""
    from valuation.engine import dpo
    from valuation.engine.hashing import directory_hash

    cfg, dirs, runtime = training_config(r.config), [], runtime_of(r)
    for done, (p, owned) in enumerate(zip(participants, pairs)):
        if on_progress:
            on_progress("training" if from_scratch else "checking models", done, len(participants))
        recorded = p.owner_model.model_hash
        if from_scratch:
            # The thread count the model was trained with (kernels split reductions by it), else the round's.
            threads = int((p.owner_model.metrics or {}).get("threads") or runtime.threads)
            result = dpo.train_owner_model(r.base_model_path, owned, scratch / str(p.index), cfg,
                                           base_model_hash=r.base_model_hash,
                                           runtime=dataclasses.replace(runtime, threads=threads))
            path, actual = result.path, result.model_hash
        else:
            path = Path(p.owner_model.artifact_path)
            actual = directory_hash(path, exclude=dpo.RECORD_FILES) if path.is_dir() else "missing"
        ok = report.check(f"model of {p.owner.name}", actual == recorded,
                          f"{'retrained' if from_scratch else str(path)}: {actual[:12]} (recorded {recorded[:12]})")
        if not ok and not from_scratch:
            return None  # nothing to score; a retrained model that differs is still scored, to show the effect
        dirs.append(path)
    return dirs


def _revalue(r, participants, model_dirs, eval_set, report: ReplayReport, on_progress) -> None:
    from valuation.engine.scoring import delta_matrix, score_model

    scores = []
    for done, path in enumerate([Path(r.base_model_path)] + model_dirs):
        if on_progress:
            on_progress("scoring", done, len(model_dirs) + 1)
        scores.append(score_model(path, r.base_model_path, eval_set, runtime=runtime_of(r),
                                  max_length=eval_max_length(r), order=score_order(r)))
    D = delta_matrix(scores[0], scores[1:])
    # A reward round decodes its coalitions afresh from these (hash-checked) models, without its stored generations.
    sizes = np.array([p.training_size for p in participants], dtype=np.int64)
    valuation = compute_values(r, D, sizes, model_dirs=[str(d) for d in model_dirs], on_progress=on_progress)
    split = payout_split(r, valuation, D, sizes)
    _compare(r, participants, valuation, split, report)


def _compare(r, participants, valuation, split, report: ReplayReport) -> None:
    from valuation.engine.hashing import sha256_file

    values = {v.owner_id: v.shapley for v in r.values.all()}
    payouts = {p.owner_id: p.amount for p in r.payouts.originals()}  # what the valuation paid, before corrections
    unit = r.minor_unit
    for p in participants:
        replayed, recorded = float(valuation.result.values[p.index]), values.get(p.owner_id)
        report.values.append({"owner": p.owner.name, "recorded": recorded, "replayed": replayed,
                              "equal": recorded == replayed})
        amount, paid = split.amounts[p.index], payouts.get(p.owner_id)
        report.payouts.append({"owner": p.owner.name, "recorded": None if paid is None else str(paid.quantize(unit)),
                               "replayed": str(amount.quantize(unit)), "equal": paid == amount})
    recorded_objectives = {(v.owner_id, v.objective): v.shapley for v in r.objective_values.all()}
    for name, result in valuation.objectives.items():
        unequal = [p.owner.name for p in participants
                   if recorded_objectives.get((p.owner_id, name)) != float(result.values[p.index])]
        report.check(f"values for objective {name}", not unequal,
                     f"differ for {', '.join(unequal)}" if unequal else "bit-identical")
    if valuation.table is not None and r.utilities_hash:
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "utilities.npy", valuation.table)
            digest = sha256_file(Path(tmp) / "utilities.npy")
        report.check("utility table", digest == r.utilities_hash, f"sha256 {digest[:12]} (recorded "
                     f"{r.utilities_hash[:12]})")
