"""Fixtures for round tests: eval sets and owners with uploaded data (the real tiny base model,
`tiny_base_model`, is built once per session in tests/conftest.py)."""
import pytest

from marketplace.services import contribution_create, eval_set_create
from tests.conftest import jsonl_bytes, register_model_dir, upload, verified_owner


def pairs_records(pairs) -> list[dict]:
    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]


def add_owner(username: str, pairs) -> object:
    owner = verified_owner(username)
    contribution_create(owner=owner, file=upload(f"{username}.jsonl", jsonl_bytes(pairs_records(pairs))),
                        filename=f"{username}.jsonl")
    return owner


def add_eval_set(name: str, pairs):
    return eval_set_create(name=name, file=upload("eval.jsonl", jsonl_bytes(pairs_records(pairs))),
                           filename="eval.jsonl")


@pytest.fixture
def fake_model_dir(tmp_path, tiny_tokenizer_dir, db):
    """Enough of a model directory for validation and the length check: a config and a tokenizer, no
    weights (real rounds use `tiny_base_model`). Registered as base model `fake` (as import_base_model
    would, minus the weights it checks for), so the web form and the API, which take registered models
    only, accept it by name or by this path."""
    import shutil

    path = tmp_path / "model"
    shutil.copytree(tiny_tokenizer_dir, path)
    (path / "config.json").write_text('{"model_type": "llama"}')
    register_model_dir("fake", path)
    return path


@pytest.fixture
def isolated_artifacts(settings, tmp_path):
    """A cold owner-model cache on disk for this test (the DB is rolled back per test anyway)."""
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    return settings.ARTIFACTS_DIR
