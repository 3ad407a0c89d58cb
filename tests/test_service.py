"""The generated service for every answer combination: clean files, and its own gates pass.

The template is only as good as what it produces, so each combination runs the service's own
`make install`, `make lint` and `make test` (against CI's PostgreSQL through TEST_DATABASE_URL).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATE_ROOT, answers_of, output, python_for, run
from template_repo import free_port


def jinja_residue_pattern() -> re.Pattern[str]:
    """Jinja left behind: a block tag, a comment, or an expression naming a template variable.

    Go templates are legitimate output (External Secrets builds Secrets with `{{ .password }}`
    and `{{ printf ... }}`), so a `{{` alone is not residue; one that names an answer, a derived
    value or copier's own context is.
    """
    names = [k for k in yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text()) if not k.startswith("_")]
    names += ["_copier_conf", "_copier_answers", "_copier_python", "_folder_name"]
    return re.compile(r"\{%|%\}|\{#[\s-]|[\s-]#\}|\{\{-?\s*(?:" + "|".join(map(re.escape, names)) + r")\b")


JINJA_RESIDUE = jinja_residue_pattern()


def text_files(root: Path) -> list[Path]:
    files = []
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts and ".venv" not in path.parts:
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            files.append(path)
    return files


def test_no_unrendered_jinja(service: Path) -> None:
    leftovers = []
    for path in text_files(service):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if JINJA_RESIDUE.search(line):
                leftovers.append(f"{path.relative_to(service)}:{number}: {line.strip()}")
    assert not leftovers, "Jinja residue:\n" + "\n".join(leftovers)


def test_no_template_file_names(service: Path) -> None:
    bad = [p for p in service.rglob("*") if p.name.endswith(".jinja") or "{{" in p.name or "{%" in p.name]
    assert not bad, f"template file names left in the service: {bad}"


def test_readme_starts_with_the_two_commands(service: Path) -> None:
    lines = [line for line in (service / "README.md").read_text().splitlines() if line.strip()]
    assert lines[0].startswith("# ")
    assert lines[1] == "```sh"
    assert lines[2].startswith("make install run")
    assert lines[3].startswith("make install test")


def test_readme_api_table_states_the_username_rule(service: Path) -> None:
    schema = (service / "app" / "schemas" / "user.py").read_text()
    rule = re.search(r'Username = .*min_length=(\d+), max_length=(\d+), pattern=r"\^\[A-Za-z0-9([^\]]*)\]', schema)
    assert rule, "app/schemas/user.py no longer declares Username as this test expects"
    low, high, extra = rule.groups()
    row = next(line for line in (service / "README.md").read_text().splitlines() if line.startswith("| `POST /users`"))
    assert f"{low} to {high} ASCII letters, digits" in row, row
    assert all(f"`{char}`" in row for char in extra), f"{row} does not list {extra}"


@pytest.fixture(scope="session")
def installed(service_venv, service: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Make variables that point the service's Makefile at the shared venv, after `make install`."""
    version = str(answers_of(service)["python_version"])
    variables = {"PYTHON": python_for(version), "VENV": str(service_venv(version))}
    proc = run(["make", "install", *(f"{k}={v}" for k, v in variables.items())], cwd=service, timeout=900)
    assert proc.returncode == 0, output(proc)
    return variables


def test_service_lint_passes(service: Path, installed: dict[str, str]) -> None:
    proc = run(["make", "lint", *(f"{k}={v}" for k, v in installed.items())], cwd=service)
    assert proc.returncode == 0, output(proc)


def test_service_tests_pass_on_postgresql(service: Path, installed: dict[str, str], test_database_url: str) -> None:
    proc = run(
        ["make", "test", *(f"{k}={v}" for k, v in installed.items())],
        cwd=service,
        env={"TEST_DATABASE_URL": test_database_url, "CI": "true"},
    )
    assert proc.returncode == 0, output(proc)
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary, summary


# --- `make run`: what a person sees in the first minutes --------------------------------------


def call(method: str, url: str, body: dict[str, str] | None = None, token: str = "") -> dict[str, object]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        answer: dict[str, object] = json.loads(response.read())
    return answer


def wait_for(predicate: Callable[[], bool], seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds} s; output:\n{log.read_text()[-4000:]}")


def answers_health(url: str) -> bool:
    try:
        return call("GET", f"{url}/health") == {"status": "ok"}
    except OSError:
        return False


@pytest.mark.parametrize("service", ["defaults"], indirect=True)
@pytest.mark.parametrize("secret_key", ["default", "short"])
def test_make_run_prints_only_json_lines(
    service: Path, installed: dict[str, str], tmp_path: Path, secret_key: str
) -> None:
    """Migrations, uvicorn's reloader and server, the app, a reload and warnings: one JSON object a line."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}", "LOG_LEVEL": "INFO"}
    env.pop("SECRET_KEY", None)
    if secret_key == "short":
        # Allowed locally; PyJWT warns on every token it signs with it. The warning must be a log line.
        env["SECRET_KEY"] = "short-local-key"
    log = tmp_path / "make-run.log"
    make = ["make", "run", f"PORT={port}", *(f"{k}={v}" for k, v in installed.items())]
    with log.open("w") as sink:
        server = subprocess.Popen(make, cwd=service, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    probe = service / "app" / "reload_probe.py"
    try:
        wait_for(lambda: answers_health(url), 60, "no answer on /health", log)
        call("POST", f"{url}/users", {"username": "first-hour", "password": "a long enough password"})
        token = str(call("POST", f"{url}/auth/token", {"username": "first-hour", "password": "a long enough password"})["access_token"])
        assert call("GET", f"{url}/users/me", token=token)["username"] == "first-hour"
        probe.write_text('"""Written by the template tests to make the reloader reload."""\n')
        wait_for(lambda: "Reloading" in log.read_text(), 30, "no reload after a change", log)
        wait_for(lambda: answers_health(url), 60, "no answer on /health after the reload", log)
    finally:
        probe.unlink(missing_ok=True)
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    lines = log.read_text().splitlines()
    not_json = []
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            not_json.append(f"{number}: {line}")
        else:
            records.append(record)
    assert not not_json, "lines that are not one JSON object:\n" + "\n".join(not_json)
    loggers = {str(record["logger"]) for record in records}
    assert {"alembic.runtime.migration", "uvicorn.error", "app.access"} <= loggers, loggers
    messages = [str(record["message"]) for record in records]
    # OPS-1 in development too: the reloader watches with OS file events (watchfiles), not polling.
    assert any("Started reloader process" in m and "WatchFiles" in m for m in messages), messages
    warnings = [record for record in records if record["logger"] == "py.warnings"]
    if secret_key == "default":
        assert not warnings, f"the local default key makes PyJWT warn: {warnings}"
    else:
        assert any("InsecureKeyLengthWarning" in str(w["message"]) for w in warnings), messages
