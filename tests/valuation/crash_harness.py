"""Kill a round's worker with SIGKILL and resume it, through the public entry points only.

A marketplace (three owners of known quality, an eval set) is imported once into a SQLite file with
`manage.py import_pairs` / `import_eval`. Each run copies that file, starts `manage.py run_round` with a
cold artifacts directory, kills it — at a random instant of a chosen stage, or at a fault-injection
point (valuation/faults.py) — runs the same command again, and compares with an uninterrupted run:
values equal as floats, payouts equal to the cent, at most one payout per owner, Σ payouts == pool.
Nothing here touches the runner's internals, only the command line and the database it writes.
Used by tests/valuation/test_crash_resume.py (3 runs in CI) and bench/reliability.py (≥ 20).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POOL = "100.00"
TRAINING = {"epochs": 1}  # the tiny model, one epoch: a round in seconds
OWNERS = (("clean", "clean_mix", 48, 31), ("noisy", "noisy", 48, 32), ("adversary", "adversarial", 48, 33))
STAGE_KINDS = ("training", "scoring")  # killed at a random instant while the round is in this stage
FAULT_KINDS = ("training:model-saved", "scoring:scored", "valuing:computed", "valuing:payouts-written")


@dataclass
class Setup:
    root: Path
    pristine: Path  # the imported marketplace, copied for every run
    base_model: Path
    reference: dict = field(default_factory=dict)  # run_round --json of the uninterrupted run


def env_for(db: Path, artifacts: Path, fault: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "VALUATION_FAULT")) and k not in ("DATABASE_URL", "ARTIFACTS_DIR")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=f"sqlite:///{db}",
               ARTIFACTS_DIR=str(artifacts), CACHE_URL=f"filecache://{artifacts}/cache", CELERY_BROKER_URL="memory://", PYTHONPATH=str(ROOT),
               VALUATION_TORCH_THREADS="1")  # one thread: same arithmetic in every run, and two runs fit 2 cores
    if fault:
        env["VALUATION_FAULT_POINT"] = fault
    return env


def manage(*args, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def prepare(root: Path, base_model: Path) -> Setup:
    """Import the marketplace into a SQLite file and run the uninterrupted reference round."""
    from valuation.engine import synthetic

    root.mkdir(parents=True, exist_ok=True)
    pristine = root / "pristine.sqlite3"
    env = env_for(pristine, root / "unused-artifacts")
    manage("migrate", "--noinput", env=env)
    for name, kind, n, seed in OWNERS:
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
                                for p in synthetic.owner_pairs(kind, n, seed)))
        manage("import_pairs", "--owner", name, str(path), env=env)
    manage("verify_owner", *(name for name, _, _, _ in OWNERS), env=env)  # only verified owners are players
    eval_path = root / "eval.jsonl"
    eval_path.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n"
                                 for p in synthetic.eval_pairs(48, 7)))
    manage("import_eval", "--name", "eval", str(eval_path), env=env)
    setup = Setup(root, pristine, base_model)
    db, artifacts = fresh_copy(setup, "reference")
    started = time.perf_counter()
    setup.reference = json.loads(manage(*round_args(setup), env=env_for(db, artifacts)).stdout)
    setup.reference["wall_seconds"] = time.perf_counter() - started
    setup.reference["db"] = str(db)
    return setup


def round_args(setup: Setup) -> list[str]:
    return ["run_round", "--name", "crash", "--pool", POOL, "--base-model", str(setup.base_model),
            "--eval-set", "eval", "--utility", "bt_loglik", "--seed", "0", "--json",
            "--training", json.dumps(TRAINING)]


def fresh_copy(setup: Setup, name: str) -> tuple[Path, Path]:
    work = setup.root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "db.sqlite3"
    shutil.copy(setup.pristine, db)
    return db, work / "artifacts"


def round_status(db: Path) -> str:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            row = conn.execute("SELECT status FROM valuation_valuationround WHERE name = 'crash'").fetchone()
    except sqlite3.OperationalError:
        return "unreadable"
    return row[0] if row else "not created"


def crash_run(setup: Setup, name: str, kind: str, rng) -> dict:
    """One run: start, kill (how depends on `kind`), resume, compare. Returns what happened."""
    db, artifacts = fresh_copy(setup, name)
    fault = kind if kind in FAULT_KINDS else None
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *round_args(setup)], cwd=ROOT,
                            env=env_for(db, artifacts, fault), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stage_at_kill = _kill(proc, db, kind, setup.reference, rng) if not fault else None
    proc.wait(timeout=900)
    killed = proc.returncode == -signal.SIGKILL
    stage_at_kill = stage_at_kill or round_status(db)
    resumed = manage(*round_args(setup), env=env_for(db, artifacts))
    return compare(setup.reference, json.loads(resumed.stdout), db) | {
        "run": name, "kind": kind, "killed": killed, "stage_at_kill": stage_at_kill}


def _kill(proc, db: Path, kind: str, reference: dict, rng) -> str | None:
    """SIGKILL at a random instant: of the whole round (`random`), or of one stage (its reference length)."""
    timings = reference["timings"]
    if kind == "random":
        time.sleep(rng.uniform(0, reference["wall_seconds"]))
    else:
        while round_status(db) not in (kind, "done") and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, timings.get(kind, 0.5)))
    if proc.poll() is not None:
        return None  # finished first: reported as not killed
    status = round_status(db)
    proc.send_signal(signal.SIGKILL)
    return status


def compare(reference: dict, resumed: dict, db: Path) -> dict:
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            "SELECT u.username, COUNT(*), SUM(p.kind = 'payout' AND NOT EXISTS ("
            "  SELECT 1 FROM valuation_payout r WHERE r.reverses_id = p.id)) "
            "FROM valuation_payout p JOIN marketplace_dataowner o ON o.id = p.owner_id "
            "JOIN auth_user u ON u.id = o.user_id GROUP BY u.username").fetchall()
    paid = sum((Decimal(a) for a in resumed["payouts"].values()), Decimal(0))
    return {
        "status": resumed["status"],
        "values_match": resumed["values"] == reference["values"],  # float ==, not approximately
        "payouts_match": resumed["payouts"] == reference["payouts"],
        "double_payouts": sum(1 for _, _, active in rows if active > 1),
        "ledger_rows": {name: n for name, n, _ in rows},
        "sum_equals_pool": paid == Decimal(POOL),
    }


def mismatch(result: dict) -> bool:
    return not (result["status"] == "done" and result["values_match"] and result["payouts_match"]
                and result["sum_equals_pool"])
