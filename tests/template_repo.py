"""Machine and git helpers shared by the tests (conftest.py) and the benchmark (bench/run.py).

Standard library only, so `python bench/run.py` needs nothing from pytest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


def pyenv_selection() -> dict[str, str]:
    """PYENV_VERSION selecting every installed 3.x, unless one is already chosen.

    pyenv's python3.12/python3.13 shims answer only for selected versions; the services'
    Makefiles and CI jobs call them by those names.
    """
    if "PYENV_VERSION" in os.environ or not (PYENV_ROOT / "versions").is_dir():
        return {}
    versions = sorted(p.name for p in (PYENV_ROOT / "versions").glob("3.1[1-9].*") if p.name[-1].isdigit())
    return {"PYENV_VERSION": ":".join(versions)} if versions else {}


def find_python(version: str) -> str | None:
    """An interpreter of ``version`` that runs, from PATH or an installed pyenv version."""
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(map(str, PYENV_ROOT.glob(f"versions/{version}.*/bin/python{version}")), reverse=True)
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def snapshot_template(dst: Path) -> Path:
    """A clean git repository holding this template as it is on disk now (committed or not).

    `copier update` needs the template at a commit it can check out again later; the working
    tree under test may have uncommitted changes, so tests and the benchmark release from a
    snapshot instead.
    """
    files = git(TEMPLATE_ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        source = TEMPLATE_ROOT / name
        if source.is_file():
            target = dst / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    commit_all(dst, "snapshot of the template under test")
    return dst


def release(template: Path, version: str, message: str = "") -> None:
    """Commit whatever changed in a template repository and tag it with a PEP 440 version."""
    git(template, "add", "-A")
    git(template, "commit", "-qm", message or f"release {version}", "--allow-empty")
    git(template, "tag", version)


def commit_all(repo: Path, message: str) -> None:
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


# --- Running the generated service as its image runs it ---------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def container_command(dockerfile: Path) -> list[str]:
    """The runtime stage's CMD (exec form), as the container starts the server."""
    commands = re.findall(r"^CMD\s+(\[.*\])\s*$", dockerfile.read_text(), re.MULTILINE)
    if not commands:
        raise ValueError(f"no exec-form CMD in {dockerfile}")
    return list(json.loads(commands[-1]))


def on_loopback(cmd: list[str], port: int) -> list[str]:
    """The same command, bound to 127.0.0.1 and `port` instead of 0.0.0.0:8000."""
    out = list(cmd)
    for flag, value in (("--host", LOOPBACK), ("--port", str(port))):
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out
