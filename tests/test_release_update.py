"""`copier update` from the previous published release to the template as it is now.

test_update.py proves copier's update mechanics on a synthetic second release. This module proves
the real path users take: a service generated from the last release (kept under
tests/fixtures/releases as the release's own copier.yml, extensions/ and template/), committed and
edited by its team, is updated to the release this tree will become (the first version heading
of CHANGELOG.md). After the update the service must be what a fresh copy of the new release is,
plus the team's edits, and its own gates must pass.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

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
)

RELEASES = TEMPLATE_ROOT / "tests" / "fixtures" / "releases"
TOOLS_PATH = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def versions_in_changelog() -> list[str]:
    return re.findall(r"^## (\d+\.\d+\.\d+)\b", (TEMPLATE_ROOT / "CHANGELOG.md").read_text(), re.M)


PREVIOUS = sorted(p.name.removesuffix(".tar.gz") for p in RELEASES.glob("*.tar.gz"))[-1]
CURRENT = versions_in_changelog()[0]


def test_changelog_names_a_new_release_after_the_kept_one() -> None:
    """Every release keeps the previous one under fixtures, so this path is always tested."""
    versions = versions_in_changelog()
    assert PREVIOUS in versions, f"{PREVIOUS} (kept in {RELEASES}) has no CHANGELOG entry"
    as_tuple = [tuple(map(int, v.split("."))) for v in (CURRENT, PREVIOUS)]
    assert as_tuple[0] > as_tuple[1], f"CHANGELOG's newest release {CURRENT} must follow {PREVIOUS}"


def template_history(root: Path) -> Path:
    """A template repository with the kept release tagged, then this tree tagged as the new one."""
    repo = root / "template"
    repo.mkdir()
    with tarfile.open(RELEASES / f"{PREVIOUS}.tar.gz") as archive:
        archive.extractall(repo, filter="data")
    commit_all(repo, f"release {PREVIOUS}")
    git(repo, "tag", PREVIOUS)
    for child in repo.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    files = git(TEMPLATE_ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = TEMPLATE_ROOT / name
        if source.is_file() and not name.startswith("tests/"):
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    release(repo, CURRENT)
    return repo


TEAM_FILE = "app/api/routes/team_notes.py"
TEAM_README_NOTE = "\n## Team notes\n\nOn call: the payments team.\n"


def team_edits(service: Path) -> None:
    """Edits a team makes that no release touches: a file of its own and a README section."""
    (service / TEAM_FILE).write_text('"""A module of the team\'s own, unknown to the template."""\n')
    with (service / "README.md").open("a") as readme:
        readme.write(TEAM_README_NOTE)


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("release-update")
    template = template_history(root)
    service = generate(root / "service", REQUIRED, src=template, vcs_ref=PREVIOUS)
    assert answers_of(service)["_commit"] == PREVIOUS
    commit_all(service, f"Generate orders-api from {PREVIOUS}")
    team_edits(service)
    commit_all(service, "Team changes")

    proc = run([*COPIER, "update", "--trust", "--defaults", "--skip-answered", "--vcs-ref", CURRENT], cwd=service)
    assert proc.returncode == 0, output(proc)
    # The answers as the update kept them (a stored answer is not recomputed from a new default).
    kept = {k: v for k, v in answers_of(service).items() if not k.startswith("_")}
    fresh = generate(root / "fresh", kept, src=template, vcs_ref=CURRENT)
    return {"service": service, "fresh": fresh, "proc": proc}


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def test_update_records_the_new_release(upgraded: dict[str, object]) -> None:
    service = Path(str(upgraded["service"]))
    answers = answers_of(service)
    assert answers["_commit"] == CURRENT
    assert answers["ecr_account_id"] == REQUIRED["ecr_account_id"]


def test_updated_service_is_the_new_release_plus_the_team_edits(upgraded: dict[str, object]) -> None:
    """Nothing of the old release lingers, nothing new is missing, no conflict is left."""
    service, fresh = Path(str(upgraded["service"])), Path(str(upgraded["fresh"]))
    updated, expected = files_of(service), files_of(fresh)
    assert set(updated) - set(expected) == {TEAM_FILE}, "files the new release no longer has, or lost team files"
    assert not set(expected) - set(updated), "files of the new release missing after the update"
    differing = sorted(n for n in expected if n not in {"README.md", ".copier-answers.yml"} and updated[n] != expected[n])
    assert not differing, f"after the update these files differ from a fresh copy: {differing}"
    readme = updated["README.md"].decode()
    assert readme == expected["README.md"].decode() + TEAM_README_NOTE, "README: new release text plus the team's section"
    markers = [n for n, v in updated.items() if re.search(rb"^(<{7}|>{7}) ", v, re.M)]
    assert not markers, f"conflict markers left in {markers}"


def test_updated_service_passes_its_own_gates(
    upgraded: dict[str, object], service_venv, test_database_url: str  # type: ignore[no-untyped-def]
) -> None:
    service = Path(str(upgraded["service"]))
    git(service, "add", "-A")
    git(service, "commit", "-qm", f"Update to {CURRENT}")
    version = str(answers_of(service)["python_version"])
    variables = [f"PYTHON={python_for(version)}", f"VENV={service_venv(version)}"]
    env = {**TOOLS_PATH, "TEST_DATABASE_URL": test_database_url, "CI": "true"}
    for target in ("install", "lint", "test", "practices"):
        proc = run(["make", target, *variables], cwd=service, env=env, timeout=900)
        assert proc.returncode == 0, f"make {target} after the update to {CURRENT}\n{output(proc)}"
    assert not re.search(r"^\S+\s+FAIL\b", proc.stdout, re.M), proc.stdout
