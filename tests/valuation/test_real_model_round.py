"""A whole round on the real SmolLM2-135M-Instruct: registered from its converted directory, two owners of
conversational houseplant pairs, the `lora` preset, trained and scored through the chat template.

Slow (about a minute on 2 cores): the point is that the real-model path works end to end in CI, not the
size of the effect, so the owners are small; docs/real-models.md has the measured round at demo size.
"""
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from marketplace.services import contribution_create, eval_set_create
from valuation import services
from valuation.base_models import base_model_import
from valuation.engine import synthetic_chat
from valuation.models import ValuationRound
from tests.conftest import jsonl_bytes, verified_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def upload_owner(username: str, pairs: list[dict]):
    owner = verified_owner(username)
    contribution_create(owner=owner, file=io.BytesIO(jsonl_bytes(pairs)), filename=f"{username}.jsonl")


def test_a_lora_round_on_smollm2_through_its_chat_template(smollm2_dir, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    base = base_model_import(name="smollm2", hf_dir=smollm2_dir).base_model
    assert base.has_chat_template and base.n_parameters == 134_515_008
    upload_owner("ivy", synthetic_chat.owner_pairs("clean", 16, seed=0))
    upload_owner("rowan", synthetic_chat.owner_pairs("flipped", 16, seed=1))
    eval_set = eval_set_create(name="eval", file=io.BytesIO(jsonl_bytes(synthetic_chat.eval_pairs(16))),
                               filename="eval.jsonl")

    created = services.round_create(name="real", pool="100.00", eval_set=eval_set, base_model=base, preset="lora",
                                    training={"epochs": 2})
    r = services.round_execute(round_id=created.pk)

    assert r.status == ValuationRound.Status.DONE, r.error
    assert r.config["preset"] == {"name": "lora", "requested": "lora"} and r.config["chat_template"] is True
    assert r.config["training"]["use_lora"] is True and r.config["training"]["lora_r"] == 8
    participants = {p.owner.name: p for p in r.participants.select_related("owner", "owner_model")}
    for participant in participants.values():
        assert participant.prompt_format == "chat template"
        model = participant.owner_model
        assert json.loads((Path(model.artifact_path) / "owner_model.json").read_text())["artifact"] == "peft_adapter"
        assert len(model.metrics["log"]["steps"]) == 4  # 16 pairs / batch 8 x 2 epochs, every step logged
        assert model.metrics["tokens"] > 0
    values = {v.owner.name: v.shapley for v in r.values.select_related("owner")}
    assert values["ivy"] > values["rowan"], values  # the flipped owner's adapter prefers the wrong answers
    paid = {p.owner.name: p.amount for p in r.payouts.select_related("owner")}
    assert sum(paid.values()) == Decimal("100.00") and paid["ivy"] > paid["rowan"]
