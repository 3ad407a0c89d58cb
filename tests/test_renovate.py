"""renovate.json of the generated service: valid, sees every pinned version, automerges only what it may.

Renovate silently ignores a key it does not know and a regex that matches nothing, so beyond the
schema this module checks every key against the schema's properties, runs each custom manager's
regex over the generated files, and replays the package rules (later rules win, as in Renovate)
for the updates that matter: a dev tool's patch merges itself, the base image and Trivy never do.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import answers_of, output, run, tool


def config(service: Path) -> dict:
    return json.loads((service / "renovate.json").read_text())


def check_jsonschema() -> str:
    beside_python = Path(sys.executable).parent / "check-jsonschema"
    return str(beside_python) if beside_python.exists() else tool("check-jsonschema")


def test_renovate_json_is_valid_for_renovate(service: Path) -> None:
    proc = run([check_jsonschema(), "--builtin-schema", "vendor.renovate", str(service / "renovate.json")])
    assert proc.returncode == 0, output(proc)


def test_every_key_is_one_renovate_knows(service: Path) -> None:
    import check_jsonschema.builtin_schemas as schemas

    schema = json.loads((Path(schemas.__file__).parent / "vendor" / "renovate.json").read_text())
    known = set(schema["properties"]) | {"$schema"}
    rule_keys = set(schema["definitions"]["packageRules"]["items"]["allOf"][0]["properties"])
    manager_keys = set(schema["definitions"]["customManagers"]["items"]["allOf"][0]["properties"])
    cfg = config(service)
    assert not set(cfg) - known, f"unknown top-level keys: {set(cfg) - known}"
    for rule in cfg["packageRules"]:
        assert not set(rule) - rule_keys, f"unknown packageRules keys: {set(rule) - rule_keys}"
        assert rule.get("description"), f"every rule says why: {rule}"
    for manager in cfg["customManagers"]:
        assert not set(manager) - manager_keys, f"unknown customManagers keys: {set(manager) - manager_keys}"


def _files(service: Path, patterns: list[str]) -> list[Path]:
    regexes = [re.compile(p.strip("/")) for p in patterns]
    return [p for p in sorted(service.rglob("*")) if p.is_file() and ".git" not in p.parts
            and any(r.search(str(p.relative_to(service))) for r in regexes)]


def extracted(service: Path) -> list[dict[str, str]]:
    """What Renovate's custom regex managers extract from the generated files."""
    found = []
    for manager in config(service)["customManagers"]:
        for path in _files(service, manager["managerFilePatterns"]):
            for pattern in manager["matchStrings"]:
                for match in re.finditer(pattern.replace("(?<", "(?P<"), path.read_text()):
                    found.append({"file": str(path.relative_to(service)),
                                  "depName": match.groupdict().get("depName") or manager["depNameTemplate"],
                                  "currentValue": match["currentValue"],
                                  "datasource": manager["datasourceTemplate"]})
    return found


def gitlabci_images(service: Path) -> list[tuple[str, str]]:
    """(file, image) for what Renovate's gitlabci manager reads: every `image:` and `services:` name."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))
    found = []
    for path in [service / ".gitlab-ci.yml", *sorted((service / ".gitlab" / "ci").glob("*.yml"))]:
        for job in yaml.load(path.read_text(), Loader=Loader).values():  # noqa: S506 (SafeLoader subclass)
            if not isinstance(job, dict):
                continue
            image = job.get("image")
            names = [image.get("name") if isinstance(image, dict) else image]
            names += [s.get("name") if isinstance(s, dict) else s for s in job.get("services") or []]
            found += [(path.name, str(name)) for name in names if name]
    return found


def test_custom_managers_find_every_version_the_managers_cannot(service: Path) -> None:
    deps = {(d["depName"], d["currentValue"]) for d in extracted(service)}
    names = {name for name, _ in deps}
    images = gitlabci_images(service)
    assert len(images) >= 6, f"expected the pipeline's tool images, found {images}"
    for file, image in images:
        # The gitlabci manager reads literal images only; one behind a variable is never updated.
        assert "$" not in image, f"{file}: Renovate would never update {image}"
    for expected in ("kubernetes/kubernetes", "external-secrets", "aws-load-balancer-controller", "checkov"):
        assert expected in names, f"Renovate would never update {expected}: {sorted(deps)}"
    variables = (service / "infra/terraform/ephemeral/variables.tf").read_text()
    for dep, variable in (("external-secrets", "external_secrets_chart_version"),
                          ("aws-load-balancer-controller", "lb_controller_chart_version")):
        (value,) = [v for n, v in deps if n == dep]
        assert re.search(rf'variable "{variable}" {{[^}}]*default\s*=\s*"{re.escape(value)}"', variables)
    (checkov,) = [v for n, v in deps if n == "checkov"]
    assert f'"checkov=={checkov}"' in (service / ".pre-commit-config.yaml").read_text()


def test_managers_cover_the_locks_images_and_terraform(service: Path) -> None:
    cfg = config(service)
    assert set(cfg["enabledManagers"]) == {"pip-compile", "dockerfile", "gitlabci", "terraform", "custom.regex"}
    locks = _files(service, cfg["pip-compile"]["managerFilePatterns"])
    assert [p.name for p in locks] == ["requirements-dev.txt", "requirements.txt"]
    for lock in locks:
        # Renovate re-runs the command it reads in the header, so the sources must be named there.
        header = lock.read_text().split("\n#\n", 2)[1]
        assert "pip-compile" in header and f"--output-file={lock.name}" in header and ".in" in header, header
    ci = _files(service, cfg["gitlabci"]["managerFilePatterns"])
    assert {p.name for p in ci} >= {".gitlab-ci.yml", "terraform.yml", "kubernetes.yml"}


# --- Package rules, replayed ----------------------------------------------------------------------


def _matches(patterns: list[str], value: str) -> bool:
    positive = [p for p in patterns if not p.startswith("!")]
    if any(fnmatch.fnmatchcase(value, p[1:]) for p in patterns if p.startswith("!")):
        return False
    return not positive or any(fnmatch.fnmatchcase(value, p) for p in positive)


def settings_for(service: Path, update: dict[str, str]) -> dict[str, object]:
    """The options Renovate applies to one update: every matching rule in order, later ones win."""
    fields = {"matchManagers": "manager", "matchFileNames": "file", "matchPackageNames": "package",
              "matchDatasources": "datasource", "matchUpdateTypes": "updateType", "matchDepTypes": "depType"}
    cfg = config(service)
    result: dict[str, object] = {"automerge": cfg.get("automerge", False), "enabled": True}
    for rule in cfg["packageRules"]:
        conditions = {k: v for k, v in rule.items() if k.startswith("match")}
        assert set(conditions) <= set(fields), f"this test cannot replay {set(conditions) - set(fields)}"
        if all(_matches(v, update.get(fields[k], "")) for k, v in conditions.items()):
            result.update({k: v for k, v in rule.items() if not k.startswith("match") and k != "description"})
    return result


UPDATES = {
    "dev tool patch": ({"manager": "pip-compile", "file": "requirements-dev.in", "package": "ruff",
                        "datasource": "pypi", "updateType": "patch"}, True),
    "dev tool minor": ({"manager": "pip-compile", "file": "requirements-dev.in", "package": "ruff",
                        "datasource": "pypi", "updateType": "minor"}, False),
    "checkov patch": ({"manager": "regex", "file": ".pre-commit-config.yaml", "package": "checkov",
                       "datasource": "pypi", "updateType": "patch"}, True),
    "runtime patch": ({"manager": "pip-compile", "file": "requirements.in", "package": "fastapi",
                       "datasource": "pypi", "updateType": "patch"}, False),
    "base image patch": ({"manager": "dockerfile", "file": "Dockerfile", "package": "python",
                          "datasource": "docker", "updateType": "patch"}, False),
    "base image digest": ({"manager": "dockerfile", "file": "Dockerfile", "package": "python",
                           "datasource": "docker", "updateType": "digest"}, False),
    "trivy patch": ({"manager": "gitlabci", "file": ".gitlab-ci.yml", "package": "aquasec/trivy",
                     "datasource": "docker", "updateType": "patch"}, False),
    "kaniko patch": ({"manager": "gitlabci", "file": ".gitlab-ci.yml", "package": "ghcr.io/osscontainertools/kaniko",
                      "datasource": "docker", "updateType": "patch"}, False),
    "provider minor": ({"manager": "terraform", "file": "infra/terraform/ephemeral/versions.tf",
                        "package": "hashicorp/aws", "datasource": "terraform-provider", "depType": "required_provider",
                        "updateType": "minor"}, False),
}


@pytest.mark.parametrize("case", list(UPDATES))
def test_only_dev_tool_patches_merge_themselves(service: Path, case: str) -> None:
    update, automerge = UPDATES[case]
    assert settings_for(service, update)["automerge"] is automerge, f"{case}: automerge must be {automerge}"


def test_trivy_waits_and_comes_alone(service: Path) -> None:
    trivy = settings_for(service, {"manager": "gitlabci", "file": ".gitlab-ci.yml", "package": "aquasec/trivy",
                                   "datasource": "docker", "updateType": "patch"})
    assert "groupName" not in trivy and trivy["minimumReleaseAge"] == "14 days", trivy
    kaniko = settings_for(service, {"manager": "gitlabci", "file": ".gitlab-ci.yml", "datasource": "docker",
                                    "package": "ghcr.io/osscontainertools/kaniko", "updateType": "minor"})
    assert kaniko["groupName"] == "CI tool images"


def test_versions_that_are_copier_answers_are_left_to_copier_update(service: Path) -> None:
    python_minor = settings_for(service, {"manager": "dockerfile", "file": "Dockerfile", "package": "python",
                                          "datasource": "docker", "updateType": "minor"})
    assert python_minor["enabled"] is False, f"python_version {answers_of(service)['python_version']} is an answer"
    kubectl_minor = settings_for(service, {"manager": "gitlabci", "file": ".gitlab/ci/kubernetes.yml",
                                           "package": "alpine/k8s", "datasource": "docker", "updateType": "minor"})
    assert kubectl_minor["enabled"] is False, "kubectl follows kubernetes_version, an answer"
    docs = (service / "docs" / "updates.md").read_text()
    assert "copier update --trust --defaults --skip-answered --data python_version=" in docs and "Renovate" in docs


@pytest.mark.parametrize(("manager", "file", "package"), [("dockerfile", "Dockerfile", "python"),
                                                       ("gitlabci", ".gitlab-ci.yml", "aquasec/trivy"),
                                                       ("gitlabci", ".gitlab/ci/terraform.yml", "hashicorp/terraform")])
def test_renovate_pins_every_image_by_digest(service: Path, manager: str, file: str, package: str) -> None:
    """Renovate adds the digest beside the tag and keeps both current (SUP-1)."""
    update = {"manager": manager, "file": file, "package": package, "datasource": "docker", "updateType": "patch"}
    assert settings_for(service, update).get("pinDigests") is True or config(service).get("pinDigests") is True
    assert config(service).get("pinDigests") is True, "pinDigests: true pins the images Renovate does not yet pin"
