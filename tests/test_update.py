"""`copier update` brings a new release's practices into a service that people have changed.

A temporary git repository holds the template with two tagged releases: 0.1.0 is the template
as it is now; 0.2.0 adds a practice (OPS-4, with its check and its manifest), changes a
manifest value, moves docker-compose.yml to compose.yaml with a migration, and changes a line
the user changed too. A service generated from 0.1.0, committed and edited, is updated to 0.2.0.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import (
    COPIER,
    REQUIRED,
    TEMPLATE_ROOT,
    answers_of,
    commit_all,
    generate,
    git,
    output,
    python_for,
    release,
    run,
    snapshot_template,
)

TOOLS_PATH = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}

# The migration 0.2.0 ships: the user's compose file, edits included, moves before the merge.
MIGRATION = """
_migrations:
  # 0.2.0 renames docker-compose.yml to compose.yaml. Moved before the merge, the file keeps the
  # user's edits; without it copier deletes the old file and the edits with it. Idempotent.
  - version: "0.2.0"
    when: "{{ _stage == 'before' }}"
    command: "test ! -f docker-compose.yml || test -e compose.yaml || git mv docker-compose.yml compose.yaml"
"""

OPS_4 = """
  - id: OPS-4
    title: Rollouts that give up
    rule: >-
      Deployments set progressDeadlineSeconds, so a stuck rollout is reported as failed.
    why: A deploy that kills pods mid-request returns 502s to clients.
    check: Every Deployment sets progressDeadlineSeconds of at most 600.
"""

OPS_4_CHECK = '''

@check("OPS-4")
def ops_4(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for where, doc, spec in each_workload(repo):
        if doc["kind"] == "Deployment" and not 0 < int(doc["spec"].get("progressDeadlineSeconds", 0)) <= 600:
            problems.append(f"{where}: progressDeadlineSeconds unset or above 600 (OPS-4)")
    return problems
'''


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))


def release_0_2_0(template: Path) -> None:
    """The second release: a new practice, a changed value, a moved file, a conflicting line."""
    files = template / "template"
    with (files / "docs" / "practices.yaml").open("r+") as catalog:
        text = catalog.read().replace("\nchecklist:", OPS_4 + "\nchecklist:", 1)
        catalog.seek(0)
        catalog.write(text)
    checker = files / "scripts" / "practices.py"
    edit(checker, "\n\n# --- The report ---", OPS_4_CHECK + "\n\n# --- The report ---")
    edit(
        files / "deploy" / "k8s" / "base" / "deployment.yaml.jinja",
        "  revisionHistoryLimit: 5",
        "  # OPS-4: a rollout stuck for 10 minutes is reported as failed.\n"
        "  progressDeadlineSeconds: 600\n  revisionHistoryLimit: 5",
    )
    edit(files / "deploy" / "k8s" / "base" / "hpa.yaml.jinja", "averageUtilization: 70", "averageUtilization: 65")
    edit(files / "deploy" / "k8s" / "base" / "kustomization.yaml.jinja", "LOG_LEVEL=INFO", "LOG_LEVEL=WARNING")
    (files / "docker-compose.yml").rename(files / "compose.yaml")
    with (template / "copier.yml").open("a") as copier_yml:
        copier_yml.write(MIGRATION)
    with (template / "CHANGELOG.md").open("a") as changelog:
        changelog.write("\n## 0.2.0\n\n- OPS-4 rollouts that give up; K8S-4 CPU target 65 %; compose.yaml.\n")
    release(template, "0.2.0", "0.2.0: OPS-4, K8S-4 target, compose.yaml")


def user_edits(service: Path) -> None:
    """What a team changes in its service: code, a manifest, the README, a moved file, a new file."""
    edit(service / "app" / "core" / "config.py", "access_token_expire_minutes: int = Field(default=30,",
         "access_token_expire_minutes: int = Field(default=45,")  # fmt: skip
    edit(service / "deploy" / "k8s" / "base" / "deployment.yaml", "cpu: 100m", "cpu: 150m")
    with (service / "README.md").open("a") as readme:
        readme.write("\n## Team notes\n\nOn call: the payments team.\n")
    edit(service / "docker-compose.yml", "127.0.0.1:5432:5432", "127.0.0.1:15432:5432")
    # The line 0.2.0 also changes: a real conflict.
    edit(service / "deploy" / "k8s" / "base" / "kustomization.yaml", "LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG")
    (service / "docs" / "team.md").write_text("# Team\n\nOur own notes, unknown to the template.\n")


@pytest.fixture(scope="module")
def updated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("update")
    template = snapshot_template(root / "template")
    release(template, "0.1.0")
    service = generate(root / "service", REQUIRED, src=template, vcs_ref="0.1.0")
    commit_all(service, "Generate orders-api from 0.1.0")
    git(service, "config", "--local", "template-tests.marker", "kept")
    user_edits(service)
    commit_all(service, "Team changes")
    history = git(service, "rev-list", "HEAD").split()
    git_inode = (service / ".git").stat().st_ino
    release_0_2_0(template)

    started = time.perf_counter()
    proc = run([*COPIER, "update", "--trust", "--defaults", "--skip-answered"], cwd=service)
    seconds = time.perf_counter() - started
    print(f"\ncopier update 0.1.0 -> 0.2.0 took {seconds:.1f} s")
    assert proc.returncode == 0, output(proc)
    return {"service": service, "history": history, "git_inode": git_inode, "proc": proc, "seconds": seconds}


def test_user_edits_survive(updated: dict[str, object]) -> None:
    service = Path(str(updated["service"]))
    assert "default=45," in (service / "app" / "core" / "config.py").read_text(), "code edit lost"
    assert "cpu: 150m" in (service / "deploy" / "k8s" / "base" / "deployment.yaml").read_text(), "manifest edit lost"
    assert "On call: the payments team." in (service / "README.md").read_text(), "README edit lost"
    assert (service / "docs" / "team.md").is_file(), "a file of the team's own was removed"


def test_new_practice_arrives(updated: dict[str, object]) -> None:
    service = Path(str(updated["service"]))
    assert "id: OPS-4" in (service / "docs" / "practices.yaml").read_text()
    assert "### OPS-4 Rollouts that give up" in (service / "docs" / "production-checklist.md").read_text()
    assert '@check("OPS-4")' in (service / "scripts" / "practices.py").read_text()
    deployment = (service / "deploy" / "k8s" / "base" / "deployment.yaml").read_text()
    assert "progressDeadlineSeconds: 600" in deployment
    assert "averageUtilization: 65" in (service / "deploy" / "k8s" / "base" / "hpa.yaml").read_text()


def test_moved_file_keeps_the_user_edit_through_the_migration(updated: dict[str, object]) -> None:
    service = Path(str(updated["service"]))
    assert not (service / "docker-compose.yml").exists()
    compose = (service / "compose.yaml").read_text()
    # The old path has no base in the new release, so copier shows the user's edited lines next
    # to the template's: the edit is kept, never silently dropped.
    assert "127.0.0.1:15432:5432" in compose
    assert "Running task 1 of 1" in updated["proc"].stderr  # type: ignore[attr-defined]


def test_answers_file_records_the_new_release(updated: dict[str, object]) -> None:
    answers = answers_of(Path(str(updated["service"])))
    assert answers["_commit"] == "0.2.0"
    assert answers["ecr_account_id"] == REQUIRED["ecr_account_id"]


def test_git_history_is_intact(updated: dict[str, object]) -> None:
    service = Path(str(updated["service"]))
    assert (service / ".git").stat().st_ino == updated["git_inode"], ".git was replaced"
    assert git(service, "config", "--local", "template-tests.marker").strip() == "kept"
    assert git(service, "rev-list", "HEAD").split() == updated["history"], "copier rewrote or added commits"


def test_conflict_is_reported_with_markers_and_loses_nothing(updated: dict[str, object]) -> None:
    service = Path(str(updated["service"]))
    text = (service / "deploy" / "k8s" / "base" / "kustomization.yaml").read_text()
    block = re.search(r"<<<<<<< before updating\n(.*?)=======\n(.*?)>>>>>>> after updating", text, re.S)
    assert block, text
    assert "LOG_LEVEL=DEBUG" in block.group(1), "the user's side"
    assert "LOG_LEVEL=WARNING" in block.group(2), "the template's side"
    status = git(service, "status", "--porcelain")
    assert "UU deploy/k8s/base/kustomization.yaml" in status, "git shows the file as conflicted"


def test_secrets_are_never_written_to_the_answers_file(updated: dict[str, object]) -> None:
    questions = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    secret_questions = [k for k, v in questions.items() if isinstance(v, dict) and v.get("secret")]
    # No question is a secret: credentials come from OIDC and Secrets Manager, never an answer.
    assert not [k for k in questions if re.search(r"secret_key|password|token|credential", k)]
    answers = answers_of(Path(str(updated["service"])))
    assert not set(secret_questions) & set(answers)
    for key, value in answers.items():
        assert key.startswith("_") or key in questions, f"{key} is stored but is no question"
        text = str(value)
        assert not re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN|[A-Za-z0-9+/]{40}", text), f"{key} looks like a secret"


def resolve_conflict_keeping_ours(path: Path) -> None:
    text = path.read_text()
    path.write_text(re.sub(r"<<<<<<< before updating\n(.*?)=======\n.*?>>>>>>> after updating\n", r"\1", text, flags=re.S))


def test_updated_service_passes_its_tests_and_practices(
    updated: dict[str, object], service_venv, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    service = Path(str(updated["service"]))
    resolve_conflict_keeping_ours(service / "deploy" / "k8s" / "base" / "kustomization.yaml")
    resolve_conflict_keeping_ours(service / "compose.yaml")
    git(service, "add", "-A")
    git(service, "commit", "-qm", "Update to 0.2.0")
    version = str(answers_of(service)["python_version"])
    variables = [f"PYTHON={python_for(version)}", f"VENV={service_venv(version)}"]
    for target in ("install", "test", "practices"):
        proc = run(["make", target, *variables], cwd=service, env=TOOLS_PATH, timeout=900)
        assert proc.returncode == 0, f"make {target} after the update\n{output(proc)}"
    assert re.search(r"^OPS-4\s+PASS", proc.stdout, re.M), proc.stdout


# --- Changing answers on the same release -----------------------------------------------------

NEW_ANSWERS = {
    "aws_region": "us-east-1",
    "ecr_account_id": "012345678901",
    "replicas_min": 2,
    "replicas_max": 9,
}


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def test_update_with_new_answers_changes_exactly_what_a_fresh_copy_would(tmp_path: Path) -> None:
    template = snapshot_template(tmp_path / "template")
    release(template, "0.1.0")
    service = generate(tmp_path / "service", REQUIRED, src=template, vcs_ref="0.1.0")
    commit_all(service, "generated")
    data = [arg for key, value in NEW_ANSWERS.items() for arg in ("--data", f"{key}={value}")]

    proc = run([*COPIER, "update", "--trust", "--defaults", "--vcs-ref", "0.1.0", *data], cwd=service)
    assert proc.returncode == 0, output(proc)

    fresh = generate(tmp_path / "fresh", {**REQUIRED, **NEW_ANSWERS}, src=template, vcs_ref="0.1.0")
    updated_files, fresh_files = tree(service), tree(fresh)
    assert updated_files.keys() == fresh_files.keys()
    differing = sorted(name for name in fresh_files if updated_files[name] != fresh_files[name])
    assert not differing, f"the update and a fresh copy with the same answers differ in {differing}"

    registry = "012345678901.dkr.ecr.us-east-1.amazonaws.com"
    assert f'ECR_REGISTRY="{registry}"' in (service / ".gitlab-ci.yml").read_text()
    assert f"name: {registry}/orders-api" in (service / "deploy/k8s/overlays/prod/kustomization.yaml").read_text()
    tfvars = (service / "infra/terraform/ephemeral/terraform.tfvars").read_text()
    assert re.search(r'aws_region\s*=\s*"us-east-1"', tfvars) and re.search(r'account_id\s*=\s*"012345678901"', tfvars)
    hpa = yaml.safe_load((service / "deploy/k8s/base/hpa.yaml").read_text())
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 9)
    changed = {line[3:] for line in git(service, "status", "--porcelain").splitlines()}
    assert ".copier-answers.yml" in changed
    assert not any(name.startswith(("app/", "tests/", "alembic/")) for name in changed), changed
    shutil.rmtree(fresh)


# --- The service's own `make update`, between two untagged template commits ----------------------


def service_make(service: Path, target: str, service_venv, **variables: str):  # type: ignore[no-untyped-def]
    """Run one of the service's make targets in the venv its `make install` filled."""
    version = str(answers_of(service)["python_version"])
    args = [f"PYTHON={python_for(version)}", f"VENV={service_venv(version)}", *(f"{k}={v}" for k, v in variables.items())]
    return run(["make", target, *args], cwd=service, env=TOOLS_PATH, timeout=900)


@pytest.fixture(scope="module")
def untagged(tmp_path_factory: pytest.TempPathFactory, service_venv) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """A service copied from a template checkout with no tag, edited by its team, installed."""
    root = tmp_path_factory.mktemp("untagged")
    template = snapshot_template(root / "template")
    service = generate(root / "service", REQUIRED, src=template, vcs_ref=None)
    assert answers_of(service)["_commit"] == git(template, "rev-parse", "--short", "HEAD").strip()
    commit_all(service, "Generate orders-api from an untagged checkout")
    edit(service / "app" / "core" / "config.py", "access_token_expire_minutes: int = Field(default=30,",
         "access_token_expire_minutes: int = Field(default=45,")  # fmt: skip
    with (service / "README.md").open("a") as readme:
        readme.write("\n## Team notes\n\nOn call: the payments team.\n")
    (service / "docs" / "team.md").write_text("# Team\n\nOur own notes, unknown to the template.\n")
    commit_all(service, "Team changes")
    proc = service_make(service, "install", service_venv)
    assert proc.returncode == 0, output(proc)
    assert not git(service, "status", "--porcelain"), "make install left the tree dirty"
    # The template moves on by one more commit, still without a tag.
    edit(template / "template" / "deploy" / "k8s" / "base" / "hpa.yaml.jinja", "averageUtilization: 70", "averageUtilization: 65")
    commit_all(template, "K8S-4: CPU target 65 %")
    return {"template": template, "service": service}


def test_make_update_refuses_a_dirty_tree(untagged: dict[str, Path], service_venv) -> None:  # type: ignore[no-untyped-def]
    service = untagged["service"]
    before = (service / ".copier-answers.yml").read_text()
    (service / "scratch.txt").write_text("work in progress\n")
    try:
        proc = service_make(service, "update", service_venv)
    finally:
        (service / "scratch.txt").unlink()
    assert proc.returncode != 0, output(proc)
    assert "clean git tree" in proc.stderr, output(proc)
    assert "copier update" not in proc.stdout, "copier ran on a dirty tree"
    assert (service / ".copier-answers.yml").read_text() == before


def test_make_update_between_untagged_commits_keeps_edits(untagged: dict[str, Path], service_venv) -> None:  # type: ignore[no-untyped-def]
    service, template = untagged["service"], untagged["template"]
    proc = service_make(service, "update", service_venv)
    assert proc.returncode == 0, output(proc)
    # The service's own copier did it, from its lock, then checked the result.
    assert f"{service_venv(str(answers_of(service)['python_version']))}/bin/copier update --trust --defaults --skip-answered" in proc.stdout
    assert "No git tags found in template; using HEAD as ref" in proc.stderr
    assert re.search(r"^K8S-4\s+PASS", proc.stdout, re.M), output(proc)
    assert re.search(r"\d+ passed", proc.stdout), output(proc)

    assert answers_of(service)["_commit"] == git(template, "rev-parse", "--short", "HEAD").strip()
    assert "averageUtilization: 65" in (service / "deploy" / "k8s" / "base" / "hpa.yaml").read_text()
    assert "default=45," in (service / "app" / "core" / "config.py").read_text(), "code edit lost"
    assert "On call: the payments team." in (service / "README.md").read_text(), "README edit lost"
    assert (service / "docs" / "team.md").is_file(), "a file of the team's own was removed"
    assert "<<<<<<<" not in git(service, "diff"), "no line was changed on both sides: nothing may conflict"
