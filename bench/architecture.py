"""The shape of the code: modules, lines per module, function-level imports, import cycles (issue 21).

Reads the project's own packages (config, marketplace, valuation; migrations left out) with `ast`, nothing
imported, and prints the counts the redesign is judged by, before and after:

* modules and lines (per package, the largest modules, how many exceed 300 lines);
* function-level imports, split into heavy libraries deferred on purpose (torch and the like) and imports
  of the project's own modules, which mostly exist to dodge a cycle;
* import cycles: strongly connected components of the module graph, counting every import wherever it
  sits (a function-level import is still a dependency), and the same for module-level imports alone;
* private names (`_name`) imported from another module, and imports from `marketplace` into `valuation`'s
  direction and back.

    .venv/bin/python bench/architecture.py [--out bench/results/architecture.json] [--label before]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "marketplace", "valuation")
HEAVY = {"torch", "transformers", "trl", "peft", "datasets", "accelerate", "safetensors", "gguf", "numpy", "scipy",
         "sklearn", "plotly", "pyarrow", "datasketch", "celery", "psycopg", "redis", "sqlalchemy", "selenium"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="", help="a name for this snapshot in the JSON (e.g. before, after)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "architecture.json")
    return parser.parse_args()


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, modules: dict[str, Path]):
    """(target, nested, names) per import: target the project module or the top-level library name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nested_ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested_ids.update(id(inner) for inner in ast.walk(node) if inner is not node)
    for node in ast.walk(tree):
        nested = id(node) in nested_ids
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _resolve(alias.name, modules), nested, []
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, path, node)
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                target = candidate if candidate in modules else _resolve(source, modules)
                yield target, nested, [alias.name]


def _resolve(name: str, modules: dict[str, Path]) -> str:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return parts[0]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module (or a self-import)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return sorted(out, key=lambda c: (-len(c), c))


def measure() -> dict:
    modules = project_modules()
    lines = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules.items()}
    every, top_level = {m: set() for m in modules}, {m: set() for m in modules}
    nested_project, nested_heavy, nested_other = Counter(), Counter(), Counter()
    private, upward = [], []
    for module, path in modules.items():
        for target, nested, names in imports_of(module, path, modules):
            internal = target in modules
            if internal and target != module:
                every[module].add(target)
                if not nested:
                    top_level[module].add(target)
            if nested:
                (nested_project if internal else nested_heavy if target in HEAVY else nested_other)[module] += 1
            if internal and target != module and any(n.startswith("_") and not n.startswith("__") for n in names):
                private.append(f"{module} <- {target}.{','.join(names)}")
            if module.startswith("marketplace") and target.startswith("valuation"):
                upward.append(f"{module} -> {target}")
    by_package = {}
    for package in PACKAGES:
        sizes = [n for m, n in lines.items() if m == package or m.startswith(package + ".")]
        by_package[package] = {"modules": len(sizes), "lines": sum(sizes)}
    engine = [n for m, n in lines.items() if m.startswith("valuation.engine.")]
    return {
        "modules": len(modules), "lines": sum(lines.values()),
        "mean_lines_per_module": round(sum(lines.values()) / len(modules), 1),
        "modules_over_300_lines": sorted((m for m, n in lines.items() if n > 300), key=lambda m: -lines[m]),
        "largest": sorted(lines.items(), key=lambda kv: -kv[1])[:10],
        "by_package": by_package, "engine_modules": len(engine),
        "function_level_imports": {"project": sum(nested_project.values()), "heavy_library": sum(nested_heavy.values()),
                                   "other": sum(nested_other.values())},
        "cycles_all_imports": strongly_connected(every),
        "cycles_module_level": strongly_connected(top_level),
        "private_imports": sorted(private), "marketplace_to_valuation": sorted(upward),
    }


def main() -> int:
    args = parse_args()
    report = measure()
    f = report["function_level_imports"]
    print(f"modules {report['modules']}, lines {report['lines']}, mean {report['mean_lines_per_module']} per module; "
          f"{len(report['modules_over_300_lines'])} over 300 lines; engine modules {report['engine_modules']}")
    for package, row in report["by_package"].items():
        print(f"  {package:<12} {row['modules']:>4} modules {row['lines']:>7} lines")
    print("largest: " + ", ".join(f"{m} {n}" for m, n in report["largest"]))
    print(f"function-level imports: {f['project']} of project modules, {f['heavy_library']} of heavy libraries, "
          f"{f['other']} other")
    for kind in ("cycles_all_imports", "cycles_module_level"):
        cycles = report[kind]
        print(f"{kind.replace('_', ' ')}: {len(cycles)} component(s), {sum(len(c) for c in cycles)} modules")
        for component in cycles:
            print("  " + " <-> ".join(component))
    print(f"private names imported across modules: {len(report['private_imports'])}")
    for line in report["private_imports"]:
        print("  " + line)
    print(f"marketplace -> valuation imports: {len(report['marketplace_to_valuation'])}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"label": args.label, **report}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
