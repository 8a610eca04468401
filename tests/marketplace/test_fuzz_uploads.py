"""Property-based fuzzing of `POST /api/contributions/` (hypothesis): over 1,000 hostile files per run.

Each file comes with its right answer from tests/marketplace/fuzz_cases.py (the oracle): clean files —
formulas, markup, bidi controls, emoji and all — are accepted and stored exactly; files with defects in
known rows are refused naming exactly those rows (and for a disguised copy, the row it copies); files
hostile as a whole (wrong type, zip bomb, broken encoding, truncated, oversized) are refused. Never a
5xx, and a refusal writes no pair and no accepted contribution (only the refusal record the owner sees).

FUZZ_SCALE=N multiplies the example counts (bench/reliability.py); FUZZ_REPORT=path writes the tallies.
CI runs with hypothesis' derandomize (same files every run); elsewhere each run draws new files.
"""
import itertools
import json
import os
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from marketplace.models import Contribution, PreferencePair
from tests.marketplace import fuzz_cases as cases

pytestmark = pytest.mark.django_db
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
TALLY = Counter()
LABELS = Counter()
_counter = itertools.count()


def fuzz_settings(n: int):
    return hsettings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=bool(os.environ.get("CI")),
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                            HealthCheck.data_too_large, HealthCheck.large_base_example],
                     database=None)


@pytest.fixture
def uploader(settings, owner_a, api_a):
    for key, value in cases.LIMITS.items():
        setattr(settings, key, value)
    return api_a, owner_a


def stored_state(owner) -> tuple[int, int, int]:
    return (PreferencePair.objects.count(),
            Contribution.objects.filter(status=Contribution.Status.ACCEPTED).count(),
            Contribution.objects.filter(owner=owner, status=Contribution.Status.REFUSED).count())


def submit(client, case: cases.Case):
    upload = SimpleUploadedFile(case.filename, case.data, content_type=case.content_type or None)
    return client.post("/api/contributions/", {"file": upload}, format="multipart")


def judge(case: cases.Case, response, before, after) -> list[str]:
    """Everything wrong with the response, by the oracle; also tallies what was seen."""
    TALLY["cases"] += 1
    TALLY[f"cases_{case.kind}"] += 1
    LABELS[case.label] += 1
    if response.status_code >= 500:
        TALLY["server_errors"] += 1
        return [f"{response.status_code} for {case.label}"]
    body = response.json()
    if case.kind == "valid":
        return _judge_valid(case, response, body, before, after)
    problems = []
    if response.status_code != 400 or not body.get("errors"):
        problems.append(f"expected a 400 with reasons for {case.label}, got {response.status_code} {body}")
    if after[:2] != before[:2]:
        TALLY["partial_writes"] += 1
        problems.append(f"a refused file wrote something: {before} -> {after}")
    if case.says and not problems and not any(case.says in e["message"] for e in body["errors"]):
        problems.append(f"the refusal of {case.label} does not say '{case.says}': {body['errors']}")
    if case.kind == "rows" and not problems:
        named = {e["row"] for e in body["errors"]}
        if named != case.bad_rows:
            problems.append(f"rows named {sorted(named, key=str)} != injected {sorted(case.bad_rows)} ({case.label})")
        for row, original in case.duplicates.items():
            if f"duplicate of row {original}" not in [e["message"] for e in body["errors"] if e["row"] == row]:
                problems.append(f"row {row} not reported as a duplicate of row {original}")
    if problems:
        TALLY["oracle_mismatches"] += 1
    return problems


def _judge_valid(case, response, body, before, after) -> list[str]:
    if response.status_code != 201:
        TALLY["oracle_mismatches"] += 1
        return [f"a valid file was refused ({case.label}): {body}"]
    stored = [(p.prompt, p.chosen, p.rejected, p.pair_format) for p in
              PreferencePair.objects.filter(contribution_id=body["id"]).order_by("row_number")]
    expected = [tuple(json.dumps(r[f], ensure_ascii=False, separators=(",", ":")) if isinstance(r[f], list)
                      else r[f] for f in cases.FIELDS) + ("conversational" if isinstance(r["prompt"], list) else "text",)
                for r in case.records]
    if stored != expected or after[0] - before[0] != len(expected):
        TALLY["oracle_mismatches"] += 1
        return [f"stored pairs differ from the file ({case.label})"]
    return []


def run_case(uploader, case):
    client, owner = uploader
    before = stored_state(owner)
    response = submit(client, case)
    problems = judge(case, response, before, stored_state(owner))
    assert not problems, problems


@fuzz_settings(300)
@given(data=st.data())
def test_clean_hostile_text_is_accepted_and_stored_exactly(uploader, data):
    run_case(uploader, data.draw(cases.valid_case(next(_counter))))


@fuzz_settings(500)
@given(data=st.data())
def test_defective_rows_are_refused_naming_exactly_those_rows(uploader, data):
    run_case(uploader, data.draw(cases.row_defect_case(next(_counter))))


@fuzz_settings(250)
@given(data=st.data())
def test_hostile_files_are_refused_whole(uploader, data):
    run_case(uploader, data.draw(cases.file_attack_case(next(_counter))))


def test_at_least_a_thousand_files_were_tried():
    """Runs last in this module: the three properties above tried ≥ 1,000 files, all three kinds."""
    if not TALLY:
        pytest.skip("run with the fuzz tests above")
    if os.environ.get("FUZZ_REPORT"):
        with open(os.environ["FUZZ_REPORT"], "w") as fh:
            json.dump({"tally": dict(TALLY), "labels": dict(LABELS)}, fh, indent=2)
    assert TALLY["cases"] >= 1000 * min(SCALE, 1) and all(TALLY[f"cases_{k}"] for k in ("valid", "rows", "file"))
    assert TALLY["server_errors"] == TALLY["partial_writes"] == TALLY["oracle_mismatches"] == 0
