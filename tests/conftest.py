"""Shared harness: generate services from this template and find the tools that prove them.

Every test module that looks at a generated service uses the session-scoped
``service`` fixture (one rendering per answer combination per run), so a
combination's files are generated once however many modules read them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import copier
import pytest

# Re-exported for the test modules, which import them from here.
from template_repo import TEMPLATE_ROOT, commit_all, find_python, git, pyenv_selection, release, snapshot_template  # noqa: F401

TOOLS_DIR = TEMPLATE_ROOT / ".tools"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# pyenv machines expose python3.12/3.13 through shims that answer only for selected versions.
os.environ.update(pyenv_selection())

# The copier of this venv, whatever PATH holds.
COPIER = [sys.executable, "-m", "copier"]

# Tests commit generated services and template releases; a CI machine has no git identity.
for _key, _value in {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}.items():
    os.environ.setdefault(_key, _value)

# The answers every copy needs: the ones without a default.
REQUIRED = {
    "project_name": "Orders API",
    "ecr_account_id": "123456789012",
    "gitlab_project_path": "shop/orders-api",
}

# Answer combinations the harness proves. Names appear in test ids.
COMBINATIONS: dict[str, dict[str, object]] = {
    "defaults": dict(REQUIRED),
    "accents": {
        **REQUIRED,
        "project_name": "Été à Paris — Réservations",
        "gitlab_project_path": "voyages/reservations",
    },
    "us-east-1": {
        **REQUIRED,
        "project_name": "Billing",
        "aws_region": "us-east-1",
        "python_version": "3.13",
        "replicas_min": 2,
        "replicas_max": 8,
        "eks_node_instance_type": "m6i.large",
        "eks_node_count": 3,
        "use_ecr_pull_secret": True,
        "ci_runner_cidrs": "203.0.113.0/24, 198.51.100.7/32",
    },
    "leading-zero": {
        **REQUIRED,
        "project_name": "A service whose name is long enough to need truncating everywhere",
        "ecr_account_id": "012345670123",
        "k8s_namespace": "payments",
        "base_domain": "internal.example.org",
    },
}


def generate(dst: Path, answers: dict[str, object], src: Path = TEMPLATE_ROOT, **kwargs: object) -> Path:
    """Render the template into ``dst`` the way a user's ``copier copy --trust --defaults`` would."""
    copier.run_copy(
        str(src),
        dst,
        data=answers,
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref=kwargs.pop("vcs_ref", "HEAD"),
        **kwargs,
    )
    return dst


@pytest.fixture(scope="session", params=list(COMBINATIONS), ids=list(COMBINATIONS))
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated service, one per answer combination, shared by the whole session."""
    name = request.param
    cache = request.config.stash.setdefault(_RENDERED, {})
    if name not in cache:
        cache[name] = generate(tmp_path_factory.mktemp(f"svc-{name}") / "service", COMBINATIONS[name])
    return cache[name]


_RENDERED = pytest.StashKey[dict]()


def answers_of(service_dir: Path) -> dict[str, object]:
    """The answers a generated service was made with (from its answers file)."""
    import yaml

    return yaml.safe_load((service_dir / ".copier-answers.yml").read_text())


def tool(name: str) -> str:
    """Path of a validation tool; skip when it is missing locally, FAIL when it is missing in CI.

    Looks in the tool folders the bootstrap script fills (``.tools/bin`` for isolated venvs such
    as checkov, ``.tools/node_modules/.bin``), then beside this interpreter (CI runs
    ``.venv/bin/python -m pytest`` without ``.venv/bin`` on PATH), then on PATH.
    """
    for folder in (TOOLS_DIR / "bin", TOOLS_DIR / "node_modules" / ".bin", Path(sys.executable).parent):
        candidate = folder / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (run scripts/bootstrap.sh)"
    if IN_CI:
        pytest.fail(f"{message}; CI must not skip", pytrace=False)
    pytest.skip(message)


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run a command and return it; the caller asserts on returncode with the output in the message."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, text=True, capture_output=True, timeout=timeout, check=False)


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(map(str, proc.args))}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"


@pytest.fixture(scope="session")
def test_database_url() -> Iterator[str]:
    """SQLAlchemy URL of the PostgreSQL that CI starts; required in CI, skipped locally if unset."""
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("TEST_DATABASE_URL is not set; .ci/run must start PostgreSQL", pytrace=False)
        pytest.skip("TEST_DATABASE_URL is not set")
    yield url


def python_for(version: str) -> str:
    """An interpreter of ``version`` (the generated service's), from PATH or pyenv."""
    found = find_python(version)
    if found:
        return found
    message = f"python{version} is not installed"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def service_venv(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """One virtualenv per Python version for the whole run, made by the service's own `make install`.

    Every combination locks the same requirements, so sharing the venv keeps the suite fast
    while each service still installs into it with its own Makefile (a no-op after the first).
    """
    root = tmp_path_factory.mktemp("service-venvs")

    def venv_for(version: str) -> Path:
        return root / f"py{version}"

    return venv_for
