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
    ("replicas_min", "two", "replicas_min must be a whole number at least 1, not 'two'"),
    ("replicas_max", "ten", "replicas_max must be a whole number, not 'ten'"),
    ("eks_node_count", "2.5", "eks_node_count must be a whole number between 1 and 50, not '2.5'"),
    ("ephemeral_hours_per_day", "all day", "ephemeral_hours_per_day must be a whole number between 1 and 24"),
    ("replicas_min", "true", "whole number"),
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


@pytest.mark.parametrize(
    ("name", "description"),
    [("Orders API", "Orders API"), ("Billing", "Billing API"), ("payments api", "payments api")],
)
def test_default_description_says_api_once(tmp_path: Path, name: str, description: str) -> None:
    dst = generate(tmp_path / "service", {**REQUIRED, "project_name": name})
    assert yaml.safe_load((dst / ".copier-answers.yml").read_text())["project_description"] == description
    assert f"{description}. FastAPI" in (dst / "README.md").read_text()


def test_counts_given_as_text_on_the_command_line_are_integers(tmp_path: Path) -> None:
    # `--data replicas_min=3` arrives as text; the answer is still the integer the manifests need.
    dst = generate(tmp_path / "service", {**REQUIRED, "replicas_min": "3", "replicas_max": "7", "eks_node_count": "2"})
    answers = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    assert (answers["replicas_min"], answers["replicas_max"], answers["eks_node_count"]) == (3, 7, 2)
    hpa = yaml.safe_load((dst / "deploy" / "k8s" / "base" / "hpa.yaml").read_text())
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 7)


def test_runner_cidrs_reach_the_eks_endpoint_variable(tmp_path: Path) -> None:
    """NET-1: the answer becomes the list Terraform opens the EKS API to."""
    dst = generate(tmp_path / "service", {**REQUIRED, "ci_runner_cidrs": "203.0.113.0/24, 198.51.100.7/32"})
    tfvars = (dst / "infra" / "terraform" / "ephemeral" / "terraform.tfvars").read_text()
    assert 'cluster_endpoint_public_cidrs = ["203.0.113.0/24", "198.51.100.7/32"]' in tfvars
