"""The generated Dockerfile and .dockerignore (SEC-3, DEP-1), for every answer combination.

There is no Docker engine here, so the image's two commands are performed the way the Dockerfile
states them: the builder's `pip install` line runs against the lock it names, the runtime's COPY
lines assemble its working directory, and its CMD starts the server on the port it EXPOSEs; then
`/health` must answer 200. Change the CMD, the port or the install line and this breaks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from conftest import answers_of, output, python_for, run, tool

# Fixed with the Kubernetes part: container port 8000 (CONTRACTS.md), the module the app serves.
CONTAINER_PORT = 8000
APP_MODULE = "app.main:app"
# RUN-2: where the image keeps the RDS CA bundle and what it must hash to (docs/CONTRACTS.md).
RDS_CA_BUNDLE = "/opt/rds/global-bundle.pem"
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
RDS_CA_BUNDLE_SHA256 = "e5bb2084ccf45087bda1c9bffdea0eb15ee67f0b91646106e466714f9de3c7e3"
COMPILERS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|cc)\b")


# --- A small Dockerfile reader ---------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not logical:
            start = number
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, args = logical.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), start)
        logical = ""
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].lower() == "as" else str(len(stages))
            stages.append(Stage(parts[0], name))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def exec_form(instruction: Instruction) -> list[str]:
    try:
        value = json.loads(instruction.args)
    except json.JSONDecodeError:
        pytest.fail(f"line {instruction.line}: {instruction.keyword} must use the exec (JSON) form (SEC-3)")
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def copy_parts(instruction: Instruction) -> tuple[dict[str, str], list[str], str]:
    """`COPY --from=x a b dest` -> ({'from': 'x'}, ['a', 'b'], 'dest')."""
    words = shlex.split(instruction.args)
    flags = {w[2:].split("=", 1)[0]: w.split("=", 1)[1] for w in words if w.startswith("--")}
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


@dataclass
class Image:
    """What the Dockerfile says the image does, read from the generated service."""

    stages: list[Stage]
    builder: Stage
    runtime: Stage

    @classmethod
    def of(cls, service: Path) -> Image:
        stages = parse_dockerfile((service / "Dockerfile").read_text())
        assert len(stages) >= 2, "the Dockerfile must be multi-stage: a builder and a runtime (SEC-3)"
        runtime = stages[-1]
        sources = {copy_parts(c)[0].get("from") for c in runtime.all("COPY")} - {None}
        assert len(sources) == 1, f"the runtime copies from exactly one builder stage, not {sources} (SEC-3)"
        (builder,) = [s for s in stages if s.name in sources]
        return cls(stages, builder, runtime)

    @property
    def install(self) -> Instruction:
        runs = [r for r in self.builder.all("RUN") if re.search(r"\bpip install\b", r.args)]
        assert len(runs) == 1, f"the builder installs the lock in one RUN, found {len(runs)} (DEP-1)"
        return runs[0]

    @property
    def install_argv(self) -> list[str]:
        argv = shlex.split(self.install.args)
        assert "&&" not in argv and ";" not in self.install.args, "the install RUN is one command"
        return argv

    @property
    def venv(self) -> PurePosixPath:
        """The virtualenv the builder installs into: the pip that runs the install."""
        pip = PurePosixPath(self.install_argv[0])
        assert pip.name == "pip" and pip.parent.name == "bin", (
            f"the install must run the virtualenv's own pip, not {pip} (SEC-3: a venv copied whole)"
        )
        return pip.parent.parent

    def requirements_file(self, service: Path) -> Path:
        """The file of the build context that the install's `-r` names, followed through COPY."""
        argv = self.install_argv
        assert "-r" in argv, "the install reads a requirements file with -r (DEP-1)"
        target = PurePosixPath(argv[argv.index("-r") + 1])
        workdir = PurePosixPath("/")
        for instruction in self.builder.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = workdir / instruction.args
            if instruction.keyword == "COPY" and instruction.line < self.install.line:
                _, sources, dest = copy_parts(instruction)
                destination = workdir / dest
                for source in sources:
                    lands = destination / PurePosixPath(source).name if dest.endswith("/") else destination
                    if lands == workdir / target:
                        return service / source
        pytest.fail(f"no COPY before line {self.install.line} puts {target} in the builder (DEP-1)")

    @property
    def cmd(self) -> list[str]:
        (cmd,) = self.runtime.all("CMD")
        return exec_form(cmd)

    @property
    def exposed(self) -> list[int]:
        return [int(p.split("/")[0]) for e in self.runtime.all("EXPOSE") for p in e.args.split()]

    @property
    def workdir(self) -> PurePosixPath:
        workdir = PurePosixPath("/")
        for instruction in self.runtime.all("WORKDIR"):
            workdir = workdir / instruction.args
        return workdir


def cmd_option(cmd: list[str], option: str) -> str:
    assert option in cmd, f"CMD {cmd} has no {option}"
    return cmd[cmd.index(option) + 1]


# --- Structure (SEC-3) -----------------------------------------------------------------------


def test_both_stages_are_the_answered_slim_python(service: Path) -> None:
    image = Image.of(service)
    expected = f"python:{answers_of(service)['python_version']}-slim"
    for stage in (image.builder, image.runtime):
        tag, _, digest = stage.base.partition("@")
        assert tag == expected, f"{stage.name} FROM {stage.base}, expected {expected} (SEC-3)"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{stage.name} FROM {stage.base}: no digest (SUP-1)"
    assert image.builder.base == image.runtime.base, "both stages on the same base, so the venv runs where it was built"


def test_every_from_and_ci_image_is_pinned_by_tag_and_digest(service: Path) -> None:
    """`name:tag@sha256:<64 hex>`: the digest runs, the tag is for people and Renovate (SUP-1)."""
    import yaml

    pinned = re.compile(r"[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9][A-Za-z0-9._-]*@sha256:[0-9a-f]{64}")
    images = [(f"Dockerfile:{s.name}", s.base) for s in Image.of(service).stages]

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))
    for path in [service / ".gitlab-ci.yml", *sorted((service / ".gitlab" / "ci").glob("*.yml"))]:
        for name, job in yaml.load(path.read_text(), Loader=Loader).items():  # noqa: S506 (SafeLoader subclass)
            if not isinstance(job, dict):
                continue
            image = job.get("image")
            found = [image.get("name") if isinstance(image, dict) else image]
            found += [s.get("name") if isinstance(s, dict) else s for s in job.get("services") or []]
            images += [(f"{path.name}:{name}", str(i)) for i in found if i]
    assert len(images) >= 10, images
    loose = [(where, image) for where, image in images if not pinned.fullmatch(image)]
    assert not loose, f"images not pinned as name:tag@sha256:<digest> (SUP-1): {loose}"


def test_runtime_gets_only_the_virtualenv_and_the_app(service: Path) -> None:
    image = Image.of(service)
    from_builder = [copy_parts(c) for c in image.runtime.all("COPY") if "from" in copy_parts(c)[0]]
    assert [(paths, dest) for _, paths, dest in from_builder] == [
        ([str(image.venv)], str(image.venv)),
        ([RDS_CA_BUNDLE], RDS_CA_BUNDLE),
    ], f"the runtime must copy the builder's virtualenv {image.venv} whole and the RDS CA bundle, nothing else (SEC-3)"
    installs = " ".join(r.args for r in image.runtime.all("RUN"))
    assert "pip install" not in installs, "the runtime installs nothing: packages come from the builder (SEC-3)"
    assert not COMPILERS.search(installs), f"no compiler in the runtime stage (SEC-3): {installs}"
    assert any(str(image.venv / "bin") in e.args and "PATH" in e.args for e in image.runtime.all("ENV")), (
        "the runtime puts the virtualenv first on PATH so CMD finds uvicorn"
    )


def test_runs_as_a_numeric_non_root_user(service: Path) -> None:
    users = Image.of(service).runtime.all("USER")
    assert users, "the runtime stage has no USER: the process would run as root (SEC-3)"
    user = users[-1].args
    assert re.fullmatch(r"[0-9]+(:[0-9]+)?", user), f"USER {user} must be numeric for runAsNonRoot (SEC-3)"
    assert all(int(part) != 0 for part in user.split(":")), f"USER {user} is root (SEC-3)"


def test_serves_the_app_on_the_contract_port(service: Path) -> None:
    image = Image.of(service)
    cmd = image.cmd
    assert cmd[0] == "uvicorn" and cmd[1] == APP_MODULE, f"CMD {cmd} must start uvicorn {APP_MODULE} (SEC-3)"
    assert cmd_option(cmd, "--host") == "0.0.0.0", "the server must listen on every interface of the pod"
    assert int(cmd_option(cmd, "--port")) == CONTAINER_PORT, f"CMD must serve port {CONTAINER_PORT} (CONTRACTS.md)"
    assert image.exposed == [CONTAINER_PORT], f"EXPOSE {image.exposed} must be [{CONTAINER_PORT}]"


def test_install_uses_the_hashed_lock(service: Path) -> None:
    image = Image.of(service)
    argv = image.install_argv
    assert argv[1] == "install"
    assert "--require-hashes" in argv, "the image installs with --require-hashes (DEP-1)"
    assert image.requirements_file(service).name == "requirements.txt", "the image installs the runtime lock (DEP-1)"


def test_code_changes_do_not_reinstall_dependencies(service: Path) -> None:
    image = Image.of(service)
    before_install = [c for c in image.builder.all("COPY") if c.line < image.install.line]
    copied = [path for c in before_install for path in copy_parts(c)[1]]
    assert copied == ["requirements.txt"], f"only the lock may be copied before the install, not {copied}"
    runtime_copies = image.runtime.all("COPY")
    venv_copy = next(c for c in runtime_copies if "from" in copy_parts(c)[0])
    app_copy = next(c for c in runtime_copies if "app" in copy_parts(c)[1])
    assert venv_copy.line < app_copy.line, "the virtualenv layer must come before the code layer"


# --- .dockerignore ---------------------------------------------------------------------------


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for token in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        parts.append({"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token)))
    return re.compile("".join(parts) + "$")


def ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = PurePosixPath(path).parts
    candidates = [str(PurePosixPath(*parts[:n])) for n in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _dockerignore_regex(pattern[1:] if negated else pattern)
        if any(regex.match(candidate) for candidate in candidates):
            result = not negated
    return result


def dockerignore(service: Path) -> list[str]:
    lines = (service / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_dockerignore_keeps_what_the_image_copies(service: Path) -> None:
    patterns = dockerignore(service)
    image = Image.of(service)
    for stage in (image.builder, image.runtime):
        for instruction in stage.all("COPY"):
            flags, sources, _ = copy_parts(instruction)
            if "from" in flags:
                continue
            for source in sources:
                assert (service / source).exists(), f"COPY {source}: not in the generated service"
                files = (
                    [source]
                    if (service / source).is_file()
                    else [str(p.relative_to(service)) for p in (service / source).rglob("*.py")]
                )
                kept = [f for f in files if not ignored(patterns, f)]
                assert kept, f"COPY {source} (line {instruction.line}) is excluded by .dockerignore"


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".venv/bin/python",
        ".git/config",
        ".aws-web-identity-token",
        "tests/conftest.py",
        "infra/terraform/persistent/main.tf",
        "app/__pycache__/main.cpython-312.pyc",
    ],
)
def test_dockerignore_keeps_secrets_and_tooling_out(service: Path, path: str) -> None:
    assert ignored(dockerignore(service), path), f"{path} would be sent to the image build context"


# --- Real tools ------------------------------------------------------------------------------


def test_hadolint_is_clean(service: Path) -> None:
    proc = run([tool("hadolint"), "--no-color", "Dockerfile"], cwd=service)
    assert proc.returncode == 0, output(proc)


def test_trivy_config_finds_no_high_or_critical(service: Path, tmp_path: Path) -> None:
    shutil.copy(service / "Dockerfile", tmp_path / "Dockerfile")
    proc = run(
        [
            tool("trivy"),
            "config",
            "--skip-check-update",
            "--quiet",
            "--exit-code",
            "1",
            "--severity",
            "HIGH,CRITICAL",
            "--format",
            "json",
            str(tmp_path),
        ]
    )
    assert proc.returncode == 0, output(proc)
    report = json.loads(proc.stdout)
    results = report.get("Results") or []
    failures = [m for r in results for m in r.get("Misconfigurations") or [] if m["Status"] == "FAIL"]
    assert not failures, [f"{m['ID']} {m['Title']}" for m in failures]


# --- The image's commands, performed as written ----------------------------------------------


@pytest.fixture(scope="session")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, list[str], Path], Path]:
    """One virtualenv per (Python, install line, lock) for the session, made as the builder makes it."""
    root = tmp_path_factory.mktemp("image-venvs")
    made: dict[str, Path] = {}

    def make(version: str, install_argv: list[str], requirements: Path) -> Path:
        key = hashlib.sha256(f"{version}\0{install_argv}\0".encode() + requirements.read_bytes()).hexdigest()[:16]
        if key not in made:
            venv = root / f"py{version}-{key}"
            proc = run([python_for(version), "-m", "venv", str(venv)])
            assert proc.returncode == 0, output(proc)
            argv = [str(venv / "bin" / "pip"), *install_argv[1:]]
            argv[argv.index("-r") + 1] = str(requirements)
            proc = run([*argv, "--disable-pip-version-check", "-q"], timeout=900)
            assert proc.returncode == 0, f"the Dockerfile's install line fails:\n{output(proc)}"
            made[key] = venv
        return made[key]

    return make


def assemble_workdir(service: Path, image: Image, destination: Path) -> Path:
    """The runtime's working directory, built from its COPY lines (not from the whole service)."""
    workdir = destination / image.workdir.relative_to("/")
    workdir.mkdir(parents=True)
    for instruction in image.runtime.all("COPY"):
        flags, sources, dest = copy_parts(instruction)
        if "from" in flags:
            continue
        for source in sources:
            target = workdir / dest
            if (service / source).is_dir():
                shutil.copytree(service / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target = target / Path(source).name if dest.endswith("/") else target
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(service / source, target)
    return workdir


def wait_for_free_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("0.0.0.0", port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"port {port} stays busy; the image's CMD needs it")
        time.sleep(0.5)


def _placeholder_bundle(folder: Path) -> Path:
    """Stands in for /opt/rds/global-bundle.pem: /health opens no database connection."""
    bundle = folder / "global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    return bundle


@pytest.fixture
def started(service: Path, runtime_venv, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:  # type: ignore[no-untyped-def]
    image = Image.of(service)
    version = str(answers_of(service)["python_version"])
    venv = runtime_venv(version, image.install_argv, image.requirements_file(service))
    workdir = assemble_workdir(service, image, tmp_path / "rootfs")
    wait_for_free_port(int(cmd_option(image.cmd, "--port")))
    wait_for_free_port(CONTAINER_PORT)
    env = {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "PYTHONDONTWRITEBYTECODE": "1",
        # What the Deployment sets (CONTRACTS.md); /health needs no database.
        "ENVIRONMENT": "prod",
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": os.environ.get("TEST_DATABASE_URL") or "postgresql+psycopg://nobody@127.0.0.1:9/none",
        "SECRET_KEY": secrets.token_urlsafe(48),
        # RUN-2: prod refuses to start without it; the Deployment points it at the image's bundle.
        "DATABASE_SSL_ROOT_CERT": str(_placeholder_bundle(tmp_path)),
    }
    server = subprocess.Popen(
        image.cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # Asked where Kubernetes asks (containerPort 8000), not where CMD says it listens.
        yield CONTAINER_PORT, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_image_cmd_serves_health(started: tuple[int, subprocess.Popen[str]]) -> None:
    port, server = started
    deadline = time.monotonic() + 60
    last_error = ""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            logs = server.stdout.read() if server.stdout else ""
            pytest.fail(f"the image's CMD exited with {server.returncode} (SEC-3):\n{logs[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                assert response.status == 200
                assert json.loads(response.read()) == {"status": "ok"}
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_error = str(error)
        time.sleep(0.3)
    pytest.fail(f"GET /health on port {port} never answered 200: {last_error}")


# --- checkov (dockerfile, gitlab_ci, secrets) ----------------------------------------------------

# The files of the image and the pipeline; checkov also scans the rest of the service.
IMAGE_AND_PIPELINE_FILES = [
    "Dockerfile",
    ".dockerignore",
    ".gitlab-ci.yml",
    ".trivyignore.yaml",
    "docs/ci-variables.md",
    "scripts/check_trivyignore.py",
    "scripts/check_dependency_policy.py",
]


def checkov_failures(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.stdout.strip(), output(proc)
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return [
        f"{check['check_id']} {check['file_path']}:{check['file_line_range']} {check.get('check_name', '')}"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]


def test_checkov_finds_nothing(service: Path) -> None:
    # Run from the parent: the service's own .checkov.yaml adds frameworks this test is not about.
    proc = run(
        [tool("checkov"), "-d", service.name, "--framework", "dockerfile", "gitlab_ci", "secrets",
         "--skip-download", "--quiet", "--output", "json"],
        cwd=service.parent,
    )
    failures = checkov_failures(proc)
    assert not failures, "checkov failed checks:\n" + "\n".join(failures)


def test_checkov_finds_no_secret_in_any_image_or_pipeline_file(service: Path) -> None:
    # By default checkov's secrets scan reads only files another framework parses; this reads all.
    # From the parent again, or the service's .checkov.yaml would add its whole directory.
    files = [arg for name in IMAGE_AND_PIPELINE_FILES for arg in ("-f", f"{service.name}/{name}")]
    proc = run(
        [tool("checkov"), *files, "--framework", "secrets", "--enable-secret-scan-all-files",
         "--skip-download", "--quiet", "--output", "json"],
        cwd=service.parent,
    )
    failures = checkov_failures(proc) if proc.stdout.strip() else []
    assert not failures, "secrets in the image or pipeline files:\n" + "\n".join(failures)


def test_every_suppression_says_why(service: Path) -> None:
    for name in IMAGE_AND_PIPELINE_FILES:
        for number, line in enumerate((service / name).read_text().splitlines(), start=1):
            for skip in re.findall(r"checkov:skip=(\S+)", line):
                assert re.fullmatch(r"[A-Z0-9_]+:\S.*", skip + line.split(skip, 1)[1]), (
                    f"{name}:{number}: `checkov:skip` needs an inline reason: `checkov:skip=CKV_X:why`"
                )
            if "hadolint ignore=" in line:
                assert re.search(r"hadolint ignore=\S+\s+.*\S", line), f"{name}:{number}: hadolint ignore without a reason"
            assert "nosemgrep" not in line or re.search(r"nosemgrep\S*\s*[:-]\s*\S", line), f"{name}:{number}"


# --- SUP-1: no pip anywhere in the runtime image -------------------------------------------------


def _replay(instruction: Instruction, prefixes: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    """A RUN instruction's shell command, with each image prefix mapped to a folder standing in for it."""
    command = instruction.args
    for prefix, folder in prefixes.items():
        command = command.replace(prefix, str(folder))
    return run(["bash", "-euc", command])


def _pips(root: Path) -> list[str]:
    found = [p for p in root.rglob("*") if re.match(r"pip(\d[\d.]*)?($|-.*\.(whl|dist-info)$)", p.name)]
    return sorted(str(p.relative_to(root)) for p in found)


def test_runtime_image_has_no_pip(service: Path, tmp_path: Path) -> None:
    """The runtime is the slim base's /usr/local plus the builder's /opt/venv: pip must be in neither.

    /usr/local is stood in for by a prefix that has what python:<version>-slim has there: an
    interpreter with pip in its site-packages and ensurepip's bundled pip wheel. /opt/venv is a
    virtualenv made as the builder makes it. Every RUN of the Dockerfile that names one of them,
    other than the lock install, is replayed on the stand-ins, in order.
    """
    image = Image.of(service)
    version = str(answers_of(service)["python_version"])
    python = python_for(version)
    usr_local = tmp_path / "usr-local"
    proc = run([python, "-m", "venv", str(usr_local)])
    assert proc.returncode == 0, output(proc)
    ensurepip = Path(run([python, "-c", "import ensurepip, os; print(os.path.dirname(ensurepip.__file__))"])
                     .stdout.strip())
    shutil.copytree(ensurepip, usr_local / "lib" / f"python{version}" / "ensurepip")
    venv = tmp_path / "opt-venv"
    proc = run([python, "-m", "venv", str(venv)])
    assert proc.returncode == 0, output(proc)
    assert _pips(usr_local) and _pips(venv), "the stand-ins must start with pip, as the real prefixes do"

    prefixes = {"/usr/local": usr_local, str(image.venv): venv}
    for stage in (image.builder, image.runtime):
        for instruction in stage.all("RUN"):
            if instruction is image.install or not any(p in instruction.args for p in prefixes):
                continue
            if stage is image.builder and "venv" in instruction.args and "pip" not in instruction.args:
                continue  # `python -m venv /opt/venv`: the stand-in is already made
            proc = _replay(instruction, prefixes)
            assert proc.returncode == 0, f"line {instruction.line} fails when replayed\n{output(proc)}"
    assert not _pips(venv), f"pip left in {image.venv}, which the runtime copies whole (SUP-1): {_pips(venv)}"
    assert not _pips(usr_local), f"pip left in the base image's /usr/local (SUP-1): {_pips(usr_local)}"


# --- RUN-2: the RDS CA bundle, fetched at build time and pinned by SHA-256 ---------------------------


def _bundle_step(service: Path) -> Instruction:
    image = Image.of(service)
    (step,) = [r for r in image.builder.all("RUN") if RDS_CA_BUNDLE_URL in r.args]
    return step


def _replay_bundle_step(step: Instruction, source: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    """The step as the builder runs it (`python` of the slim image), from a local copy instead of AWS."""
    argv = shlex.split(step.args)
    assert argv[:2] == ["python", "-c"], f"line {step.line}: the bundle step runs python's urllib, slim has no curl"
    argv = [sys.executable, *argv[1:]]
    argv[argv.index(RDS_CA_BUNDLE_URL)] = source.as_uri()
    argv[argv.index(RDS_CA_BUNDLE)] = str(dest)
    return run(argv)


def test_run2_the_bundle_step_pins_the_published_checksum(service: Path) -> None:
    argv = shlex.split(_bundle_step(service).args)
    assert argv[-3:] == [RDS_CA_BUNDLE_URL, RDS_CA_BUNDLE_SHA256, RDS_CA_BUNDLE], (
        "RUN-2: the bundle comes from AWS's trust store, pinned by the checksum docs/CONTRACTS.md establishes"
    )


def test_run2_the_bundle_step_keeps_a_matching_file_and_refuses_a_tampered_one(service: Path, tmp_path: Path) -> None:
    step = _bundle_step(service)
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    # Pinned to this file's digest, the step writes it where the runtime copies it from.
    honest = Instruction(step.keyword, step.args.replace(RDS_CA_BUNDLE_SHA256, digest), step.line)
    kept = tmp_path / "kept" / "global-bundle.pem"
    proc = _replay_bundle_step(honest, bundle, kept)
    assert proc.returncode == 0, output(proc)
    assert kept.read_bytes() == bundle.read_bytes()
    # One byte changed: the build stops, names both digests, and writes nothing.
    bundle.write_bytes(bundle.read_bytes().replace(b"MIIB", b"MIIC"))
    refused = tmp_path / "refused" / "global-bundle.pem"
    proc = _replay_bundle_step(honest, bundle, refused)
    assert proc.returncode != 0 and digest in output(proc) and "refused" in output(proc), output(proc)
    assert not refused.exists(), "RUN-2: a bundle that does not match the pin must not reach the image"
