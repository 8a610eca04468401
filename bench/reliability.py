"""Reliability under bad input, other owners, crashes and load — one table.

  fuzz         hostile upload files through POST /api/contributions/ (tests/marketplace/test_fuzz_uploads.py
               at FUZZ_SCALE): cases tried, 5xx seen, partial writes seen, oracle mismatches
  isolation    every URL pattern × role × method (tests/config/test_isolation_matrix.py): requests, leaks
  crash        `manage.py run_round` SIGKILLed and resumed (tests/valuation/crash_harness.py): runs, kills
               by stage, mismatches with the uninterrupted round, double payouts, Σ payouts != pool
  concurrency  50 uploaders × 20 files over HTTP against gunicorn, SQLite WAL and PostgreSQL
               (tests/load_harness.py): uploads, 5xx, lost rows, duplicated rows, approvals at once

    .venv/bin/python bench/reliability.py [--fuzz-scale 5] [--crash-runs 25] [--postgres URL] [--port 8210]
                                          [--only fuzz,isolation,crash,concurrency]

Writes bench/results/reliability.json. Timings are wall-clock and load-sensitive; every count is not.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "reliability.json"
CRASH_KINDS = ("random", "training", "scoring", "training:model-saved", "scoring:scored", "valuing:computed",
               "valuing:payouts-written")


def pytest_report(test: str, env_var: str, extra_env: dict, work: Path) -> tuple[dict, float, int]:
    report = work / f"{env_var.lower()}.json"
    report.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CI")} | extra_env | {env_var: str(report)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    data = json.loads(report.read_text()) if report.exists() else {}
    return data, time.perf_counter() - started, result.returncode


def bench_fuzz(scale: float, work: Path) -> dict:
    data, seconds, rc = pytest_report("tests/marketplace/test_fuzz_uploads.py", "FUZZ_REPORT",
                                      {"FUZZ_SCALE": str(scale)}, work)
    tally = data.get("tally", {})
    return {"cases": tally.get("cases", 0), "server_errors": tally.get("server_errors", 0),
            "partial_writes": tally.get("partial_writes", 0), "oracle_mismatches": tally.get("oracle_mismatches", 0),
            "by_kind": {k: tally.get(f"cases_{k}", 0) for k in ("valid", "rows", "file")},
            "attacks": len(data.get("labels", {})), "passed": rc == 0, "seconds": round(seconds, 1)}


def bench_isolation(work: Path) -> dict:
    data, seconds, rc = pytest_report("tests/config/test_isolation_matrix.py", "ISOLATION_REPORT", {}, work)
    total = lambda key: sum(role.get(key, 0) for role in data.values())  # noqa: E731
    return {"requests": total("requests"), "patterns": max((r["patterns"] for r in data.values()), default=0),
            "leaks": total("leak"), "id_leaks": total("id_leak"), "server_errors": total("server_error"),
            "access_mismatches": total("access"), "foreign_writes": total("write"), "per_role": data,
            "passed": rc == 0, "seconds": round(seconds, 1)}


def base_model(work: Path) -> Path:
    model = ROOT / "var" / "reliability" / "base_model"
    if not (model / "config.json").is_file():
        from valuation.engine import synthetic

        corpus = work / "corpus.txt"
        corpus.write_text(synthetic.corpus_text(0), encoding="utf-8")
        subprocess.run([sys.executable, "manage.py", "build_base_model", "--corpus", str(corpus), "--out",
                        str(model), "--seed", "0"], cwd=ROOT, check=True)
    return model


def bench_crash(runs: int, work: Path, seed: int) -> dict:
    from tests.valuation import crash_harness

    started = time.perf_counter()
    setup = crash_harness.prepare(work / "crash", base_model(work))
    rng = random.Random(seed)
    results = []
    for n in range(runs):
        kind = CRASH_KINDS[n % len(CRASH_KINDS)]
        result = crash_harness.crash_run(setup, f"run-{n:02d}", kind, rng)
        results.append(result)
        print(f"  crash run {n:2d} {kind:<24} killed={result['killed']!s:<5} at {result['stage_at_kill']:<10} "
              f"match={not crash_harness.mismatch(result)} double={result['double_payouts']}", flush=True)
    stages: dict[str, int] = {}
    for r in results:
        if r["killed"]:
            stages[r["stage_at_kill"]] = stages.get(r["stage_at_kill"], 0) + 1
    return {"runs": len(results), "killed": sum(r["killed"] for r in results), "killed_by_stage": stages,
            "mismatches": sum(crash_harness.mismatch(r) for r in results),
            "double_payouts": sum(r["double_payouts"] for r in results),
            "sum_not_pool": sum(not r["sum_equals_pool"] for r in results),
            "reference": {"values": setup.reference["values"], "payouts": setup.reference["payouts"],
                          "seconds": round(setup.reference["wall_seconds"], 1)},
            "runs_detail": results, "seconds": round(time.perf_counter() - started, 1)}


def bench_concurrency(postgres: str | None, port: int, work: Path) -> dict:
    from tests import load_harness

    out = {}
    backends = [("sqlite", f"sqlite:///{work / 'load-sqlite' / 'db.sqlite3'}")]
    if postgres:
        backends.append(("postgresql", load_harness.fresh_postgres(postgres)))
    for offset, (name, url) in enumerate(backends):
        outcome = load_harness.run(url, port + offset, work / f"load-{name}")
        out[name] = load_harness.summary(outcome)
        print(f"  {name}: {out[name]['statuses']} in {out[name]['seconds']} s; problems: {len(outcome.problems)}",
              flush=True)
    return out


def table(results: dict) -> str:
    lines = [f"{'check':<12} {'measure':<56} {'value':>9}"]
    add = lambda check, measure, value: lines.append(f"{check:<12} {measure:<56} {value!s:>9}".rstrip())  # noqa: E731
    if "fuzz" in results:
        f = results["fuzz"]
        add("fuzz", "hostile files tried through POST /api/contributions/", f"{f['cases']}")
        add("", f"  of which valid {f['by_kind']['valid']}, bad rows {f['by_kind']['rows']}, "
                f"bad files {f['by_kind']['file']}", "")
        add("", "5xx seen", f["server_errors"])
        add("", "partial writes seen", f["partial_writes"])
        add("", "oracle mismatches", f["oracle_mismatches"])
    if "isolation" in results:
        i = results["isolation"]
        add("isolation", f"requests tried ({i['patterns']} URL patterns × 4 roles × methods)", i["requests"])
        add("", "leaks of another owner's data", i["leaks"])
        add("", "foreign ids answering unlike missing ones", i["id_leaks"])
        add("", "5xx / writes to others' data", f"{i['server_errors']} / {i['foreign_writes']}")
    if "crash" in results:
        c = results["crash"]
        add("crash", "runs (SIGKILL, then resume)", c["runs"])
        add("", "killed, by the round's stage at the kill", c["killed"])
        add("", "  " + ", ".join(f"{k} {v}" for k, v in sorted(c["killed_by_stage"].items())), "")
        add("", "mismatches with the uninterrupted round", c["mismatches"])
        add("", "double payouts", c["double_payouts"])
        add("", "rounds with Σ payouts != pool", c["sum_not_pool"])
    for name, s in results.get("concurrency", {}).items():
        add("concurrency", f"{name}: uploads (50 × 20, at once)", s["uploads"])
        add("", f"{name}: 5xx / lost rows / duplicated rows",
            f"{s['server_errors']} / {s['lost_rows']} / {s['duplicate_pairs']}")
        add("", f"{name}: contested pairs accepted exactly once", f"{s['contested_accepted_once']}/50")
        approvals = {int(k): v for k, v in s["approvals"].items()}  # int keys, or str after a JSON round trip
        add("", f"{name}: 8 approvals at once → approved (others 400)", f"{approvals.get(200, 0)}×")
        add("", f"{name}: uploads per second (load-sensitive)", s["uploads_per_second"])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fuzz-scale", type=float, default=5.0, help="× the CI run's 1,050 files")
    parser.add_argument("--crash-runs", type=int, default=28)
    parser.add_argument("--postgres", default=os.environ.get("POSTGRES_URL"),
                        help="PostgreSQL URL; the load test uses a new database <name>_load beside it")
    parser.add_argument("--port", type=int, default=8210)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="fuzz,isolation,crash,concurrency")
    parser.add_argument("--show", action="store_true", help="print the table of the last results and exit")
    args = parser.parse_args()
    if args.show:
        print(table(json.loads(RESULTS.read_text())))
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    wanted = args.only.split(",")
    results = {}
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        work = Path(tmp)
        if "fuzz" in wanted:
            results["fuzz"] = bench_fuzz(args.fuzz_scale, work)
        if "isolation" in wanted:
            results["isolation"] = bench_isolation(work)
        if "crash" in wanted:
            results["crash"] = bench_crash(args.crash_runs, work, args.seed)
        if "concurrency" in wanted:
            results["concurrency"] = bench_concurrency(args.postgres, args.port, work)
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps(previous | results, indent=2, default=str))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
