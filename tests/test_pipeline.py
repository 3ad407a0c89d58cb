"""The generated pipeline (CI-1..CI-5, SEC-1, SEC-2, SEC-4, DEP-2), for every answer combination.

GitLab's own schema validates the files; gitlab-ci-local expands them (includes, extends,
!reference) the way GitLab does, lists the jobs, and runs the lint and test jobs here with the
shell executor. The structural assertions read that expanded pipeline and name the practice
they protect.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import answers_of, output, python_for, run, tool

FIXTURES = Path(__file__).parent / "fixtures"
STAGES = ["lint", "test", "audit", "build", "scan-image", "promote", "infrastructure", "deploy", "teardown"]
# Jobs this part of the template owns, and their stage.
OWN_JOBS = {
    "lint": "lint",
    "test": "test",
    "pip-audit": "audit",
    "trivy-fs": "audit",
    "semgrep": "audit",
    "dependency-policy": "audit",
    "cve-exceptions": "audit",
    "build-image": "build",
    "scan-image": "scan-image",
    "promote-image": "promote",
}
# Images whose ENTRYPOINT is a tool, not a shell (CI-5).
TOOL_IMAGE = re.compile(r"kaniko|trivy|terraform|aws-cli|crane|semgrep|buildkit|kubectl|/k8s|helm")
DERIVED = [
    "DEPLOY_ENV",
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "ECR_REGISTRY",
    "IMAGE_NAME",
    "CANDIDATE_IMAGE",
]
FIXTURE_TODAY = "2026-11-01"


class CiLoader(yaml.SafeLoader):
    """Reads GitLab CI files as written, keeping `!reference [job, key]` as a marker."""


CiLoader.add_constructor("!reference", lambda loader, node: {"!reference": loader.construct_sequence(node)})


def ci_files(service: Path) -> list[Path]:
    return [service / ".gitlab-ci.yml", *sorted((service / ".gitlab" / "ci").glob("*.yml"))]


def raw_ci(service: Path) -> dict[str, Any]:
    return yaml.load((service / ".gitlab-ci.yml").read_text(), Loader=CiLoader)


# --- gitlab-ci-local on a git copy of the service ----------------------------------------------


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=template-tests", "-c", "user.email=tests@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def ci_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    return {}


@pytest.fixture
def ci_repo(service: Path, ci_repos: dict[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The service as its own git repository on `main`, with an `origin` as GitLab would clone it.

    gitlab-ci-local reads git for CI_COMMIT_* and rules:changes; a copy keeps its state folder,
    virtualenv and reports out of the shared `service` directory.
    """
    if service not in ci_repos:
        repo = tmp_path_factory.mktemp("ci") / "service"
        shutil.copytree(service, repo, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", ".*_cache"))
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "generated")
        project = answers_of(service)["gitlab_project_path"]
        git(repo, "remote", "add", "origin", f"git@gitlab.example.com:{project}.git")
        git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
        git(repo, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
        ci_repos[service] = repo
    return ci_repos[service]


def gitlab_ci_local(repo: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    # --cwd must be relative: gitlab-ci-local joins it to the working directory.
    return run([tool("gitlab-ci-local"), "--cwd", repo.name, *args], cwd=repo.parent, timeout=timeout)


@pytest.fixture
def expanded(ci_repo: Path) -> dict[str, Any]:
    """The pipeline after includes, extends and !reference, as gitlab-ci-local --preview prints it.

    Into a file, not a pipe: the preview is over 64 KiB, and Node may exit before a pipe has taken
    all of it: the last jobs (rescan-deployed-image) went missing now and then on this loaded machine.
    """
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run([tool("gitlab-ci-local"), "--cwd", ci_repo.name, "--preview"], cwd=ci_repo.parent,
                              stdout=out, stderr=subprocess.PIPE, text=True, timeout=600, check=False)
        out.seek(0)
        text = out.read()
    assert proc.returncode == 0, f"{proc.args}\n{text[-3000:]}\n{proc.stderr[-3000:]}"
    return yaml.safe_load(text)


def jobs(expanded: dict[str, Any]) -> dict[str, dict[str, Any]]:
    reserved = {"stages", "variables", "include", "workflow", "default", "image", "services", "cache"}
    return {
        name: job
        for name, job in expanded.items()
        if name not in reserved and not name.startswith(".") and isinstance(job, dict)
    }


def expand(text: str, variables: dict[str, Any]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: str(variables.get(m.group(1), m.group(0))), text)


def image_of(job: dict[str, Any], top: dict[str, Any]) -> tuple[str, Any]:
    image = job.get("image")
    name = image.get("name") if isinstance(image, dict) else image
    entrypoint = image.get("entrypoint") if isinstance(image, dict) else None
    return expand(str(name), {**top, **(job.get("variables") or {})}), entrypoint


def role_of(job: dict[str, Any]) -> str | None:
    """The AWS role a job assumes: the literal its before_script starts with (`.aws-build/dev/prod-plan/prod`)."""
    before = [str(line) for line in job.get("before_script") or []]
    match = re.fullmatch(r"aws_environment=([\w-]+)", before[0]) if before else None
    return match.group(1) if match else None


def script_text(job: dict[str, Any]) -> str:
    lines = [*(job.get("before_script") or []), *(job.get("script") or [])]
    return "\n".join(str(line) for line in lines)


# --- Schema, stages, listing ---------------------------------------------------------------------


def test_gitlab_schema_accepts_every_ci_file(service: Path) -> None:
    proc = run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.gitlab-ci",
            "--data-transform",
            "gitlab-ci",
            *map(str, ci_files(service)),
        ]
    )
    assert proc.returncode == 0, output(proc)


def test_includes_the_terraform_and_kubernetes_parts(service: Path) -> None:
    includes = [entry["local"] for entry in raw_ci(service)["include"]]
    assert includes[:2] == [".gitlab/ci/terraform.yml", ".gitlab/ci/kubernetes.yml"], includes
    for include in includes:
        assert (service / include).is_file(), f"{include} is included but not generated"


def test_stages_follow_the_contract(expanded: dict[str, Any]) -> None:
    stages = [s for s in expanded["stages"] if s not in (".pre", ".post")]
    assert stages == STAGES, f"stage order must be {STAGES} (CI-4: build -> scan-image -> promote -> deploy)"


def test_gitlab_ci_local_lists_each_job_in_its_stage(ci_repo: Path) -> None:
    proc = gitlab_ci_local(ci_repo, "--list-json")
    assert proc.returncode == 0, output(proc)
    listed = {job["name"]: job for job in json.loads(proc.stdout)}
    for name, stage in OWN_JOBS.items():
        assert name in listed, f"gitlab-ci-local does not list {name}"
        assert listed[name]["stage"] == stage, f"{name} is in {listed[name]['stage']}, expected {stage}"
        assert listed[name]["when"] != "never", f"{name} would not run on a push to main"
    assert {job["stage"] for job in listed.values()} <= set(STAGES)
    for stage in ("infrastructure", "deploy", "teardown"):
        assert any(job["stage"] == stage for job in listed.values()), f"no job of the included files in {stage}"


# --- CI-3, CI-4, CI-5: images -------------------------------------------------------------------


def test_no_docker_in_docker(service: Path, expanded: dict[str, Any]) -> None:
    for path in ci_files(service):
        text = path.read_text().lower()
        assert "dind" not in text and "docker_host" not in text, f"{path.name}: Docker-in-Docker is refused (CI-3)"
        assert "docker build" not in text and "docker push" not in text, f"{path.name}: images build with Kaniko (CI-3)"
    for name, job in jobs(expanded).items():
        for service_entry in job.get("services") or []:
            image = service_entry["name"] if isinstance(service_entry, dict) else service_entry
            assert "docker" not in expand(image, expanded["variables"]), f"{name}: a docker service (CI-3)"


def test_every_image_is_pinned_to_a_version(expanded: dict[str, Any]) -> None:
    top = expanded["variables"]
    images = []
    for name, job in jobs(expanded).items():
        images.append((name, image_of(job, top)[0]))
        for service_entry in job.get("services") or []:
            raw = service_entry["name"] if isinstance(service_entry, dict) else service_entry
            images.append((name, expand(raw, {**top, **(job.get("variables") or {})})))
    for name, image in images:
        tag = image.split("@")[0].rpartition(":")[2] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: image {image} is not pinned to a version"


def test_no_image_comes_from_a_variable(service: Path) -> None:
    """A pipeline variable outranks every YAML value (CI-2): `TRIVY_IMAGE=evil` would swap the scanner."""
    for path in ci_files(service):
        document = yaml.load(path.read_text(), Loader=CiLoader)
        for key, job in document.items():
            if not isinstance(job, dict):
                continue
            image = job.get("image")
            names = [image.get("name") if isinstance(image, dict) else image]
            names += [s.get("name") if isinstance(s, dict) else s for s in job.get("services") or []]
            for name in filter(None, names):
                assert "$" not in str(name), f"{path.name} {key}: image {name} comes from a variable (CI-2, CI-5)"
        for _, block in _variables_blocks(document):
            images = [name for name in block if name.endswith("_IMAGE")]
            assert not images, f"{path.name}: {images} under variables: a pipeline variable would replace them (CI-2)"


def test_tool_images_reset_their_entrypoint(expanded: dict[str, Any]) -> None:
    checked = []
    for name, job in jobs(expanded).items():
        image, entrypoint = image_of(job, expanded["variables"])
        if TOOL_IMAGE.search(image):
            checked.append(name)
            assert entrypoint == [""], f'{name}: {image} needs entrypoint: [""] or its script never runs (CI-5)'
    assert {"build-image", "scan-image", "promote-image", "trivy-fs"} <= set(checked)


def test_kaniko_is_a_debug_image_of_the_maintained_fork(expanded: dict[str, Any]) -> None:
    image, _ = image_of(jobs(expanded)["build-image"], expanded["variables"])
    assert re.fullmatch(r"ghcr\.io/osscontainertools/kaniko:v\d+\.\d+\.\d+-debug(@sha256:[0-9a-f]{64})?", image), (
        f"build-image runs {image}: the kaniko fork's pinned -debug image is required (CI-3, CI-5)"
    )


def test_a_commit_built_twice_pushes_the_same_candidate(expanded: dict[str, Any]) -> None:
    """ECR refuses a second push to an immutable tag; a rebuild of one commit must not fail (CI-4).

    Flags of osscontainertools/kaniko v1.28.3, cmd/executor/cmd/root.go (CONTRACTS.md).
    """
    script = script_text(jobs(expanded)["build-image"])
    assert "--reproducible" in script, "Kaniko stamps the build time unless --reproducible: every rebuild differs"
    assert '--digest-file "${CI_PROJECT_DIR}/candidate.digest"' in script, (
        "the scan and the promote must read the digest this build made, not a tag any ref can push (IAM-1)")
    assert "candidate.digest" in jobs(expanded)["build-image"]["artifacts"]["paths"]


def test_build_pushes_only_a_candidate_with_an_ecr_cache(expanded: dict[str, Any]) -> None:
    script = script_text(jobs(expanded)["build-image"])
    destinations = re.findall(r"--destination[ =](\S+)", script)
    assert destinations == ['"${CANDIDATE_IMAGE}:${CI_COMMIT_SHA}-candidate"'], (
        f"the build pushes only <sha>-candidate, never a deployable tag (CI-4): {destinations}"
    )
    assert '--cache="${cache}"' in script and "cache=true" in script, "layer cache in ECR (CI-3)"
    assert '--cache-repo "${IMAGE_NAME}/cache"' in script, "the cache repository the persistent stack creates (CI-3)"


def test_scan_blocks_on_high_and_critical(expanded: dict[str, Any]) -> None:
    script = script_text(jobs(expanded)["scan-image"])
    for flag in (
        "trivy image",
        "--image-src remote",
        "--exit-code 1",
        "--severity HIGH,CRITICAL",
        "--ignore-unfixed",
        "--ignorefile .trivyignore.yaml",
        '"${CANDIDATE_IMAGE}:${CI_COMMIT_SHA}-candidate@${digest}"',
    ):
        assert flag in script, f"scan-image lacks `{flag}` (CI-4)"


def test_promote_needs_the_scan(expanded: dict[str, Any]) -> None:
    every = jobs(expanded)
    needs = [n["job"] if isinstance(n, dict) else n for n in every["promote-image"].get("needs", [])]
    assert "scan-image" in needs, "promote-image must need scan-image: never tag an unscanned image (CI-4)"
    assert "build-image" in needs, "promote-image reads the digest build-image made (candidate.digest)"
    assert "build-image" in [n["job"] if isinstance(n, dict) else n for n in every["scan-image"].get("needs", [])]
    script = script_text(every["promote-image"])
    assert "put-image" in script or "crane" in script, "promotion adds tags without Docker (CI-4)"
    assert "docker" not in script


def test_deploys_use_the_promoted_sha_tag(service: Path, expanded: dict[str, Any]) -> None:
    deploys = {name: job for name, job in jobs(expanded).items() if job.get("stage") == "deploy"}
    assert deploys, "no deploy job"
    for name, job in deploys.items():
        # The job's own script and what it calls; .aws-oidc's before_script names the candidates
        # repository for every job that reaches AWS, which deploys nothing.
        text = "\n".join(str(line) for line in job.get("script") or [])
        for called in re.findall(r"(scripts/[\w.-]+)", text):
            body = (service / called).read_text()
            text += "\n" + "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("#"))
        assert "CI_COMMIT_SHA" in text, f"{name} must deploy the <sha> tag (CI-4)"
        assert "CI_COMMIT_SHORT_SHA" not in text, f"{name}: tags use the full SHA (CONTRACTS.md)"
        assert not re.search(r":latest\b|\blatest\b", text), f"{name} deploys `latest` (CI-4)"
        assert "candidate" not in text, f"{name} deploys an unscanned -candidate (CI-4)"


# --- CI-4: build, scan and promote against a registry that behaves like ECR ---------------------


@pytest.fixture
def fake_ecr(tmp_path: Path) -> dict[str, str]:
    """`aws`, `executor` (Kaniko) and `trivy` on PATH, backed by tests/fixtures/fake_ecr.py."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("aws", "executor", "trivy"):
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURES / "fake_ecr.py"}" {name} "$@"\n')
        wrapper.chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "registry").mkdir()
    (tmp_path / "docker").mkdir()
    return {"PATH": f"{bin_dir}:{__import__('os').environ['PATH']}", "PROJECT": str(project),
            "FAKE_ECR_DIR": str(tmp_path / "registry"), "DOCKER": str(tmp_path / "docker")}


# Names the pipeline refuses when a job starts (.aws-oidc): this machine's own settings of them
# (e.g. a TF_CLI_CONFIG_FILE for offline Terraform) must not reach the jobs the shell executor runs,
# as a runner's would not reach a job's container.
TOOL_OPTIONS = re.compile(r"(TF_|TRIVY_|AWS_|KANIKO_|FF_KANIKO_)\w*")


def run_shell_job(repo: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not TOOL_OPTIONS.fullmatch(k)}
    return subprocess.run([tool("gitlab-ci-local"), "--cwd", repo.name, *args], cwd=repo.parent, env={**clean, **env},
                          text=True, capture_output=True, timeout=600, check=False)


def id_token(sha: str, **claims: Any) -> str:
    """A token shaped like GitLab's OIDC ID token (header.payload.signature, base64url without
    padding), carrying the `sha` claim GitLab documents. Unsigned: the fakes never verify it."""
    def part(claims: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return ".".join([part({"alg": "RS256", "typ": "JWT"}),
                     part({"aud": "sts.amazonaws.com", "sha": sha, "ref": "main", "ref_type": "branch",
                           "ref_protected": "true", **claims}),
                     "c2lnbmF0dXJl"])


def image_pipeline(repo: Path, env: dict[str, str], sha: str, findings: bool = False,
                   jobs_to_run: tuple[str, ...] = ("build-image", "scan-image", "promote-image"),
                   extra: tuple[str, ...] = (), claims: dict[str, Any] | None = None) -> list[str]:
    """Runs the jobs one after the other, as their `needs` chain them, on the default branch.

    Like GitLab, a failed job stops the chain (test_promote_needs_the_scan proves the `needs`).
    Returns the jobs that passed; the output of the last one run is kept in `image_pipeline.last`.
    `extra` are more pipeline variables (NAME=value); `claims` more claims of the OIDC token.
    The project folder is CI_PROJECT_DIR of every job, so build-image's artifact reaches the others.
    """
    (Path(env["PROJECT"]) / "Dockerfile").write_text(f"FROM scratch\n# {sha}\n")
    args = ["--force-shell-executor", "--ignore-predefined-vars", "CI_PROJECT_DIR,CI_COMMIT_SHA",
            "--variable", f"AWS_ID_TOKEN={id_token(sha, **(claims or {}))}",
            "--variable", f"CI_PROJECT_DIR={env['PROJECT']}",
            "--variable", f"CI_COMMIT_SHA={sha}", "--variable", f"DOCKER_CONFIG={env['DOCKER']}"]
    for variable in extra:
        args += ["--variable", variable]
    passed = []
    for job in jobs_to_run:
        proc = run_shell_job(repo, [*args, job], {"PATH": env["PATH"], "FAKE_ECR_DIR": env["FAKE_ECR_DIR"],
                                                  "FAKE_TRIVY_FINDINGS": "1" if findings else "0",
                                                  "FAKE_TRIVY_VULNERABLE": env.get("FAKE_TRIVY_VULNERABLE", "")})
        image_pipeline.last = output(proc)  # type: ignore[attr-defined]
        if proc.returncode != 0:
            break
        passed.append(job)
    return passed


def ecr_tags(env: dict[str, str], repository: str) -> dict[str, str]:
    tags = Path(env["FAKE_ECR_DIR"], repository, "tags")
    return {p.name: p.read_text() for p in tags.iterdir()} if tags.is_dir() else {}


def ecr_calls(env: dict[str, str]) -> list[list[str]]:
    """Each call the fake registry saw: [role, tool, operation, repository, ...]."""
    log = Path(env["FAKE_ECR_DIR"], "calls.log")
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def plant_candidate(env: dict[str, str], repository: str, sha: str, content: str) -> str:
    """What any branch can do with the build role: push its own image under another commit's
    candidate tag (a job of its own .gitlab-ci.yml calls Kaniko, or the registry API, directly)."""
    planted = Path(env["PROJECT"]).parent / "planted"
    planted.mkdir(exist_ok=True)
    (planted / "Dockerfile").write_text(content)
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    subprocess.run([sys.executable, str(FIXTURES / "fake_ecr.py"), "executor", "--context", str(planted),
                    "--dockerfile", str(planted / "Dockerfile"), "--reproducible",
                    "--destination", f"{registry}/{repository}-candidates:{sha}-candidate"],
                   env={**os.environ, "FAKE_ECR_DIR": env["FAKE_ECR_DIR"], "AWS_ROLE_ARN": "role/branch-build"},
                   check=True)
    return ecr_tags(env, f"{repository}-candidates")[f"{sha}-candidate"]


def test_build_scan_promote_against_ecr_rules(service: Path, ci_repo: Path, fake_ecr: dict[str, str]) -> None:
    """First build; the same commit built again (MR pipeline after the branch's); promote retried.
    Candidates go to their own repository; the promote copies the scanned one, layers and all,
    into the service's repository, with the promote role alone (IAM-1)."""
    repository = str(answers_of(service)["project_slug"])
    sha = "a" * 40
    chain = ["build-image", "scan-image", "promote-image"]
    assert image_pipeline(ci_repo, fake_ecr, sha) == chain, image_pipeline.last  # type: ignore[attr-defined]
    candidates = ecr_tags(fake_ecr, f"{repository}-candidates")
    assert set(candidates) == {f"{sha}-candidate"}, candidates
    tags = ecr_tags(fake_ecr, repository)
    assert set(tags) == {sha, "latest"}, f"deployable tags, and no candidate, in the service repository: {tags}"
    assert set(tags.values()) == {candidates[f"{sha}-candidate"]}, "the promoted image must be the scanned candidate"
    blobs = {p.name for p in Path(fake_ecr["FAKE_ECR_DIR"], repository, "blobs").iterdir()}
    assert len(blobs) == 2, f"config and layer copied into the service repository: {blobs}"
    writes = [c for c in ecr_calls(fake_ecr) if c[3] == repository
              and c[2] in {"put-image", "initiate-layer-upload", "upload-layer-part", "complete-layer-upload"}]
    assert writes and {c[0] for c in writes} == {f"{repository}-gitlab-promote"}, (
        f"IAM-1: only the promote role writes the service repository: {sorted({c[0] for c in writes})}")
    assert any(c[2] == "upload-layer-part" and c[5] != "0" for c in writes), "a layer spanning parts was copied"

    again = image_pipeline(ci_repo, fake_ecr, sha)
    assert again == chain, f"a second pipeline of the same commit fails (CI-4)\n{image_pipeline.last}"  # type: ignore[attr-defined]
    assert ecr_tags(fake_ecr, repository) == tags, "the second build changed what the tags point at"
    assert ecr_tags(fake_ecr, f"{repository}-candidates") == candidates
    manifests = list(Path(fake_ecr["FAKE_ECR_DIR"], f"{repository}-candidates", "manifests").iterdir())
    assert len(manifests) == 1, f"one commit, one image: {len(manifests)} manifests (--reproducible)"

    retried = image_pipeline(ci_repo, fake_ecr, sha, jobs_to_run=("promote-image",))
    assert retried == ["promote-image"], f"a retried promote fails\n{image_pipeline.last}"  # type: ignore[attr-defined]
    assert ecr_tags(fake_ecr, repository) == tags


def test_fake_ecr_put_image_needs_the_layers_in_the_target_repository(fake_ecr: dict[str, str]) -> None:
    """The behaviour the promote's layer copy exists for: ECR's PutImage refuses a manifest whose
    layers were uploaded to another repository only (LayersNotFoundException)."""
    plant_candidate(fake_ecr, "svc", "d" * 40, "FROM scratch\n")
    manifest = next(Path(fake_ecr["FAKE_ECR_DIR"], "svc-candidates", "manifests").iterdir()).read_text()
    proc = subprocess.run([sys.executable, str(FIXTURES / "fake_ecr.py"), "aws", "ecr", "put-image",
                           "--repository-name", "svc", "--image-tag", "d" * 40, "--image-manifest", manifest],
                          env={**os.environ, "FAKE_ECR_DIR": fake_ecr["FAKE_ECR_DIR"]}, capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0 and "LayersNotFoundException" in proc.stderr, output(proc)
    assert not ecr_tags(fake_ecr, "svc")


@pytest.mark.parametrize("when", ["before the build", "between the build and the scan"])
def test_a_candidate_pushed_by_another_ref_is_never_promoted(service: Path, ci_repo: Path, fake_ecr: dict[str, str],
                                                             when: str) -> None:
    """IAM-1: the build role trusts every ref, so a branch can push `<sha>-candidate` of a commit
    it does not own (of a merge request about to land). The default branch's pipeline must scan
    and promote the image it built itself, whatever that tag names."""
    repository = str(answers_of(service)["project_slug"])
    sha = "e" * 40
    evil = "FROM scratch\nRUN steal-secrets\n"
    planted = plant_candidate(fake_ecr, repository, sha, evil) if when == "before the build" else None
    built_jobs = image_pipeline(ci_repo, fake_ecr, sha, jobs_to_run=("build-image",))
    assert built_jobs == ["build-image"], image_pipeline.last  # type: ignore[attr-defined]
    built = Path(fake_ecr["PROJECT"], "candidate.digest").read_text()
    if planted is None:
        planted = plant_candidate(fake_ecr, repository, sha, evil)
    assert planted != built
    passed = image_pipeline(ci_repo, fake_ecr, sha, jobs_to_run=("scan-image", "promote-image"))
    assert passed == ["scan-image", "promote-image"], image_pipeline.last  # type: ignore[attr-defined]
    scanned = [c for c in ecr_calls(fake_ecr) if c[1:3] == ["trivy", "image"]]
    assert scanned and scanned[-1][-1] == built, f"the scan read {scanned[-1][-1]}, not the image built here"
    tags = ecr_tags(fake_ecr, repository)
    assert tags == {sha: built, "latest": built}, f"promoted {tags}; built {built}, planted {planted}"


def test_the_default_branch_builds_without_the_shared_cache(ci_repo: Path, fake_ecr: dict[str, str]) -> None:
    """Any ref writes the Kaniko cache, so a protected ref (GitLab's signed ref_protected claim)
    builds without it: a branch cannot plant a layer in the default branch's image. Pipeline
    variables claiming otherwise change nothing."""
    sha = "f" * 40
    cases = [({"ref_protected": "true"}, (), "cache=false"), ({"ref_protected": "false"}, (), "cache=true"),
             ({"ref_protected": "true"}, ("CI_COMMIT_REF_PROTECTED=false", "CI_COMMIT_BRANCH=feature"), "cache=false")]
    for claims, extra, expected in cases:
        passed = image_pipeline(ci_repo, fake_ecr, sha, jobs_to_run=("build-image",), claims=claims, extra=extra)
        assert passed == ["build-image"], image_pipeline.last  # type: ignore[attr-defined]
        pushes = [c for c in ecr_calls(fake_ecr) if c[1:3] == ["executor", "push"]]
        assert pushes[-1][-1] == expected, f"{claims} {extra}: {pushes[-1]}"


def test_an_image_whose_scan_fails_is_never_promoted(service: Path, ci_repo: Path, fake_ecr: dict[str, str]) -> None:
    repository = str(answers_of(service)["project_slug"])
    sha = "b" * 40
    passed = image_pipeline(ci_repo, fake_ecr, sha, findings=True)
    assert passed == ["build-image"], image_pipeline.last  # type: ignore[attr-defined]
    assert "HIGH: 1" in image_pipeline.last  # type: ignore[attr-defined]
    assert set(ecr_tags(fake_ecr, f"{repository}-candidates")) == {f"{sha}-candidate"}
    assert not ecr_tags(fake_ecr, repository), "an unscanned image got a deployable tag"
    # The same commit again (a retried pipeline): the scan still fails and nothing is promoted.
    assert image_pipeline(ci_repo, fake_ecr, sha, findings=True) == ["build-image"]
    assert not ecr_tags(fake_ecr, repository)
    calls = Path(fake_ecr["FAKE_ECR_DIR"], "calls.log").read_text()
    assert "put-image" not in calls, calls


def test_the_audit_rescans_what_prod_runs(service: Path, ci_repo: Path, fake_ecr: dict[str, str]) -> None:
    """SEC-1: prod runs the image its last deploy tagged `deployed-prod`, often older than `latest`
    (dev). A CVE found in it after the build must fail the nightly audit."""
    repository = str(answers_of(service)["project_slug"])
    old, new = "1" * 40, "2" * 40
    for sha in (old, new):
        assert image_pipeline(ci_repo, fake_ecr, sha) == ["build-image", "scan-image", "promote-image"], (
            image_pipeline.last)  # type: ignore[attr-defined]
    tags = ecr_tags(fake_ecr, repository)
    deploy_prod = subprocess.run(
        [sys.executable, str(FIXTURES / "fake_ecr.py"), "aws", "ecr", "put-image", "--repository-name", repository,
         "--image-tag", "deployed-prod", "--image-digest", tags[old], "--image-manifest",
         Path(fake_ecr["FAKE_ECR_DIR"], repository, "manifests", tags[old].replace(":", "_")).read_text()],
        env={**os.environ, "FAKE_ECR_DIR": fake_ecr["FAKE_ECR_DIR"]}, capture_output=True, text=True, check=False)
    assert deploy_prod.returncode == 0, output(deploy_prod)
    audit = ("resolve-deployed-images", "rescan-deployed-image")
    schedule = ("CI_PIPELINE_SOURCE=schedule", "SCHEDULED_JOB=audit")
    assert image_pipeline(ci_repo, fake_ecr, new, jobs_to_run=audit, extra=schedule) == list(audit), (
        image_pipeline.last)  # type: ignore[attr-defined]
    env = {**fake_ecr, "FAKE_TRIVY_VULNERABLE": tags[old]}
    passed = image_pipeline(ci_repo, env, new, jobs_to_run=audit, extra=schedule)
    assert passed == ["resolve-deployed-images"], f"the CVE in what prod runs passed the audit\n{image_pipeline.last}"  # type: ignore[attr-defined]
    scanned = [c[-1] for c in ecr_calls(fake_ecr) if c[1:3] == ["trivy", "image"]]
    assert tags[old] in scanned and tags[new] in scanned, scanned


def test_the_audit_passes_before_the_first_prod_deploy(service: Path, ci_repo: Path, fake_ecr: dict[str, str]) -> None:
    sha = "3" * 40
    assert image_pipeline(ci_repo, fake_ecr, sha) == ["build-image", "scan-image", "promote-image"]
    schedule = ("CI_PIPELINE_SOURCE=schedule", "SCHEDULED_JOB=audit")
    resolved = image_pipeline(ci_repo, fake_ecr, sha, jobs_to_run=("resolve-deployed-images",), extra=schedule)
    assert resolved == ["resolve-deployed-images"], image_pipeline.last  # type: ignore[attr-defined]
    assert ":deployed-prod yet" in image_pipeline.last  # type: ignore[attr-defined]
    rescanned = image_pipeline(ci_repo, fake_ecr, sha, jobs_to_run=("rescan-deployed-image",), extra=schedule)
    assert rescanned == ["rescan-deployed-image"], image_pipeline.last  # type: ignore[attr-defined]
    scanned = [c[-1] for c in ecr_calls(fake_ecr) if c[1:3] == ["trivy", "image"]]
    assert scanned[-1] == ecr_tags(fake_ecr, str(answers_of(service)["project_slug"]))["latest"], scanned


@pytest.mark.parametrize("environment", ["prod", "dev"])
def test_the_prod_deploy_moves_deployed_prod(service: Path, ci_repo: Path, fake_ecr: dict[str, str],
                                             environment: str) -> None:
    """SEC-1: scripts/k8s-deploy tags what it deployed to prod `deployed-prod` (the tag the audit
    rescans), against ECR's rules: a mutable tag in an immutable repository. Dev moves nothing."""
    repository = str(answers_of(service)["project_slug"])
    first, second = "4" * 40, "5" * 40
    for sha in (first, second):
        assert image_pipeline(ci_repo, fake_ecr, sha) == ["build-image", "scan-image", "promote-image"]
    bin_dir = Path(fake_ecr["PATH"].split(":", 1)[0])
    (bin_dir / "kubectl").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "kubectl").chmod(0o755)
    tags = ecr_tags(fake_ecr, repository)
    for sha in (first, second, second):  # a second deploy of one image (a retried job) too
        proc = subprocess.run([str(ci_repo / "scripts" / "k8s-deploy"), environment, sha], cwd=ci_repo,
                              env={**os.environ, "PATH": fake_ecr["PATH"], "FAKE_ECR_DIR": fake_ecr["FAKE_ECR_DIR"],
                                   "AWS_ROLE_ARN": f"role/{repository}-gitlab-{environment}"},
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, output(proc)
        if environment == "prod":
            assert ecr_tags(fake_ecr, repository)["deployed-prod"] == tags[sha]
    if environment == "dev":
        assert "deployed-prod" not in ecr_tags(fake_ecr, repository), "a dev deploy moved the prod tag"


def test_terraform_jobs_have_the_aws_cli_for_the_exec_plugin(service: Path, expanded: dict[str, Any]) -> None:
    """The Helm provider of the ephemeral stack gets its token from `aws eks get-token` (exec
    plugin); hashicorp/terraform ships Terraform alone, so every job that plans or applies that
    stack must install the AWS CLI."""
    assert '"aws"' in (service / "infra" / "terraform" / "ephemeral" / "main.tf").read_text()
    for name, job in jobs(expanded).items():
        text = script_text(job)
        if "scripts/tf ephemeral" in text or "scripts/destroy-ephemeral" in text:
            assert re.search(r"apk add [^\n]*\baws-cli\b", text), f"{name}: no AWS CLI for `aws eks get-token`"


@pytest.mark.parametrize(
    "variable", ["TRIVY_SCANNERS=secret", "TRIVY_PKG_TYPES=os", "TRIVY_SKIP_DIRS=/opt/venv", "TRIVY_EXIT_CODE=0",
                 "TRIVY_SEVERITY=CRITICAL"],
)
def test_no_trivy_variable_lets_a_vulnerable_image_through(service: Path, ci_repo: Path, fake_ecr: dict[str, str],
                                                          variable: str) -> None:
    """Trivy v0.74.0 reads TRIVY_<FLAG> for every flag left off its command line (pkg/flag/options.go
    BindEnv), and a pipeline variable is in every job's environment (CI-2, CI-4)."""
    repository = str(answers_of(service)["project_slug"])
    sha = "c" * 40
    passed = image_pipeline(ci_repo, fake_ecr, sha, findings=True, extra=(variable,))
    assert "promote-image" not in passed, f"{variable} let a vulnerable image be promoted\n{image_pipeline.last}"  # type: ignore[attr-defined]
    assert f"{variable.split('=')[0]} is set by a pipeline, project or group variable" in image_pipeline.last  # type: ignore[attr-defined]
    calls = Path(fake_ecr["FAKE_ECR_DIR"], "calls.log")
    assert not calls.exists() or "put-image" not in calls.read_text()
    assert not ecr_tags(fake_ecr, repository)


def test_every_gating_trivy_option_is_on_the_command_line(expanded: dict[str, Any]) -> None:
    """Left off, each would come from a TRIVY_* variable (CI-4, SEC-1)."""
    for name in ("scan-image", "rescan-deployed-image", "trivy-fs"):
        script = " ".join(script_text(jobs(expanded)[name]).split())
        for flag in ("--scanners vuln", "--pkg-types os,library", "--severity HIGH,CRITICAL", "--ignore-unfixed",
                     "--exit-code 1", "--ignorefile .trivyignore.yaml"):
            assert flag in script, f"{name} lacks `{flag}`: a TRIVY_* variable would decide it (CI-4)"
        assert "TRIVY_" not in str(jobs(expanded)[name].get("variables") or {}), (
            f"{name} sets a TRIVY_* variable: the guard could not tell it from a user's"
        )
        assert "is set by a pipeline, project or group variable" in script, f"{name} does not refuse TRIVY_*"


# --- CI-1, CI-2: AWS through OIDC, derived values exported ---------------------------------------


def test_aws_access_goes_through_oidc(service: Path, expanded: dict[str, Any]) -> None:
    oidc = raw_ci(service)[".aws-oidc"]
    assert oidc["id_tokens"]["AWS_ID_TOKEN"]["aud"] == "sts.amazonaws.com", "OIDC id_tokens for AWS (CI-1)"
    aws_jobs = {name: job for name, job in jobs(expanded).items() if job.get("id_tokens")}
    assert {"build-image", "scan-image", "promote-image"} <= set(aws_jobs)
    prefix = [str(line) for line in oidc["before_script"]]
    for name, job in aws_jobs.items():
        assert job.get("id_tokens", {}).get("AWS_ID_TOKEN", {}).get("aud") == "sts.amazonaws.com", (
            f"{name}: no OIDC token"
        )
        before = [str(line) for line in job.get("before_script") or []]
        assert role_of(job) in {"build", "dev", "promote", "prod-plan", "prod"}, (
            f"{name}: the role is not a literal of the job (CI-2)")
        assert before[1 : len(prefix) + 1] == prefix, f"{name} must run .aws-oidc's before_script first (CI-1, CI-2)"
        assert "DEPLOY_ENV" not in (job.get("variables") or {}), f"{name}: a pipeline variable would override DEPLOY_ENV"


def test_no_static_aws_keys_anywhere(service: Path) -> None:
    """No CI file or CI doc reads a static key, and no file of the service holds one (CI-1).

    Other files may name the variables (the practices report refuses them by name).
    """
    for path in [*ci_files(service), service / "docs" / "ci-variables.md"]:
        names = re.findall(r"AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN", path.read_text())
        assert not names, f"{path.name} uses {names}: AWS access goes through the OIDC roles (CI-1)"
    found = []
    for path in service.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            if re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b|aws_secret_access_key\s*=", text):
                found.append(str(path.relative_to(service)))
    assert not found, f"static AWS keys are refused; use the OIDC roles (CI-1): {found}"


def test_roles_are_per_environment(service: Path) -> None:
    answers = answers_of(service)
    before = "\n".join(map(str, raw_ci(service)[".aws-oidc"]["before_script"]))
    role = f"arn:aws:iam::{answers['ecr_account_id']}:role/{answers['project_slug']}-gitlab-${{DEPLOY_ENV}}"
    assert role in before, f"AWS_ROLE_ARN must be {role} (CONTRACTS.md)"
    registry = f"{answers['ecr_account_id']}.dkr.ecr.{answers['aws_region']}.amazonaws.com"
    assert f'ECR_REGISTRY="{registry}"' in before and f'AWS_REGION="{answers["aws_region"]}"' in before


def test_production_jobs_run_only_on_the_default_branch(expanded: dict[str, Any]) -> None:
    prod = {n: j for n, j in jobs(expanded).items() if role_of(j) in {"prod", "prod-plan", "promote"}}
    assert role_of(jobs(expanded)["promote-image"]) == "promote", "IAM-1: only the promote role writes deployable tags"
    assert prod, "no production job found"
    for name, job in prod.items():
        rules = job.get("rules") or []
        assert rules, f"{name} has no rules: it would run on every branch (CI-1)"
        for rule in rules:
            if rule.get("when") == "never":
                continue
            condition = rule.get("if", "")
            on_main = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH" in condition
            scheduled = '$CI_PIPELINE_SOURCE == "schedule"' in condition
            assert on_main or scheduled, f"{name}: rule {rule} lets a production job run off main (CI-1)"


# --- Scenarios: which jobs run, with which role (GitLab's rules, as gitlab-ci-local evaluates them) ----

# Variables that make gitlab-ci-local see each kind of pipeline; the repository is on `main`.
SCENARIOS: dict[str, list[str]] = {
    "default branch": [],
    "branch push": ["--variable", "CI_COMMIT_BRANCH=feature", "--variable", "CI_COMMIT_REF_NAME=feature"],
    "merge request": ["--variable", "CI_PIPELINE_SOURCE=merge_request_event", "--unset-variable", "CI_COMMIT_BRANCH",
                      "--variable", "CI_MERGE_REQUEST_IID=1"],
    "tag": ["--variable", "CI_COMMIT_TAG=v1.0.0", "--unset-variable", "CI_COMMIT_BRANCH"],
    "scheduled destroy": ["--variable", "CI_PIPELINE_SOURCE=schedule", "--variable", "SCHEDULED_JOB=destroy-ephemeral"],
    "scheduled drift": ["--variable", "CI_PIPELINE_SOURCE=schedule", "--variable", "SCHEDULED_JOB=drift"],
    "scheduled audit": ["--variable", "CI_PIPELINE_SOURCE=schedule", "--variable", "SCHEDULED_JOB=audit"],
    "DEPLOY_ENV=prod on a branch": ["--variable", "CI_COMMIT_BRANCH=feature", "--variable", "DEPLOY_ENV=prod"],
    "DEPLOY_ENV=prod on main": ["--variable", "DEPLOY_ENV=prod"],
    "TRIVY_IMAGE set": ["--variable", "TRIVY_IMAGE=evil.example/trivy:1"],
}
# The jobs each scenario must hold, the prod-role jobs it may hold (all of them manual,
# non-blocking, in the protected production environment: a person starts them), and the jobs
# that must read with the read-only prod-plan role (IAM-1: what nobody starts, drift included).
PROD_MANUAL = {"terraform-apply-prod", "deploy-prod"}
EXPECTED: dict[str, tuple[set[str], set[str], set[str]]] = {
    "default branch": ({"build-image", "scan-image", "promote-image", "terraform-apply-dev", "deploy-dev"},
                       PROD_MANUAL, {"terraform-plan-prod"}),
    "branch push": ({"build-image", "scan-image"}, set(), set()),
    "merge request": ({"lint", "terraform-plan-dev", "terraform-plan-persistent"}, set(), set()),
    "tag": ({"build-image", "scan-image"}, set(), set()),
    "scheduled destroy": ({"destroy-ephemeral"}, set(), set()),
    "scheduled drift": ({"terraform-drift-persistent", "terraform-drift-prod"}, set(),
                        {"terraform-drift-persistent", "terraform-drift-prod"}),
    "scheduled audit": ({"pip-audit", "trivy-fs", "semgrep", "resolve-deployed-images", "rescan-deployed-image"},
                        set(), set()),
    "DEPLOY_ENV=prod on a branch": ({"build-image"}, set(), set()),
    "DEPLOY_ENV=prod on main": ({"deploy-dev"}, PROD_MANUAL, {"terraform-plan-prod"}),
    "TRIVY_IMAGE set": ({"scan-image"}, PROD_MANUAL, {"terraform-plan-prod"}),
}


# IAM-1: the promote role writes deployable tags and trusts the default branch alone; a job that
# assumes it anywhere else would fail at AssumeRoleWithWebIdentity, and what follows it with it.
PROMOTING = {"default branch", "DEPLOY_ENV=prod on main", "TRIVY_IMAGE set"}


PREDEFINED = "CI_COMMIT_BRANCH,CI_COMMIT_REF_NAME,CI_PIPELINE_SOURCE,CI_MERGE_REQUEST_IID,CI_COMMIT_TAG"


def listed(repo: Path, *args: str) -> dict[str, dict[str, Any]]:
    proc = gitlab_ci_local(repo, "--list-json", "--ignore-predefined-vars", PREDEFINED, *args)
    assert proc.returncode == 0, output(proc)
    return {job["name"]: job for job in json.loads(proc.stdout) if job["when"] != "never"}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_scenario_runs_the_expected_jobs_with_the_expected_role(
    ci_repo: Path, expanded: dict[str, Any], scenario: str
) -> None:
    every = jobs(expanded)
    running = listed(ci_repo, *SCENARIOS[scenario])
    required, prod_allowed, plan_required = EXPECTED[scenario]
    assert required | plan_required <= set(running), (
        f"{scenario}: {sorted((required | plan_required) - set(running))} do not run")
    role = {name: role_of(every[name.split(":")[0]]) for name in running}
    prod = {name for name in running if role[name] == "prod"}
    assert prod <= prod_allowed, f"{scenario}: {sorted(prod - prod_allowed)} reach the prod role (IAM-1)"
    for name in prod:
        job = every[name]
        assert (job.get("environment") or {}).get("name") == "production", f"{name}: outside the protected environment"
        # IAM-1: schedules included, the prod role is reached only by a job a person starts.
        assert running[name]["when"] == "manual" and running[name]["allow_failure"] is True, (
            f"{scenario}: {name} uses the prod role without a person starting it, or blocks the pipeline"
        )
    plan = {name for name in running if role[name] == "prod-plan"}
    assert plan == plan_required, f"{scenario}: read-only prod-plan jobs {sorted(plan)}, expected {sorted(plan_required)}"
    promote = {name for name in running if role[name] == "promote"}
    assert promote == ({"promote-image"} if scenario in PROMOTING else set()), (
        f"{scenario}: {sorted(promote)} assume the promote role (default branch only, IAM-1)")
    if scenario not in PROMOTING:
        assert "promote-image" not in running, f"{scenario}: promotes, but only the default branch writes <sha> (IAM-1)"
        assert not {"deploy-dev", "deploy-prod"} & set(running), f"{scenario}: a deploy without a promoted image"


@pytest.mark.parametrize("scenario", ["default branch", "DEPLOY_ENV=prod on main"])
def test_deploy_dev_waits_for_no_manual_job(ci_repo: Path, scenario: str) -> None:
    """A manual job in `rules` blocks the stages after it, and a `needs` on a manual job waits for it."""
    running = listed(ci_repo, *SCENARIOS[scenario])
    assert running["deploy-dev"]["when"] == "on_success", "the default branch deploys dev by itself"
    stages = [s for s in STAGES]
    deploy = stages.index("deploy")
    blocking = [n for n, j in running.items() if j["when"] == "manual" and not j["allow_failure"]
                and stages.index(j["stage"]) < deploy]
    assert not blocking, f"blocking manual jobs before deploy-dev: {blocking} (allow_failure: true)"
    needs = [n["job"] if isinstance(n, dict) else n for n in running["deploy-dev"].get("needs") or []]
    assert needs, "deploy-dev has no `needs`: it waits for every manual job of earlier stages"
    seen, todo = set(), list(needs)
    while todo:
        name = todo.pop()
        if name in seen or name not in running:
            continue
        seen.add(name)
        assert running[name]["when"] != "manual", f"deploy-dev needs {name}, a manual job"
        todo += [n["job"] if isinstance(n, dict) else n for n in running[name].get("needs") or []]
    assert "promote-image" in seen, "deploy-dev deploys the promoted image: it needs promote-image"


def test_every_manual_rule_is_non_blocking(expanded: dict[str, Any]) -> None:
    for name, job in jobs(expanded).items():
        for rule in job.get("rules") or []:
            if rule.get("when") == "manual":
                assert rule.get("allow_failure") is True, f"{name}: a manual rule without allow_failure: true blocks"


def test_long_terraform_jobs_have_a_timeout(expanded: dict[str, Any]) -> None:
    every = jobs(expanded)
    for name in ("terraform-apply-dev", "terraform-apply-prod", "terraform-apply-persistent", "destroy-ephemeral"):
        timeout = str(every[name].get("timeout", ""))
        match = re.fullmatch(r"(\d+)h(?: ?(\d+)m)?|(\d+)m", timeout)
        minutes = (int(match[1]) * 60 + int(match[2] or 0)) if match and match[1] else int(match[3]) if match else 0
        assert minutes >= 90, f"{name}: timeout {timeout!r}; EKS + Multi-AZ RDS need more than GitLab's 60 min"


@pytest.fixture
def fake_aws(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An `aws` on PATH that records the role it is called with, and refuses everything."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "aws.log"
    (bin_dir / "aws").write_text(f'#!/usr/bin/env bash\necho "$AWS_ROLE_ARN $*" >> {log}\nexit 3\n')
    (bin_dir / "aws").chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    return log, {"PATH": f"{bin_dir}:{__import__('os').environ['PATH']}", "PROJECT": str(project)}


def head_of(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def run_job(repo: Path, env: dict[str, str], job: str, *variables: str) -> subprocess.CompletedProcess[str]:
    """The job in the shell executor, with the OIDC token GitLab would issue for the repository's HEAD."""
    ignored = "CI_PROJECT_DIR,CI_COMMIT_SHA" if any(v.startswith("CI_COMMIT_SHA=") for v in variables) else "CI_PROJECT_DIR"
    args = ["--force-shell-executor", "--variable", f"AWS_ID_TOKEN={id_token(head_of(repo))}",
            "--variable", f"CI_PROJECT_DIR={env['PROJECT']}", "--ignore-predefined-vars", ignored]
    for variable in variables:
        args += ["--variable", variable]
    return run_shell_job(repo, [*args, job], {"PATH": env["PATH"]})


@pytest.mark.parametrize(
    ("job", "variable"),
    [("deploy-dev", "DEPLOY_ENV=prod"), ("scan-image", "TRIVY_IMAGE=evil.example/trivy:1"),
     ("terraform-apply-dev", "TF_IMAGE=evil.example/terraform:1"), ("deploy-dev", "aws_environment=prod"),
     # Options the tools read from the environment (Terraform docs, "Environment Variables"; Trivy
     # pkg/flag/options.go; osscontainertools/kaniko cmd/executor/cmd/root.go; the AWS CLI).
     ("terraform-apply-persistent", "TF_VAR_default_branch=evil"), ("terraform-plan-dev", "TF_CLI_ARGS_plan=-destroy"),
     ("terraform-apply-dev", "TF_CLI_ARGS=-auto-approve"), ("terraform-apply-prod", "TF_CLI_CONFIG_FILE=/tmp/evil.tfrc"),
     ("terraform-drift-prod", "TF_WORKSPACE=other"), ("scan-image", "TRIVY_SCANNERS=secret"),
     ("deploy-prod", "AWS_ENDPOINT_URL=https://evil.example"), ("build-image", "KANIKO_REGISTRY_MAP=evil.example"),
     ("build-image", "FF_KANIKO_CACHE_LOOKAHEAD=1")],
)
def test_a_user_set_variable_fails_closed(ci_repo: Path, fake_aws: tuple[Path, dict[str, str]], job: str,
                                          variable: str) -> None:
    log, env = fake_aws
    proc = run_job(ci_repo, env, job, variable)
    text = proc.stdout + proc.stderr
    name = variable.split("=")[0]
    # gitlab-ci-local says WARN for a failed job that may fail (the manual prod jobs, allow_failure: true).
    assert re.search(rf"(FAIL|WARN)\s+{job}", text), f"{job} ran with {variable}\n{output(proc)}"
    assert f"{name} is set by a pipeline, project or group variable" in text, output(proc)
    assert not log.exists(), f"{job} called AWS with {variable}: {log.read_text()}"
    assert not Path(env["PROJECT"], ".aws-web-identity-token").exists(), "the OIDC token was written"


@pytest.mark.parametrize("job", ["deploy-dev", "deploy-prod", "promote-image"])
def test_a_commit_sha_other_than_the_tokens_fails_closed(ci_repo: Path, fake_aws: tuple[Path, dict[str, str]],
                                                         job: str) -> None:
    """A pipeline variable overrides predefined ones too: CI_COMMIT_SHA=<other> would deploy an
    unreviewed build. The OIDC token's `sha` claim is GitLab's, signed (CI-2)."""
    log, env = fake_aws
    other = "0" * 40 if head_of(ci_repo) != "0" * 40 else "1" * 40
    proc = run_job(ci_repo, env, job, f"CI_COMMIT_SHA={other}")
    text = proc.stdout + proc.stderr
    assert re.search(rf"(FAIL|WARN)\s+{job}", text), f"{job} ran with CI_COMMIT_SHA={other}\n{output(proc)}"
    assert "is not the commit of this pipeline's OIDC token" in text, output(proc)
    assert not log.exists(), f"{job} called AWS: {log.read_text()}"


def test_without_the_variable_the_same_job_assumes_its_own_role(ci_repo: Path,
                                                                fake_aws: tuple[Path, dict[str, str]]) -> None:
    """The harness above would see a call: the same job, left alone, reaches AWS with the dev role."""
    log, env = fake_aws
    proc = run_job(ci_repo, env, "deploy-dev")
    calls = log.read_text().splitlines() if log.exists() else []
    assert calls and all(call.split()[0].endswith("-gitlab-dev") for call in calls), output(proc)


@pytest.mark.parametrize("job", ["terraform-drift-prod", "terraform-drift-persistent"])
def test_scheduled_drift_runs_with_the_read_only_role(ci_repo: Path, fake_aws: tuple[Path, dict[str, str]],
                                                      job: str) -> None:
    """IAM-1: the drift schedule, which nobody starts, reaches AWS as prod-plan and plans without
    the lock (the role cannot write it). A fake `terraform` records the role of each call."""
    log, env = fake_aws
    bin_dir = Path(env["PATH"].split(":", 1)[0])
    (bin_dir / "terraform").write_text(f'#!/usr/bin/env bash\necho "$AWS_ROLE_ARN terraform $*" >> {log}\n')
    (bin_dir / "apk").write_text("#!/usr/bin/env bash\nexit 0\n")  # the image's package manager, not needed here
    for name in ("terraform", "apk"):
        (bin_dir / name).chmod(0o755)
    proc = run_job(ci_repo, env, job, "CI_PIPELINE_SOURCE=schedule", "SCHEDULED_JOB=drift")
    calls = log.read_text().splitlines() if log.exists() else []
    assert calls, f"{job} never reached terraform\n{output(proc)}"
    roles = {call.split()[0].rsplit("/", 1)[-1] for call in calls}
    slug = answers_of(ci_repo)["project_slug"]
    assert roles == {f"{slug}-gitlab-prod-plan"}, f"{job} assumed {roles}, not the read-only role (IAM-1)"
    plans = [call for call in calls if " plan " in f"{call} "]
    assert plans and all("-lock=false" in call for call in plans), f"{job} would write the state lock: {plans}"


def test_derived_values_are_exported_in_before_script(service: Path) -> None:
    before = "\n".join(map(str, raw_ci(service)[".aws-oidc"]["before_script"]))
    for name in DERIVED:
        assert re.search(rf"export (\w+=\S+ )*{name}=", before), f"{name} must be exported in before_script (CI-2)"
    for path in ci_files(service):
        for key, value in _variables_blocks(yaml.load(path.read_text(), Loader=CiLoader)):
            overridable = set(DERIVED) & set(value)
            assert not overridable, f"{path.name} {key}: {overridable} under variables: can be overridden (CI-2)"


def _variables_blocks(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    blocks = [("variables", document.get("variables") or {})]
    blocks += [
        (f"{name}.variables", job["variables"])
        for name, job in document.items()
        if isinstance(job, dict) and isinstance(job.get("variables"), dict)
    ]
    return blocks


def test_checks_are_interruptible_and_infrastructure_is_not(expanded: dict[str, Any]) -> None:
    for name, job in jobs(expanded).items():
        stage = job.get("stage")
        if name in OWN_JOBS and stage in {"lint", "test", "audit"}:
            assert job.get("interruptible") is True, f"{name} should be interruptible"
        if stage in {"infrastructure", "teardown", "deploy"} or name == "promote-image":
            assert not job.get("interruptible", False), f"{name} must never be interrupted (TF-1)"


# --- SEC-1, SEC-2, DEP-2: audits ----------------------------------------------------------------


def test_audit_stage_runs_every_audit(expanded: dict[str, Any]) -> None:
    audit = "\n".join(script_text(j) for j in jobs(expanded).values() if j.get("stage") == "audit")
    assert re.search(r"pip-audit .*--strict", audit), "pip-audit without --strict passes on lookup failures (SEC-1)"
    assert "trivy fs" in audit and "--exit-code 1" in audit, "trivy fs must block (SEC-1)"
    assert "semgrep scan --config p/security-audit" in audit and "--error" in audit, "semgrep must block (SEC-1)"
    assert "scripts/check_dependency_policy.py" in audit, "dependency policy check (SEC-2)"
    assert "scripts/check_trivyignore.py" in audit, "CVE exception check (SEC-4)"
    assert not any(j.get("allow_failure") for j in jobs(expanded).values() if j.get("stage") == "audit")


def test_every_pip_audit_is_strict(service: Path) -> None:
    for path in [*ci_files(service), service / "Makefile"]:
        for line in path.read_text().splitlines():
            if re.search(r"\bpip-audit\s+-", line) and not line.lstrip().startswith("#"):
                assert "--strict" in line, f"{path.name}: `{line.strip()}` passes silently without --strict (SEC-1)"


def test_lint_checks_declared_dependencies(service: Path, expanded: dict[str, Any]) -> None:
    assert "make lint" in script_text(jobs(expanded)["lint"])
    assert re.search(r"^\t\$\(BIN\)/deptry ", (service / "Makefile").read_text(), re.M), "deptry in make lint (DEP-2)"


def test_make_audit_runs_the_pipeline_audits(service: Path) -> None:
    proc = run(["make", "-n", "audit"], cwd=service)
    assert proc.returncode == 0, output(proc)
    for command in (
        "pip-audit --strict",
        "trivy fs",
        "semgrep scan --config p/security-audit",
        "scripts/check_dependency_policy.py",
        "scripts/check_trivyignore.py",
    ):
        assert command in proc.stdout, f"make audit does not run {command} (DEP-2, SEC-1)"


def test_dependency_policy_passes_on_the_lock(service: Path) -> None:
    python = python_for(str(answers_of(service)["python_version"]))
    proc = run([python, "scripts/check_dependency_policy.py", "requirements.txt", "requirements-dev.txt"], cwd=service)
    assert proc.returncode == 0, output(proc)


@pytest.mark.parametrize(
    ("lock", "package"), [("transitive-passlib.txt", "passlib"), ("python-jose-with-extras.txt", "python-jose")]
)
def test_dependency_policy_refuses_abandoned_packages(service: Path, lock: str, package: str) -> None:
    proc = run(["python3", str(service / "scripts/check_dependency_policy.py"), str(FIXTURES / "locks" / lock)])
    assert proc.returncode == 1, output(proc)
    assert package in proc.stderr and "SEC-2" in proc.stderr, output(proc)


def test_dependency_policy_accepts_the_replacements(service: Path) -> None:
    proc = run(["python3", str(service / "scripts/check_dependency_policy.py"), str(FIXTURES / "locks" / "clean.txt")])
    assert proc.returncode == 0, output(proc)


# --- SEC-4: CVE exceptions -----------------------------------------------------------------------

BAD_TRIVYIGNORE = {
    "bad-no-statement.yaml": "no 'statement'",
    "bad-empty-statement.yaml": "no 'statement'",
    "bad-no-expiry.yaml": "no 'expired_at'",
    "bad-misspelt-expiry.yaml": "unknown key 'expires_at'",
    "bad-expired.yaml": "expired on 2026-09-30",
    "bad-expires-today.yaml": "expired on 2026-11-01",
    "bad-far-expiry.yaml": "more than 366 days away",
    "bad-not-a-date.yaml": "not a YYYY-MM-DD date",
    "bad-quoted-date.yaml": "unquoted date",
    "bad-section-typo.yaml": "unknown section 'vulnerability'",
}


def check_trivyignore(service: Path, file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    python = python_for(str(answers_of(service)["python_version"]))
    return run([python, str(service / "scripts" / "check_trivyignore.py"), str(file), *extra])


def test_the_generated_trivyignore_passes_today(service: Path) -> None:
    proc = check_trivyignore(service, service / ".trivyignore.yaml")
    assert proc.returncode == 0, output(proc)


def test_trivyignore_check_accepts_the_good_fixture(service: Path) -> None:
    proc = check_trivyignore(service, FIXTURES / "trivyignore" / "good.yaml", "--today", FIXTURE_TODAY)
    assert proc.returncode == 0, output(proc)


@pytest.mark.parametrize(("fixture", "message"), BAD_TRIVYIGNORE.items(), ids=list(BAD_TRIVYIGNORE))
def test_trivyignore_check_refuses_bad_entries(service: Path, fixture: str, message: str) -> None:
    proc = check_trivyignore(service, FIXTURES / "trivyignore" / fixture, "--today", FIXTURE_TODAY)
    assert proc.returncode == 1, output(proc)
    assert message in proc.stderr, output(proc)


def _load_checker(service: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_trivyignore", service / "scripts" / "check_trivyignore.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fixture", sorted(p.name for p in (FIXTURES / "trivyignore").glob("*.yaml")))
def test_trivyignore_reader_agrees_with_pyyaml(service: Path, fixture: str) -> None:
    """The check reads YAML with the standard library only; it must read what a YAML parser reads."""
    checker = _load_checker(service)
    text = (FIXTURES / "trivyignore" / fixture).read_text()
    sections, unknown = checker.parse(text)
    ours = {key: [entry.values for entry in entries] for key, entries in sections.items()}
    theirs = {key: value or [] for key, value in yaml.safe_load(text).items()}
    theirs = json.loads(json.dumps(theirs, default=str))
    assert ours == theirs
    assert unknown == [key for key in theirs if key not in checker.SECTIONS]


def _trivy_config(ignorefile: Path, context: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    proc = run(
        [
            tool("trivy"),
            "config",
            "--skip-check-update",
            "--quiet",
            "--format",
            "json",
            "--ignorefile",
            str(ignorefile),
            str(context),
        ]
    )
    found = []
    if proc.returncode == 0 and "FATAL" not in proc.stderr:
        found = [
            m["ID"] for r in json.loads(proc.stdout).get("Results") or [] for m in r.get("Misconfigurations") or []
        ]
    return proc, found


@pytest.fixture(scope="module")
def root_dockerfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build context whose Dockerfile Trivy flags (DS-0002: runs as root)."""
    context = tmp_path_factory.mktemp("root-image")
    (context / "Dockerfile").write_text('FROM python:3.12-slim\nCMD ["python"]\n')
    return context


@pytest.mark.parametrize(
    "fixture",
    ["good.yaml", "bad-no-statement.yaml", "bad-no-expiry.yaml", "bad-misspelt-expiry.yaml", "bad-expired.yaml"],
)
def test_trivy_itself_reads_the_fixtures(fixture: str, root_dockerfile: Path) -> None:
    """The fixtures are Trivy's real format: Trivy loads them (and accepts the ones the check refuses)."""
    proc, found = _trivy_config(FIXTURES / "trivyignore" / fixture, root_dockerfile)
    assert proc.returncode == 0 and "FATAL" not in proc.stderr, output(proc)
    assert "DS-0002" in found


def test_trivy_honours_the_generated_format(service: Path, root_dockerfile: Path, tmp_path: Path) -> None:
    """An entry in the generated file's format really suppresses the finding in Trivy."""
    proc, found = _trivy_config(service / ".trivyignore.yaml", root_dockerfile)
    assert proc.returncode == 0 and "FATAL" not in proc.stderr, output(proc)
    assert "DS-0002" in found
    expiry = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    ignorefile = tmp_path / ".trivyignore.yaml"
    ignorefile.write_text(
        (service / ".trivyignore.yaml")
        .read_text()
        .replace(
            "misconfigurations: []",
            f"misconfigurations:\n  - id: DS-0002\n    statement: Test image only.\n    expired_at: {expiry}",
        )
    )
    assert check_trivyignore(service, ignorefile).returncode == 0
    proc, found = _trivy_config(ignorefile, root_dockerfile)
    assert proc.returncode == 0, output(proc)
    assert "DS-0002" not in found, "Trivy did not apply the entry: the file is not in Trivy's format (SEC-4)"


# --- CI-1: every variable documented -------------------------------------------------------------


def _referenced_variables(service: Path) -> set[str]:
    names: set[str] = set()
    for path in ci_files(service):
        text = path.read_text()
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
        for _, block in _variables_blocks(yaml.load(text, Loader=CiLoader)):
            names |= {k for k in block if re.fullmatch(r"[A-Z][A-Z0-9_]*", k)}
        names |= set(re.findall(r"^\s*([A-Z][A-Z0-9_]*): \[", text, re.M))  # parallel:matrix keys
    return names


def _documented(service: Path) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in (service / "docs" / "ci-variables.md").read_text().splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
                rows[name] = cells
    return rows


def test_every_pipeline_variable_is_documented(service: Path) -> None:
    docs = (service / "docs" / "ci-variables.md").read_text()
    rows = _documented(service)
    missing = []
    for name in sorted(_referenced_variables(service)):
        if name.startswith(("CI_", "GITLAB_")) or name == "CI":
            if f"`{name}`" not in docs:
                missing.append(name)
        elif name not in rows:
            missing.append(name)
    assert not missing, f"docs/ci-variables.md does not list {missing} (CI-1)"


def test_documented_variables_carry_their_flags(service: Path) -> None:
    rows = _documented(service)
    for name, cells in rows.items():
        if len(cells) == 6 and cells[3] in {"yes", "no", "n/a"}:
            assert cells[4] in {"yes", "no", "n/a"} and cells[5] in {"yes", "no", "n/a"}, f"{name}: {cells}"
        elif len(cells) == 6:
            pytest.fail(f"{name}: masked/protected/hidden must be yes, no or n/a: {cells} (CI-1)")
    variables_rows = {n for n, c in rows.items() if len(c) == 6}
    assert {"SCHEDULED_JOB", "PIP_CACHE_DIR", "AWS_ROLE_ARN", "DEPLOY_ENV"} <= variables_rows


# --- The real thing: gitlab-ci-local runs lint and test here -------------------------------------


def test_gitlab_ci_local_runs_lint_and_test(ci_repo: Path, service: Path, test_database_url: str,
                                            tmp_path: Path) -> None:
    """The lint and test jobs as written, with the shell executor, against CI's PostgreSQL.

    The only changes: the `postgres` service gives way to the PostgreSQL already running here (it
    is removed from a copy of the file, since images are never variables), and variables point the
    job at that database and name this machine's interpreter for the Makefile.
    """
    repo = tmp_path / ci_repo.name
    shutil.copytree(ci_repo, repo, ignore=shutil.ignore_patterns(".gitlab-ci-local"))
    pipeline = repo / ".gitlab-ci.yml"
    text, count = re.subn(r"\n  services:\n    - name: postgres:\S+\n      alias: postgres\n", "\n", pipeline.read_text())
    assert count == 1, "the test job's postgres service moved: update this test"
    pipeline.write_text(text)
    git(repo, "commit", "-qam", "no service")
    ci_repo = repo
    url = urlsplit(test_database_url)
    version = str(answers_of(service)["python_version"])
    variables = {
        "PYTHON": python_for(version),
        "PIP_CACHE_DIR": str(Path.home() / ".cache" / "pip"),
        "POSTGRES_HOST": url.hostname or "localhost",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_DB": url.path.lstrip("/"),
        "POSTGRES_USER": url.username or "",
        "POSTGRES_PASSWORD": url.password or "",
    }
    args = [arg for key, value in variables.items() for arg in ("--variable", f"{key}={value}")]
    proc = gitlab_ci_local(ci_repo, "--force-shell-executor", *args, "lint", "test", timeout=1200)
    # pip's complaints about this machine's index settings would push the real error out of view.
    proc.stdout = "\n".join(line for line in proc.stdout.splitlines() if "WARNING: Location" not in line)
    assert proc.returncode == 0, output(proc)
    combined = proc.stdout + proc.stderr
    assert re.search(r"PASS\s+lint", combined) and re.search(r"PASS\s+test", combined), output(proc)
    assert "postgresql+psycopg://" in combined or "TEST_DATABASE_URL" in combined
    report = ET.parse(ci_repo / "junit.xml").getroot()
    suite = report if report.tag == "testsuite" else report.find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["tests"] > 0 and counts["failures"] == counts["errors"] == 0, counts
    assert counts["skipped"] == 0, f"tests skipped in the CI job (PostgreSQL not reached?): {counts}"
