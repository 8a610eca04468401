"""Rounds record the training preset they were made from: service, CLI, API and the new-round form."""
import shutil
from dataclasses import asdict

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from valuation import services
from valuation.engine import presets, synthetic
from valuation.engine.dpo import TrainingConfig
from valuation.models import ValuationRound
from tests.conftest import register_model_dir
from tests.valuation.conftest import add_eval_set, add_owner
from tests.valuation.engine.test_presets import weights_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def market():
    add_owner("alice", synthetic.owner_pairs("clean_helpful", 8, 1))
    return add_eval_set("eval", synthetic.eval_pairs(6, 0))


@pytest.fixture
def large_model_dir(fake_model_dir, tmp_path):
    """A copy of the registered `fake` directory with weights of the LoRA threshold's size, registered as
    `large` (adding weights to `fake` itself would change a registered model under its name)."""
    large = weights_of(shutil.copytree(fake_model_dir, tmp_path / "large"), presets.LORA_MIN_PARAMETERS)
    register_model_dir("large", large, n_parameters=presets.LORA_MIN_PARAMETERS)
    return large


def create(eval_set, model_dir, **kwargs):
    return services.round_create(name="r", pool="10.00", eval_set=eval_set, base_model_dir=str(model_dir), **kwargs)


def as_json(cfg: TrainingConfig) -> dict:
    return {**asdict(cfg), "loss_types": list(cfg.loss_types), "loss_weights": list(cfg.loss_weights)}


def test_a_round_without_preset_has_exactly_todays_config(market, fake_model_dir):
    r = create(market, fake_model_dir, seed=3)
    r.refresh_from_db()
    assert r.config["training"] == as_json(TrainingConfig(seed=3))
    assert "preset" not in r.config  # the training config of rounds from before presets, key for key


def test_a_round_without_preset_on_a_large_model_gets_autos_lora(market, large_model_dir):
    """Leaving the option out must not train a real model with the tiny model's settings (lr 1e-3, full
    fine-tune, max_length 128): the default is `auto`, and the round says so."""
    r = create(market, large_model_dir, training={"epochs": 2})
    r.refresh_from_db()
    assert r.config["preset"] == {"name": "lora", "requested": None}
    assert r.config["training"] == as_json(TrainingConfig(**{**asdict(presets.preset_config("lora")), "epochs": 2}))


def test_a_base_model_with_unreadable_weights_is_refused_not_trained_as_tiny(market, fake_model_dir, tmp_path):
    broken = shutil.copytree(fake_model_dir, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(ValidationError, match="is not a safetensors file"):
        create(market, broken)
    (broken / "model.safetensors").write_bytes(b"abc")
    with pytest.raises(ValidationError, match="shorter than its 8-byte header length"):
        create(market, broken)
    assert ValuationRound.objects.count() == 0


def test_auto_on_a_large_model_records_lora_with_overrides(market, large_model_dir):
    r = create(market, large_model_dir, preset="auto", training={"epochs": 2}, beta=0.3)
    r.refresh_from_db()
    lora = presets.preset_config("lora")
    assert r.config["preset"] == {"name": "lora", "requested": "auto"}
    assert r.config["training"] == as_json(TrainingConfig(**{**asdict(lora), "epochs": 2, "beta": 0.3}))
    assert r.config["eval_lengths"]["max_length"] == presets.LORA_MAX_LENGTH  # the length check used the preset


def test_unknown_preset_is_refused_and_nothing_is_written(market, fake_model_dir):
    with pytest.raises(ValidationError, match="unknown training preset 'huge'; choose one of: tiny, lora, auto"):
        create(market, fake_model_dir, preset="huge")
    with pytest.raises(ValidationError, match="holds no safetensors weights"):
        create(market, fake_model_dir, preset="auto")  # auto cannot count a model without weights
    with pytest.raises(ValidationError, match="training option 'lora_r'"):
        create(market, fake_model_dir, preset="lora", training={"lora_r": 0})
    assert ValuationRound.objects.count() == 0


@pytest.mark.parametrize("extra, says", [
    (["--preset", "huge"], "invalid choice: 'huge'"),
    (["--preset", "auto"], "holds no safetensors weights"),  # the preset reached round_create: auto counted weights
    (["--preset", "lora", "--training", '{"lora_r": 0}'], "training option 'lora_r': must be between 1"),
])
def test_cli_preset_is_passed_to_round_creation(market, fake_model_dir, extra, says):
    with pytest.raises(CommandError, match=says):
        call_command("run_round", "--name", "cli", "--base-model", str(fake_model_dir), "--eval-set", "eval",
                     "--pool", "1.00", *extra)
    assert ValuationRound.objects.count() == 0


def test_api_preset(api_staff, market, large_model_dir):
    body = {"name": "api", "pool": "1.00", "eval_set": "eval", "base_model": "large"}
    bad = api_staff.post("/api/rounds/", {**body, "preset": "huge"}, format="json")
    assert bad.status_code == 400 and "unknown training preset 'huge'" in str(bad.json())
    ok = api_staff.post("/api/rounds/", {**body, "preset": "auto", "training": {"lora_r": 4}}, format="json")
    assert ok.status_code == 201, ok.json()
    r = ValuationRound.objects.get(pk=ok.json()["id"])
    assert r.config["preset"]["name"] == "lora" and r.config["training"]["lora_r"] == 4


def form_data(model_dir, **extra):
    return {"name": "web", "pool": "1.00", "eval_set": "eval", "base_model": model_dir.name, "currency": "USD",
            "utility": "preference_accuracy", "composition": "sum", "estimator": "auto", "seed": 0, **extra}


def test_form_shows_presets_and_the_effective_config(client, staff_user, market, large_model_dir):
    client.force_login(staff_user)
    page = client.get("/rounds/new/")
    assert page.status_code == 200 and b'id="preset-table"' in page.content
    assert b'<option value="auto" selected>' in page.content
    bad = client.post("/rounds/new/", form_data(large_model_dir, preset="auto", training='{"lora_r": 0}'))
    assert bad.status_code == 400 and b"training option &#x27;lora_r&#x27;" in bad.content
    other = client.post("/rounds/new/", form_data(large_model_dir, pool="-1", preset="auto", training='{"lora_r": 4}'))
    assert other.status_code == 400
    assert b"&#x27;auto&#x27; is &#x27;lora&#x27; for this base model with lora_r overridden" in other.content
    assert b"<td><strong>4</strong></td>" in other.content  # the effective column holds the override
    notjson = client.post("/rounds/new/", form_data(large_model_dir, training="[1]"))
    assert notjson.status_code == 400 and b"must be a JSON object" in notjson.content
    ok = client.post("/rounds/new/", form_data(large_model_dir, preset="auto", training='{"epochs": 2}'))
    assert ok.status_code == 302
    r = ValuationRound.objects.get(name="web")
    assert r.config["preset"] == {"name": "lora", "requested": "auto"} and r.config["training"]["epochs"] == 2


def test_the_round_page_shows_the_preset_and_its_config(client, staff_user, market, large_model_dir):
    r = create(market, large_model_dir, preset="auto")
    client.force_login(staff_user)
    html = client.get(f"/rounds/{r.pk}/").content.decode()
    assert ("preset lora (chosen by auto): LoRA r 8, α 16, lr 0.0005, 1 epoch, batch 8, max_length 256, "
            "loss sigmoid") in html
    old = services.round_create(name="old", pool="1.00", eval_set=market, base_model_dir=str(large_model_dir))
    old.config.pop("preset")  # as a round created before presets: the tiny config, no preset recorded
    old.config["training"] = as_json(TrainingConfig())
    old.save()
    assert "preset tiny: full fine-tune, lr 0.001, 4 epochs" in client.get(f"/rounds/{old.pk}/").content.decode()
