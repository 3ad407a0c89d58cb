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

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
TOOLS_DIR = TEMPLATE_ROOT / ".tools"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# pyenv machines expose python3.12/3.13 through shims that only answer when the version is
# selected; select every installed 3.x so the services' Makefiles and CI jobs find theirs.
_PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
if "PYENV_VERSION" not in os.environ and (_PYENV_ROOT / "versions").is_dir():
    _versions = sorted(p.name for p in (_PYENV_ROOT / "versions").glob("3.1[1-9].*") if p.name[-1].isdigit())
    if _versions:
        os.environ["PYENV_VERSION"] = ":".join(_versions)

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
    candidates = [shutil.which(f"python{version}") or ""]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(map(str, pyenv_root.glob(f"versions/{version}.*/bin/python{version}")), reverse=True)
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
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


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def snapshot_template(dst: Path) -> Path:
    """A clean git repository holding this template as it is on disk now (committed or not).

    `copier update` needs the template at a commit it can check out again later; the working
    tree being tested may have uncommitted changes, so tests release from a snapshot instead.
    """
    files = git(TEMPLATE_ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = TEMPLATE_ROOT / name
        if source.is_file():
            target = dst / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-qm", "snapshot of the template under test")
    return dst


def release(template: Path, version: str, message: str = "") -> None:
    """Commit whatever changed in a snapshot and tag it with a PEP 440 version."""
    git(template, "add", "-A")
    git(template, "commit", "-qm", message or f"release {version}", "--allow-empty")
    git(template, "tag", version)


def commit_all(repo: Path, message: str) -> None:
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
