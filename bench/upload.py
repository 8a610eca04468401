"""Upload throughput: 50,000 preference pairs per file through the one upload path.

Each format (JSONL, CSV, Parquet) goes through `marketplace.services.contribution_create`,
the service the web form, the REST API and `import_pairs` all call: parse, validate,
anti-replication lookup, bulk insert. One more row posts the JSONL file to
POST /api/contributions/ (multipart parsing included), and one re-uploads a case-changed
copy of an owner's file, which anti-replication must refuse whole.

The database is a fresh migrated SQLite file in a temp dir (the embedded default), never
the project's own database. The issue's bar: 50,000 JSONL pairs accepted in under 20 s.

    .venv/bin/python bench/upload.py [--pairs 50000] [--repeats 3]

Prints a table and writes bench/results/upload.json.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import statistics
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "upload.json"
LIMIT_SECONDS = 20.0  # the acceptance bar for 50,000 JSONL pairs


def setup_django(workdir: Path) -> None:
    # Set explicitly (not setdefault): a DATABASE_URL in the environment must not be benchmarked into.
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    import django
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    django.setup()
    logging.getLogger("marketplace").setLevel(logging.WARNING)  # one INFO line per upload would bury the table
    setup_test_environment()  # lets the test client talk to the API ("testserver" host)
    call_command("migrate", verbosity=0)


# Rows that differ only in a number are near-copies of each other, which an upload refuses
# (marketplace/neardup.py), and so are two files that differ only in their tag: each row names four
# words, its number across the whole bench written in base len(WORDS).
WORDS = ("amber basin cedar delta ember fjord garnet harbor indigo juniper kestrel lagoon meadow nickel orchid "
         "pepper quartz raven saffron tundra umber violet willow yarrow zephyr anchor bramble copper dune "
         "falcon glacier hazel iris jasper kelp lantern marble nutmeg oyster pebble quill ridge spruce thistle "
         "upland vapor walnut xenon yonder zinnia acorn birch canyon dahlia egret fennel grove heron islet "
         "jade krill lichen").split()


def make_records(n: int, tag: str, start: int = 0) -> list[dict]:
    base = len(WORDS)
    words = [" ".join(WORDS[((start + i) // base ** k) % base] for k in range(4)) for i in range(n)]
    return [{"prompt": f"{tag} question {i} on {w}: which answer is more helpful?",
             "chosen": f"A careful, correct answer number {i}, about {w}.",
             "rejected": f"A sloppy answer number {i}, with an error."} for i, w in enumerate(words)]


def encode(records: list[dict], fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    if fmt == "csv":
        import csv
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["prompt", "chosen", "rejected"])
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue().encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), buf)
    return buf.getvalue()


def time_service(owner, data: bytes, filename: str) -> tuple[float, int]:
    from marketplace.services import contribution_create

    started = time.perf_counter()
    contribution = contribution_create(owner=owner, file=io.BytesIO(data), filename=filename)
    return time.perf_counter() - started, contribution.n_pairs


def time_api(owner, data: bytes) -> tuple[float, int]:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(owner.user)
    upload = SimpleUploadedFile("bench.jsonl", data, content_type="application/jsonl")
    started = time.perf_counter()
    response = client.post("/api/contributions/", {"file": upload}, format="multipart")
    seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise SystemExit(f"API upload failed: {response.status_code} {response.content[:300]!r}")
    return seconds, response.json()["n_pairs"]


def time_refused_copy(owner, data: bytes) -> tuple[float, int]:
    from marketplace.parsing import UploadRefused
    from marketplace.services import contribution_create

    started = time.perf_counter()
    try:
        contribution_create(owner=owner, file=io.BytesIO(data), filename="copy.jsonl")
    except UploadRefused as refused:
        return time.perf_counter() - started, refused.n_errors
    raise SystemExit("a copied file was accepted: anti-replication is broken")


def run(n_pairs: int, repeats: int) -> list[dict]:
    from marketplace.services import owner_get_or_create

    rows = []
    cases = ["jsonl", "csv", "parquet", "jsonl-api", "jsonl-copy-refused"]
    for c, case in enumerate(cases):
        timings, n_done, size = [], 0, 0
        for rep in range(repeats):
            owner, _ = owner_get_or_create(username=f"bench-{case}-{rep}")
            records = make_records(n_pairs, tag=f"{case}-{rep}", start=(c * repeats + rep) * n_pairs)
            fmt = case.split("-")[0]
            data = encode(records, fmt)
            size = len(data)
            if case == "jsonl-api":
                seconds, n_done = time_api(owner, data)
            elif case == "jsonl-copy-refused":
                time_service(owner, data, "original.jsonl")  # the original owner's file, untimed
                thief, _ = owner_get_or_create(username=f"bench-copier-{rep}")
                copied = encode([{k: v.upper() for k, v in r.items()} for r in records], "jsonl")
                seconds, n_done = time_refused_copy(thief, copied)
            else:
                seconds, n_done = time_service(owner, data, f"bench.{fmt}")
            timings.append(seconds)
        median = statistics.median(timings)
        rows.append({"case": case, "pairs": n_done, "bytes": size, "seconds_median": round(median, 3),
                     "seconds_min": round(min(timings), 3), "pairs_per_second": round(n_done / median),
                     "repeats": repeats})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'case':<20} {'pairs':>8} {'MB':>6} {'seconds':>8} {'pairs/s':>9}")
    for r in rows:
        print(f"{r['case']:<20} {r['pairs']:>8,} {r['bytes'] / 1e6:>6.1f} {r['seconds_median']:>8.2f} "
              f"{r['pairs_per_second']:>9,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3, help="median over this many fresh uploads per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        setup_django(Path(tmp))
        import django
        import pyarrow
        from django.conf import settings

        settings.UPLOAD_MAX_ROWS = max(settings.UPLOAD_MAX_ROWS, args.pairs)
        rows = run(args.pairs, args.repeats)
    print_table(rows)
    jsonl = next(r for r in rows if r["case"] == "jsonl")
    verdict = "PASS" if jsonl["seconds_median"] < LIMIT_SECONDS else "FAIL"
    print(f"\n{verdict}: {jsonl['pairs']:,} JSONL pairs in {jsonl['seconds_median']:.2f} s "
          f"(bar: < {LIMIT_SECONDS:.0f} s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "args": vars(args), "limit_seconds": LIMIT_SECONDS, "pass": verdict == "PASS", "results": rows,
        "environment": {"python": platform.python_version(), "django": django.get_version(),
                        "pyarrow": pyarrow.__version__, "sqlite": sqlite3.sqlite_version,
                        "machine": platform.machine(), "cpus": os.cpu_count(), "database": "SQLite file (temp)"},
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    if verdict == "FAIL":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
