from dataclasses import dataclass

import pytest

from valuation.engine.data import Pair
from valuation.engine.hashing import config_hash, directory_hash, pairs_hash, sha256_bytes, sha256_file


@dataclass(frozen=True)
class _ConfigA:
    lr: float = 0.1
    steps: int = 10


@dataclass(frozen=True)
class _ConfigB:
    lr: float = 0.1
    steps: int = 10


def _write_tree(root, files):
    for relative, content in files:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


FILES = [("config.json", b"{}"), ("weights/a.bin", b"\x00\x01"), ("tokenizer.json", b"tok")]


def test_sha256_bytes_known_vector():
    assert sha256_bytes(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sha256_file_matches_bytes(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 3_000_000)  # larger than one read chunk
    assert sha256_file(path) == sha256_bytes(b"x" * 3_000_000)


def test_directory_hash_is_independent_of_creation_order_and_location(tmp_path):
    first = _write_tree(tmp_path / "one", FILES)
    second = _write_tree(tmp_path / "two", list(reversed(FILES)))
    assert directory_hash(first) == directory_hash(second)
    assert len(directory_hash(first)) == 64


@pytest.mark.parametrize(
    "files",
    [
        [("config.json", b"{ }"), ("weights/a.bin", b"\x00\x01"), ("tokenizer.json", b"tok")],  # content
        [("config.json", b"{}"), ("weights/b.bin", b"\x00\x01"), ("tokenizer.json", b"tok")],  # name
        FILES + [("extra.txt", b"")],  # an extra empty file
    ],
)
def test_directory_hash_changes_with_any_file(tmp_path, files):
    assert directory_hash(_write_tree(tmp_path / "a", FILES)) != directory_hash(_write_tree(tmp_path / "b", files))


def test_directory_hash_exclude_ignores_run_records(tmp_path):
    plain = _write_tree(tmp_path / "a", FILES)
    with_record = _write_tree(tmp_path / "b", FILES + [("metrics.json", b'{"seconds": 1.5}')])
    assert directory_hash(with_record) != directory_hash(plain)
    assert directory_hash(with_record, exclude=["metrics.json"]) == directory_hash(plain)


def test_directory_hash_rejects_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        directory_hash(tmp_path / "f")


def test_config_hash_is_canonical_and_sensitive():
    assert config_hash(_ConfigA()) == config_hash(_ConfigA(lr=0.1, steps=10))
    assert config_hash(_ConfigA()) != config_hash(_ConfigA(steps=11))
    assert config_hash(_ConfigA()) != config_hash(_ConfigB())  # same fields, different type


def test_config_hash_rejects_non_dataclasses():
    with pytest.raises(TypeError):
        config_hash({"lr": 0.1})
    with pytest.raises(TypeError):
        config_hash(_ConfigA)


def test_pairs_hash_is_order_sensitive_and_accepts_dicts():
    a, b = Pair("p1", "c1", "r1"), Pair("p2", "c2", "r2")
    assert pairs_hash([a, b]) == pairs_hash([a, b])
    assert pairs_hash([a, b]) != pairs_hash([b, a])
    assert pairs_hash([a]) != pairs_hash([a.flipped()])
    as_dicts = [{"prompt": "p1", "chosen": "c1", "rejected": "r1", "extra": 1}, {"prompt": "p2", "chosen": "c2", "rejected": "r2"}]
    assert pairs_hash(as_dicts) == pairs_hash([a, b])
