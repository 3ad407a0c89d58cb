"""A leading zero in the AWS account ID survives every path into and out of the service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import COPIER, REQUIRED, TEMPLATE_ROOT, commit_all, generate, output, release, run, snapshot_template

ACCOUNT = "012345670123"  # also a valid octal literal: YAML 1.1 would read it as 1402433619
REGISTRY = f"{ACCOUNT}.dkr.ecr.eu-west-3.amazonaws.com"


def stored_account(dst: Path) -> object:
    return yaml.safe_load((dst / ".copier-answers.yml").read_text())["ecr_account_id"]


def test_data_flag_keeps_the_zero(tmp_path: Path) -> None:
    dst = tmp_path / "service"
    proc = run(
        [
            *COPIER, "copy", "--trust", "--defaults", "--vcs-ref", "HEAD",
            "--data", "project_name=Zero", "--data", f"ecr_account_id={ACCOUNT}",
            "--data", "gitlab_project_path=g/zero", str(TEMPLATE_ROOT), str(dst),
        ]
    )  # fmt: skip
    assert proc.returncode == 0, output(proc)
    assert stored_account(dst) == ACCOUNT
    assert REGISTRY in (dst / "README.md").read_text()
    assert f"ecr_account_id: '{ACCOUNT}'" in (dst / ".copier-answers.yml").read_text(), (
        "quoted, so YAML 1.2 readers do not see a number"
    )


def test_data_file_keeps_a_quoted_zero(tmp_path: Path) -> None:
    data_file = tmp_path / "answers.yml"
    data_file.write_text(f"project_name: Zero\necr_account_id: '{ACCOUNT}'\ngitlab_project_path: g/zero\n")
    dst = tmp_path / "service"
    proc = run([*COPIER, "copy", "--trust", "--defaults", "--vcs-ref", "HEAD", "--data-file", str(data_file),
                str(TEMPLATE_ROOT), str(dst)])  # fmt: skip
    assert proc.returncode == 0, output(proc)
    assert stored_account(dst) == ACCOUNT


def test_data_file_with_an_unquoted_octal_account_is_refused_not_mangled(tmp_path: Path) -> None:
    data_file = tmp_path / "answers.yml"
    data_file.write_text(f"project_name: Zero\necr_account_id: {ACCOUNT}\ngitlab_project_path: g/zero\n")
    dst = tmp_path / "service"
    proc = run([*COPIER, "copy", "--trust", "--defaults", "--vcs-ref", "HEAD", "--data-file", str(data_file),
                str(TEMPLATE_ROOT), str(dst)])  # fmt: skip
    assert proc.returncode != 0
    assert "exactly 12 digits" in proc.stderr
    assert not dst.exists()


def test_update_keeps_the_zero(tmp_path: Path) -> None:
    template = snapshot_template(tmp_path / "template")
    release(template, "0.1.0")
    dst = generate(tmp_path / "service", {**REQUIRED, "ecr_account_id": ACCOUNT}, src=template, vcs_ref="0.1.0")
    commit_all(dst, "generated")
    (template / "template" / "NEW_PRACTICE.md").write_text("a practice added in 0.2.0\n")
    release(template, "0.2.0")
    proc = run([*COPIER, "update", "--trust", "--defaults", "--skip-answered"], cwd=dst)
    assert proc.returncode == 0, output(proc)
    assert stored_account(dst) == ACCOUNT
    assert REGISTRY in (dst / "README.md").read_text()
    assert yaml.safe_load((dst / ".copier-answers.yml").read_text())["_commit"] == "0.2.0"
    assert (dst / "NEW_PRACTICE.md").exists()


@pytest.mark.parametrize("account", ["000000000001", "123456789012"])
def test_any_twelve_digits_are_accepted(tmp_path: Path, account: str) -> None:
    dst = generate(tmp_path / "service", {**REQUIRED, "ecr_account_id": account})
    assert stored_account(dst) == account
