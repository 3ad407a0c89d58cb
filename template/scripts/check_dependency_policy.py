"""Fail when an abandoned package is anywhere in the lock files (SEC-2).

pip-audit only reports known CVEs; an abandoned package has none until someone finds one, and
nobody will publish the fix. The lock files list every package the service installs, direct or
transitive, so the check reads them rather than requirements*.in.

Usage: python scripts/check_dependency_policy.py [LOCK_FILE ...]
(default: every requirements*.txt next to this project's Makefile). Standard library only, so it
runs in any Python image before anything is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Normalised package name -> why it is refused and what to use instead.
FORBIDDEN: dict[str, str] = {
    "passlib": "abandoned since 2020 and broken by bcrypt 5; hash with `bcrypt` directly",
    "python-jose": "barely maintained with open CVEs; use `PyJWT`",
}

# `name==1.2.3 \`, `name[extra]==1.2.3 ; python_version < "3.13"`, `name @ https://...`
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==|===|@|~=|>=|<=|!=|<|>|;|\\|$)")


def normalise(name: str) -> str:
    """PEP 503 name: `Python_Jose` and `python.jose` are the same package as `python-jose`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def packages_in(lock_file: Path) -> dict[str, int]:
    """Every package a pip-compile lock file pins, with the line it is on."""
    found: dict[str, int] = {}
    for number, line in enumerate(lock_file.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-", "--")):
            continue  # comments, `# via` notes, `--hash=` continuations, `-r`/`-c` options
        match = _REQUIREMENT.match(stripped)
        if match:
            found.setdefault(normalise(match.group(1)), number)
    return found


def violations(lock_files: list[Path]) -> list[str]:
    problems = []
    for lock_file in lock_files:
        for name, line in sorted(packages_in(lock_file).items()):
            if name in FORBIDDEN:
                problems.append(f"{lock_file.name}:{line}: {name} is not allowed: {FORBIDDEN[name]} (SEC-2)")
    return problems


def main(argv: list[str]) -> int:
    lock_files = [Path(arg) for arg in argv] or sorted(PROJECT_ROOT.glob("requirements*.txt"))
    if not lock_files:
        print(f"no requirements*.txt in {PROJECT_ROOT}: nothing proves the policy holds (SEC-2)", file=sys.stderr)
        return 1
    missing = [str(path) for path in lock_files if not path.is_file()]
    if missing:
        print(f"lock file not found: {', '.join(missing)}", file=sys.stderr)
        return 1
    problems = violations(lock_files)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    names = ", ".join(path.name for path in lock_files)
    print(f"dependency policy: none of {', '.join(sorted(FORBIDDEN))} in {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
