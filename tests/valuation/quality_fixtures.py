"""A finished round whose data-quality report was written by the real stage writer from a real engine
assessment — on synthetic pair features instead of base-model embeddings, so no model is needed.

bob's planted pairs (every third) have their features negated, exactly what a reversed label does
to f(x, y_w) − f(x, y_l); the slow tests run the same stage on the tiny model end to end."""
from __future__ import annotations

import time

import numpy as np

from marketplace.models import PreferencePair
from valuation import services
from valuation.engine import synthetic
from valuation.engine.data_quality import assess_pairs, config_from_dict
from valuation.models import DataQualityReport, ValuationRound
from valuation.stages.data_quality import report_write
from tests.valuation.conftest import add_eval_set, add_owner

SMALL = {"chain_size": 20, "coverage": 3, "permutations": 5, "clusters": 5, "proxy_permutations": 30}


def make_assessed_round(model_dir, *, name="dq-round", seed=0):
    alice = add_owner("alice", synthetic.owner_pairs("clean_helpful", 30, 60))
    bob = add_owner("bob", synthetic.owner_pairs("clean_harmless", 30, 61))
    eval_set = add_eval_set("dq-eval", synthetic.eval_pairs(40, 3))
    r = services.round_create(name=name, pool="100.00", eval_set=eval_set, base_model_dir=str(model_dir),
                              data_quality=True, data_quality_options=SMALL, seed=seed)
    ValuationRound.objects.filter(pk=r.pk).update(status=ValuationRound.Status.DONE)
    rows, owners = [], []
    for p in r.participants.order_by("index"):
        mine = list(PreferencePair.objects.filter(contribution__in=p.contributions.all())
                    .order_by("contribution_id", "row_number"))
        rows += mine
        owners += [p.owner_id] * len(mine)
    rng = np.random.default_rng(seed)
    direction = np.array([1.5, 0, 0, 0, 0, 0])
    z = direction + rng.normal(scale=0.6, size=(len(rows), 6))
    planted = np.array([o == bob.pk and i % 3 == 0 for i, o in enumerate(owners)])
    z[planted] *= -1
    z_eval = direction + rng.normal(scale=0.6, size=(40, 6))
    report = DataQualityReport.objects.create(round=r, config=r.config["data_quality"])
    assessment = assess_pairs(z, z_eval, config_from_dict(report.config))
    report_write(report.pk, rows, np.asarray(owners), assessment, 0, {"values": 0.0}, time.perf_counter())
    r.refresh_from_db()
    return {"round": r, "alice": alice, "bob": bob, "rows": rows, "planted": planted,
            "planted_ids": {row.pk for row, f in zip(rows, planted) if f}}
