"""Every AWS name or name prefix the stacks (and the modules they call) create fits AWS's limit,
for the longest slug the questions accept, in the environment with the longest name.

Limits: IAM role name 64, role name_prefix 38 (64 minus the provider's 26-character suffix,
terraform-provider-aws internal/service/iam/role.go), IAM policy name 128, S3 bucket 63,
RDS instance identifier 63, RDS snapshot identifier 255, EKS cluster name 100, ECR repository 256,
Secrets Manager secret 512, security group 255, KMS alias 256.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hcl2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "extensions"))
from template import SLUG_MAX_LENGTH

_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
ROLE, ROLE_PREFIX, POLICY = 64, 38, 128


def _blocks(root: Path) -> dict[str, list]:
    merged: dict[str, list] = {}
    for path in sorted(root.glob("*.tf")):
        with path.open() as handle:
            for kind, blocks in hcl2.load(handle, serialization_options=_OPTIONS).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def _render(value: str, slug: str) -> str:
    text = value.replace("${local.name}", "${var.project_slug}-${var.environment}")
    text = text.replace("${local.state_bucket}", "${var.project_slug}-tfstate-${var.account_id}")
    text = text.replace("${var.project_slug}", slug).replace("${var.environment}", "prod")
    text = text.replace("${var.account_id}", "0" * 12).replace("${each.key}", "prod-plan")  # the longest CI role key
    assert "${" not in text, f"name not resolved: {value}"
    return text


def test_longest_slug_fits_every_aws_name(service: Path) -> None:
    slug = "a" * (SLUG_MAX_LENGTH - 1) + "z"
    tf = service / "infra" / "terraform"
    names: list[tuple[str, str, int]] = []  # (what, rendered name, limit)

    for stack in ("bootstrap", "persistent", "ephemeral"):
        blocks = _blocks(tf / stack)
        limits = {"aws_iam_role": ROLE, "aws_iam_policy": POLICY, "aws_s3_bucket": 63, "aws_ecr_repository": 256,
                  "aws_secretsmanager_secret": 512, "aws_security_group": 255, "aws_kms_alias": 256}
        for block in blocks.get("resource", []):
            for kind, instances in block.items():
                for label, body in instances.items():
                    for attribute in ("name", "bucket"):
                        value = body.get(attribute)
                        if kind in limits and isinstance(value, str) and "boundary_names" not in value:
                            names.append((f"{stack} {kind}.{label}", _render(body[attribute], slug), limits[kind]))
        for block in blocks.get("locals", []):
            for key, value in block.items():
                if key == "boundary_names":
                    names += [(f"boundary {k}", _render(v, slug), POLICY) for k, v in value.items()]
        for block in blocks.get("module", []):
            for label, body in block.items():
                source = body["source"]
                if source.endswith("/eks/aws"):
                    names.append(("eks cluster", _render(body["name"], slug), 100))
                    role = _render(body["iam_role_name"], slug)
                    rule = '${length("${local.name}-cluster-") <= 38}'
                    assert body.get("iam_role_use_name_prefix") in (False, rule), "cluster role prefix unchecked"
                    prefixed = body["iam_role_use_name_prefix"] == rule and len(role + "-") <= ROLE_PREFIX
                    limit = ROLE_PREFIX if prefixed else ROLE
                    names.append(("eks cluster role", role + ("-" if prefixed else ""), limit))
                    names.append(("eks encryption policy prefix",
                                  _render(body["iam_role_name"], slug) + "-ClusterEncryption-", POLICY - 26))
                    for group, settings in body["eks_managed_node_groups"].items():
                        limit = ROLE if settings.get("iam_role_use_name_prefix") is False else ROLE_PREFIX
                        names.append((f"node group {group} role", _render(settings["iam_role_name"], slug), limit))
                elif source.endswith("/eks-pod-identity/aws"):
                    prefixed = body.get("use_name_prefix", True) is not False
                    role = _render(body["name"], slug) + ("-" if prefixed else "")
                    names.append((f"{label} role", role, ROLE_PREFIX if prefixed else ROLE))
                    for policy in ("ExternalSecrets", "AWSLoadBalancerController"):
                        names.append((f"{label} policy", _render(body["policy_name_prefix"], slug) + policy, POLICY))
                elif source.endswith("/rds/aws"):
                    identifier = _render(body["identifier"], slug)
                    names.append(("rds identifier", identifier, 63))
                    snapshot = f"{_render(body['final_snapshot_identifier_prefix'], slug)}-{identifier}-{'0' * 8}"
                    names.append(("rds final snapshot", snapshot, 255))
                elif source.endswith("/vpc/aws"):
                    names.append(("flow log role", _render(body["vpc_flow_log_iam_role_name"], slug), ROLE))
                    names.append(("flow log policy", _render(body["vpc_flow_log_iam_policy_name"], slug), POLICY))
    assert len(names) >= 15, f"expected the stacks' names, found {names}"
    too_long = [f"{what}: {name} ({len(name)} > {limit})" for what, name, limit in names if len(name) > limit]
    assert not too_long, f"with a {len(slug)}-character slug these AWS names do not fit:\n" + "\n".join(too_long)


def test_name_check_catches_the_prefix_that_failed_at_apply() -> None:
    prefix = "a" * 16 + "-prod-external-secrets-"
    assert len(prefix) > ROLE_PREFIX, "release 0.1.0's pod identity prefix fails from a 16-character slug"
    assert re.fullmatch(r"a{16}-prod-external-secrets-", prefix)


def test_stacks_accept_exactly_the_slugs_the_questions_accept(service: Path) -> None:
    """The question's limit (extensions/template.py) and the stacks' validation are one number."""
    longest, too_long = "a" * (SLUG_MAX_LENGTH - 1) + "z", "a" * SLUG_MAX_LENGTH + "z"
    for stack in ("bootstrap", "persistent", "ephemeral"):
        blocks = _blocks(service / "infra" / "terraform" / stack)
        variable = next(b["project_slug"] for b in blocks["variable"] if "project_slug" in b)
        pattern = re.search(r'regex\("([^"]+)"', variable["validation"][0]["condition"]).group(1)
        pattern = pattern.replace("\\\\", "\\")
        assert re.fullmatch(pattern, longest), f"{stack}: refuses a {len(longest)}-character slug"
        assert not re.fullmatch(pattern, too_long), f"{stack}: accepts a {len(too_long)}-character slug"
