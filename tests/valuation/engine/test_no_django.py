"""The engine is framework-free: no module under valuation/engine may import django."""

import re
from pathlib import Path

import valuation.engine

ENGINE = Path(valuation.engine.__file__).parent
DJANGO_IMPORT = re.compile(r"^\s*(import\s+django\b|from\s+django\b)|\b__import__\(\s*['\"]django|import_module\(\s*['\"]django")


def test_engine_has_modules_to_check():
    assert (ENGINE / "hashing.py").is_file()
    assert len(list(ENGINE.glob("*.py"))) >= 7


def test_no_engine_module_imports_django():
    offenders = [
        f"{path.relative_to(ENGINE.parent.parent)}:{number}: {line.strip()}"
        for path in sorted(ENGINE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if DJANGO_IMPORT.search(line)
    ]
    assert offenders == []


def test_the_check_catches_django_imports():
    assert DJANGO_IMPORT.search("    from django.db import models")
    assert DJANGO_IMPORT.search("import django")
    assert not DJANGO_IMPORT.search("# not django-dependent")
