import json

import pytest

from valuation.engine.data import Pair, pairs_to_dataset, read_jsonl, write_jsonl

PAIRS = [Pair("Question: a?\nAnswer:", " yes.", " no."), Pair("Q: é?", " ✓ ünïcode", " x")]


def test_jsonl_round_trip_keeps_text_exactly(tmp_path):
    path = write_jsonl(PAIRS, tmp_path / "sub" / "pairs.jsonl")
    assert read_jsonl(path) == PAIRS
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines][1] == {"prompt": "Q: é?", "chosen": " ✓ ünïcode", "rejected": " x"}


def test_read_jsonl_skips_blank_lines_and_names_bad_rows(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n\n{"prompt": "p", "chosen": 3, "rejected": "r"}\n')
    with pytest.raises(ValueError, match=r"line 3: field 'chosen'"):
        read_jsonl(path)
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1: invalid JSON"):
        read_jsonl(path)


def test_pairs_to_dataset_has_trl_columns():
    dataset = pairs_to_dataset(PAIRS)
    assert dataset.column_names == ["prompt", "chosen", "rejected"]
    assert dataset[1] == {"prompt": "Q: é?", "chosen": " ✓ ünïcode", "rejected": " x"}


def test_flipped_swaps_the_label():
    pair = PAIRS[0]
    assert pair.flipped() == Pair(pair.prompt, pair.rejected, pair.chosen)
    assert pair.flipped().flipped() == pair
