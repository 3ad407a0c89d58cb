"""The generated service for every answer combination: clean files, and its own gates pass.

The template is only as good as what it produces, so each combination runs the service's own
`make install`, `make lint` and `make test` (against CI's PostgreSQL through TEST_DATABASE_URL).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import TEMPLATE_ROOT, answers_of, output, python_for, run



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
