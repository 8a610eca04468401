"""The Docker image and the compose file, checked without a Docker engine (none runs here): hadolint
on the Dockerfile, shellcheck on the entry point, the compose file against the Compose
Specification (compose-spec), and the facts a deployment depends on."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def tool(name: str) -> str:
    found = Path(sys.executable).parent / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (requirements-dev.txt pins it)")
    return path


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # resolves the YAML merge keys


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = subprocess.run([tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_finds_nothing_in_the_entry_point():
    result = subprocess.run([tool("shellcheck"), "docker/entrypoint.sh"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_follows_the_compose_specification():
    compose_spec = pytest.importorskip("compose_spec", reason="compose-spec is not installed (requirements-dev.txt)")
    parsed = compose_spec.PyCompose.from_json(json.dumps(compose()))
    assert sorted(parsed.service_names()) == ["postgres", "redis", "web", "worker"]
    with pytest.raises(ValueError, match="depends_onn"):  # the validator does reject what Compose would
        compose_spec.PyCompose.from_json(json.dumps({"services": {"a": {"image": "x", "depends_onn": ["b"]}}}))


def test_web_and_workers_share_one_database_broker_and_artifact_store():
    services = compose()["services"]
    web, worker = services["web"], services["worker"]
    assert web["image"] == worker["image"] and web["command"] == ["web"] and worker["command"] == ["worker"]
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "ARTIFACTS_DIR", "VALUATION_DTYPE"):
        assert web["environment"][key] == worker["environment"][key], key
    assert web["environment"]["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in web["environment"][
        "DATABASE_URL"]
    assert worker["environment"]["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert web["volumes"] == worker["volumes"] == ["artifacts:/data"]
    assert worker["environment"]["ARTIFACTS_DIR"].startswith("/data/")
    for name in ("web", "worker"):  # the app waits for healthy services, not just started ones
        assert {d: services[name]["depends_on"][d]["condition"] for d in ("postgres", "redis")} == {
            "postgres": "service_healthy", "redis": "service_healthy"}
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    assert worker["stop_signal"] == "SIGQUIT"  # cold shutdown: an interrupted fine-tune resumes elsewhere


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck_and_the_pinned_cpu_torch():
    user = re.search(r"^USER (\S+)$", DOCKERFILE, re.M).group(1)
    assert user.split(":")[0].isdigit() and user.split(":")[0] != "0"
    assert re.search(r"^HEALTHCHECK .*docker/healthcheck\.py", DOCKERFILE, re.M)
    assert re.search(r'^ENTRYPOINT \["docker/entrypoint\.sh"\]', DOCKERFILE, re.M)
    # torch comes from the CPU index at the version requirements.txt pins (no second copy of the pin)
    assert "grep -E '^torch==' requirements.txt" in DOCKERFILE
    assert re.search(r"^torch==\d", (ROOT / "requirements.txt").read_text(), re.M)
    entry = (ROOT / "docker/entrypoint.sh").read_text()
    assert all(f"  {role})" in entry for role in ("web", "worker", "demo", "migrate"))


def test_the_build_context_leaves_local_state_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", ".env"} <= set(ignored)
