"""Every input and output of a terraform-aws-modules module the stacks use exists at the pinned tag.

tests/fixtures/modules/<module>/<version>/ holds variables.tf and outputs.tf of that release, taken
from the module's repository at tag v<version> (commit in COMMIT), with its LICENSE (Apache-2.0).
A version bump that renames an input fails here, not at apply; bumping a version means adding its
interface files beside the old ones.
"""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "modules"
_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
META = {"source", "version", "providers", "depends_on", "count", "for_each"}


def _parse(path: Path) -> dict:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


def _interface(source: str, version: str) -> tuple[set[str], set[str], Path]:
    name = source.split("/")[1]
    folder = FIXTURES / name / version
    assert (folder / "variables.tf").is_file(), f"no interface files for {source} {version} in {folder}"
    assert "Apache License" in (folder / "LICENSE").read_text(), f"{folder}: the module's licence must be kept"
    inputs = {label for block in _parse(folder / "variables.tf").get("variable", []) for label in block}
    outputs = {label for block in _parse(folder / "outputs.tf").get("output", []) for label in block}
    return inputs, outputs, folder


def _object_keys(variables_tf: Path, variable: str) -> set[str]:
    """Attribute names of a variable's `map(object({...}))` type, first level only."""
    text = variables_tf.read_text()
    body = text[text.index(f'variable "{variable}"'):]
    body = body[:body.index("\n}\n")]
    return set(re.findall(r"^\s{4}([a-z_0-9]+)\s*=", body, flags=re.MULTILINE))


@pytest.mark.parametrize("stack", ["ephemeral", "persistent", "bootstrap"])
def test_module_arguments_and_outputs_exist_at_the_pinned_tag(service: Path, stack: str) -> None:
    root = service / "infra" / "terraform" / stack
    modules: dict[str, dict] = {}
    for path in sorted(root.glob("*.tf")):
        for block in _parse(path).get("module", []):
            modules.update(block)
    code = "\n".join(re.sub(r"#.*", "", p.read_text()) for p in root.glob("*.tf"))
    for label, body in modules.items():
        inputs, outputs, folder = _interface(body["source"], body["version"])
        unknown = set(body) - META - inputs
        assert not unknown, f"{stack}: module {label} ({body['source']} {body['version']}) has no input {unknown}"
        used = set(re.findall(rf"\bmodule\.{label}\.([a-z_0-9]+)", code))
        missing = used - outputs
        assert not missing, f"{stack}: module {label} has no output {missing} at {body['version']}"
        if "eks_managed_node_groups" in body:
            keys = _object_keys(folder / "variables.tf", "eks_managed_node_groups")
            for group, settings in body["eks_managed_node_groups"].items():
                assert not set(settings) - keys, f"node group {group}: unknown settings {set(settings) - keys}"
        if "addons" in body:
            text = (folder / "variables.tf").read_text()
            addon_type = text[text.index('variable "addons"'):]
            addon_keys = set(re.findall(r"^\s{4}([a-z_0-9]+)\s*=", addon_type[:addon_type.index("\n}\n")], flags=re.MULTILINE))
            for addon, settings in body["addons"].items():
                assert not set(settings) - addon_keys, f"addon {addon}: unknown settings {set(settings) - addon_keys}"


def test_interface_check_catches_a_renamed_input(tmp_path: Path) -> None:
    """eks v21 dropped the cluster_ prefix: the v20 name must be reported as unknown."""
    inputs, _, _ = _interface("terraform-aws-modules/eks/aws", "21.17.0")
    assert "cluster_name" not in inputs and "name" in inputs
