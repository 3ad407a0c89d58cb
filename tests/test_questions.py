"""The questions: every validator refuses bad answers before a file is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import REQUIRED, generate

BAD_ANSWERS = [
    ("project_name", "   ", "must not be empty"),
    ("project_slug", "Has Spaces", "DNS-1123"),
    ("project_slug", "-leading-dash", "DNS-1123"),
    ("project_slug", "x" * 41, "at most 40"),
    ("project_slug", "ünïcode", "DNS-1123"),
    ("aws_region", "eu-west-9", "not an AWS region"),
    ("aws_region", "mars-1", "not an AWS region"),
    ("aws_region", "EU-WEST-3", "not an AWS region"),
    ("ecr_account_id", "12345678901", "exactly 12 digits"),
    ("ecr_account_id", "1234567890123", "exactly 12 digits"),
    ("ecr_account_id", "12345678901a", "exactly 12 digits"),
    ("ecr_account_id", "", "exactly 12 digits"),
    ("gitlab_project_path", "no-group", "GitLab project path"),
    ("gitlab_project_path", "group/project.git", "GitLab project path"),
    ("gitlab_project_path", "group//project", "GitLab project path"),
    ("k8s_namespace", "Payments_NS", "DNS-1123"),
    ("base_domain", "Example.COM", "DNS domain"),
    ("base_domain", "localhost", "DNS domain"),
    ("replicas_min", 0, "at least 1"),
    ("replicas_max", 0, "must be at least replicas_min"),
    ("replicas_max", 101, "at most 100"),
    ("replicas_max", 1, "at least 2"),
    ("eks_node_instance_type", "t3medium", "instance type"),
    ("eks_node_count", 0, "between 1 and 50"),
    ("rds_instance_class", "t3.micro", "instance type"),
    ("ephemeral_hours_per_day", 25, "between 1 and 24"),
    ("python_version", "3.9", "3.9"),
    ("kubernetes_version", "1.20", "1.20"),
    ("ci_runner_cidrs", "0.0.0.0/0", "whole internet"),
    ("ci_runner_cidrs", "203.0.113.0/24, 10.0.0.300/32", "not an IPv4 CIDR"),
    ("ci_runner_cidrs", "203.0.113.1/24", "not an IPv4 CIDR"),
]


@pytest.mark.parametrize(("question", "value", "reason"), BAD_ANSWERS, ids=lambda v: str(v)[:20])
def test_bad_answer_stops_the_copy_before_any_file(tmp_path: Path, question: str, value: object, reason: str) -> None:
    dst = tmp_path / "service"
    with pytest.raises(ValueError, match=question) as excinfo:
        generate(dst, {**REQUIRED, question: value})
    assert reason in str(excinfo.value)
    assert not dst.exists(), "a refused answer must leave nothing behind"


@pytest.mark.parametrize("missing", ["ecr_account_id", "gitlab_project_path"])
def test_required_answers_have_no_default(tmp_path: Path, missing: str) -> None:
    answers = {k: v for k, v in REQUIRED.items() if k != missing}
    dst = tmp_path / "service"
    with pytest.raises(ValueError, match=missing):
        generate(dst, answers)
    assert not dst.exists()


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Été", "ete"),
        ("Orders API", "orders-api"),
        ("  Ça   marche!  ", "ca-marche"),
        ("42 Services", "services"),
        ("A service whose name is long enough to need truncating everywhere", "a-service-whose-name-is-long-enough-to"),
    ],
)
def test_slug_is_derived_from_the_name(tmp_path: Path, name: str, slug: str) -> None:
    dst = generate(tmp_path / "service", {**REQUIRED, "project_name": name})
    answers = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == slug
    assert answers["project_name"] == name


def test_registry_host_is_derived_once_from_account_and_region(tmp_path: Path) -> None:
    dst = generate(tmp_path / "service", {**REQUIRED, "aws_region": "ap-southeast-2"})
    registry = f"{REQUIRED['ecr_account_id']}.dkr.ecr.ap-southeast-2.amazonaws.com"
    assert registry in (dst / "README.md").read_text()
    answers = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    assert "ecr_registry" not in answers, "derived values are recomputed on update, never stored"


def test_runner_cidrs_reach_the_eks_endpoint_variable(tmp_path: Path) -> None:
    """NET-1: the answer becomes the list Terraform opens the EKS API to."""
    dst = generate(tmp_path / "service", {**REQUIRED, "ci_runner_cidrs": "203.0.113.0/24, 198.51.100.7/32"})
    tfvars = (dst / "infra" / "terraform" / "ephemeral" / "terraform.tfvars").read_text()
    assert 'cluster_endpoint_public_cidrs = ["203.0.113.0/24", "198.51.100.7/32"]' in tfvars
