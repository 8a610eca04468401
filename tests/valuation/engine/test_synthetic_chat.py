import json
from itertools import combinations

import numpy as np
import pytest

from marketplace import neardup
from valuation.engine import synthetic_chat as sc


def _user(pair):
    return pair["prompt"][-1]["content"]


def _is_right(message):
    """A right answer always closes with the season's note; no wrong or vague answer has one."""
    return any(message[0]["content"].endswith(note) for note in sc.SEASON_NOTE.values())


def _shingles(pairs):
    return [neardup.PairShingles.of(json.dumps(p["prompt"]), json.dumps(p["chosen"]), "conversational")
            for p in pairs]


def test_same_arguments_give_the_same_pairs_and_other_seeds_other_prompts():
    assert sc.owner_pairs("noisy", 64, 3) == sc.owner_pairs("noisy", 64, 3)
    assert sc.eval_pairs(48, 1) == sc.eval_pairs(48, 1)
    assert not {_user(p) for p in sc.owner_pairs("clean", 64, 3)} & {_user(p) for p in sc.owner_pairs("clean", 64, 4)}


def test_pairs_are_trl_conversational_explicit_prompt_pairs():
    for pair in sc.owner_pairs("clean", 30, 0) + sc.eval_pairs(10):
        assert set(pair) == {"prompt", "chosen", "rejected"}
        assert [m["role"] for m in pair["prompt"]] == ["user"]
        assert [m["role"] for m in pair["chosen"]] == [m["role"] for m in pair["rejected"]] == ["assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for side in pair.values() for m in side)
        assert pair["chosen"] != pair["rejected"]


def test_answers_are_several_sentences_and_the_data_is_varied():
    pairs = sc.owner_pairs("clean", 100, 5)
    assert min(p["chosen"][0]["content"].count(". ") for p in pairs) >= 2
    assert len({p["chosen"][0]["content"] for p in pairs}) == 100
    assert len({_user(p) for p in pairs}) == 100
    assert len({p.name for p in sc.PLANTS if any(p.name in _user(q) for q in pairs)}) >= 20


@pytest.mark.parametrize("kind", sc.KINDS)
def test_each_kind_has_its_known_quality(kind):
    pairs, mask = sc.owner_pairs_with_flags(kind, 80, 2)
    right = np.array([_is_right(p["chosen"]) for p in pairs])
    assert (right == ~mask).all() and all(_is_right(p["rejected"]) == f for p, f in zip(pairs, mask))
    expected_flips = {"clean": 0, "low_effort": 0, "noisy": 24, "flipped": 80}[kind]
    assert mask.sum() == expected_flips
    vague = sum(p["rejected"][0]["content"] in sc.VAGUE for p in pairs)
    assert (vague == 80) if kind == "low_effort" else (0 < vague < 40 if kind != "flipped" else vague == 0)


def test_eval_prompts_never_equal_an_owner_prompt_in_any_block():
    owners = {_user(p) for seed in range(sc.OWNER_SEEDS) for p in sc.owner_pairs("clean", sc.BLOCK, seed)}
    evals = {_user(p) for seed in range(sc.EVAL_SEEDS) for p in sc.eval_pairs(sc.BLOCK, seed)}
    assert len(owners) == sc.OWNER_SEEDS * sc.BLOCK and len(evals) == sc.EVAL_SEEDS * sc.BLOCK
    assert not owners & evals


def test_the_upload_near_duplicate_check_passes_the_demo_files(tmp_path):
    """The marketplace's own rules (marketplace/neardup.py, thresholds from settings) find no near-copy
    between demo owners, within an owner, or of an eval prompt."""
    config = neardup.NearDupConfig.from_settings()
    written = sc.write_demo_files(tmp_path, seed=0)
    read = {name: [json.loads(line) for line in path.read_text().splitlines()]
            for name, path in written["owners"].items()}
    evaluation = [json.loads(line) for line in written["eval"].read_text().splitlines()]
    everyone = [s for pairs in read.values() for s in _shingles(pairs)]
    assert len(everyone) == sum(n for _, _, n in sc.DEMO_OWNERS)
    assert not [1 for a, b in combinations(everyone, 2) if neardup.same_pair(a, b, config)]
    eval_prompts = [s.prompt for s in _shingles(evaluation)]
    assert max(neardup.jaccard(a.prompt, e) for a in everyone for e in eval_prompts) < config.eval_prompt_threshold


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown kind"):
        sc.owner_pairs("great", 10, 0)
    with pytest.raises(ValueError, match="owner seed"):
        sc.owner_pairs("clean", 10, sc.OWNER_SEEDS)
    with pytest.raises(ValueError, match="n must be"):
        sc.eval_pairs(sc.BLOCK + 1)


def test_the_upload_parser_accepts_every_demo_file_whole(tmp_path):
    from marketplace.parsing import parse_upload

    written = sc.write_demo_files(tmp_path, seed=1)
    for path in [*written["owners"].values(), written["eval"]]:
        with open(path, "rb") as handle:
            result = parse_upload(handle, filename=path.name)
        assert result.errors == [] and len(result.pairs) == len(path.read_text().splitlines())
