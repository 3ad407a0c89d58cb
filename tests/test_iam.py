"""IAM-1, IAM-2: the CI roles' policies, rendered by Terraform, decided by an IAM simulator.

Policies come from persistent/ci_policies.tf, evaluated by Terraform itself
(tests/terraform_eval.py). Decisions come from @cloud-copilot/iam-simulate (tests/iam/, pinned
in its package-lock.json), a maintained simulator of AWS's evaluation logic: identity policies,
permissions boundaries, explicit denies, every condition operator. Not written here.

Each case is (principal, action, resource, context, expected). Principals are the CI roles with
their CI boundary, and a role the dev role could create with AdministratorAccess attached under
the dev boundary: whatever it holds, that role must not reach prod either (privilege escalation).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import IN_CI, answers_of
from terraform_eval import evaluate_locals

IAM_DIR = Path(__file__).parent / "iam"
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ALLOW, DENY = "Allowed", "Denied"


@dataclass(frozen=True)
class Case:
    principal: str
    action: str
    resource: str
    expected: str
    why: str
    context: dict = field(default_factory=dict)
    resource_policy: dict | None = None


def _node() -> str:
    if not (IAM_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir() or not shutil.which("node"):
        message = "the IAM simulator is not installed (scripts/bootstrap.sh: npm ci --prefix tests/iam)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return shutil.which("node") or "node"


@pytest.fixture()
def world(service: Path) -> dict:
    answers = answers_of(service)
    slug, account, region = answers["project_slug"], str(answers["ecr_account_id"]), answers["aws_region"]
    zone = "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"
    variables = {
        "project_slug": slug,
        "aws_region": region,
        "account_id": account,
        "gitlab_project_path": answers["gitlab_project_path"],
        "base_domain": answers["base_domain"],
    }
    names = ["build_policy", "promote_policy", "terraform_policies", "persistent_policy", "boundary_policies", "boundary_arns",
             "prod_plan_policy", "trust_policies"]
    rendered = evaluate_locals(service / "infra" / "terraform" / "persistent", ["ci_policies.tf"], names, variables,
                               inputs={"hosted_zone_arn": zone})
    policies = {
        "build": [rendered["build_policy"]],
        "promote": [rendered["promote_policy"]],
        "dev": [rendered["terraform_policies"]["dev"]],
        "prod": [rendered["terraform_policies"]["prod"], rendered["persistent_policy"]],
        "prod-plan": [rendered["prod_plan_policy"]],
    }
    principals = {
        name: {
            "arn": f"arn:aws:iam::{account}:role/{slug}-gitlab-{name}",
            "identity": [json.loads(p) for p in docs],
            "boundary": json.loads(rendered["boundary_policies"]["ci"]),
        }
        for name, docs in policies.items()
    }
    # The worst the dev role can build: a role of its own under the dev boundary, holding everything.
    principals["dev-made-admin"] = {
        "arn": f"arn:aws:iam::{account}:role/{slug}-dev-anything",
        "identity": [ADMIN],
        "boundary": json.loads(rendered["boundary_policies"]["dev"]),
    }
    # Upper bounds of two roles the stack creates (their module/managed policies are narrower):
    # the load balancer controller, reachable from kube-system pods, and the EKS cluster role.
    for name in ("lb-controller", "cluster"):
        principals[f"dev-{name}"] = {
            "arn": f"arn:aws:iam::{account}:role/{slug}-dev-{name}",
            "identity": [ADMIN],
            "boundary": json.loads(rendered["boundary_policies"]["dev"]),
        }
    # The worst the prod role can do to itself: it applies its own policies, so AdministratorAccess.
    principals["prod-grown-admin"] = {
        "arn": f"arn:aws:iam::{account}:role/{slug}-gitlab-prod",
        "identity": [ADMIN],
        "boundary": json.loads(rendered["boundary_policies"]["ci"]),
    }
    return {"slug": slug, "account": account, "region": region, "zone": zone, "domain": answers["base_domain"],
            "principals": principals, "boundaries": rendered["boundary_arns"],
            "trust": {name: json.loads(doc) for name, doc in rendered["trust_policies"].items()},
            "project_path": answers["gitlab_project_path"],
            "state_key_policy": _key_policy(service, "bootstrap", "main.tf", "state_key", account),
            "state_key_tags": _resource_tags(service, "bootstrap", "main.tf", "aws_kms_key", "state"),
            "oidc_provider": f"arn:aws:iam::{account}:oidc-provider/gitlab.com"}


def _key_policy(service: Path, stack: str, file: str, label: str, account: str) -> dict:
    """A KMS key policy of the stack (aws_iam_policy_document) as JSON: KMS needs it besides IAM."""
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    with (service / "infra" / "terraform" / stack / file).open() as handle:
        blocks = hcl2.load(handle, serialization_options=options)["data"]
    body = next(b["aws_iam_policy_document"][label] for b in blocks if label in b.get("aws_iam_policy_document", {}))
    statements = []
    for statement in body["statement"]:
        principal = statement["principals"][0]
        identifiers = [i.replace("${var.account_id}", account) for i in principal["identifiers"]]
        assert all("${" not in i for i in identifiers), f"unresolved key policy principal {identifiers}"
        statements.append({"Sid": statement["sid"], "Effect": statement.get("effect", "Allow"),
                           "Principal": {principal["type"]: identifiers}, "Action": statement["actions"],
                           "Resource": statement["resources"]})
    return {"Version": "2012-10-17", "Statement": statements}


def _resource_tags(service: Path, stack: str, file: str, kind: str, label: str) -> dict[str, str]:
    """Tags a resource of the stack gets: the provider's default_tags, then its own tags."""
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    with (service / "infra" / "terraform" / stack / file).open() as handle:
        parsed = hcl2.load(handle, serialization_options=options)
    one = lambda block: block[0] if isinstance(block, list) else block
    provider = next(one(p["aws"]) for p in parsed["provider"] if "aws" in p)
    tags = dict(one(provider.get("default_tags", {})).get("tags", {}))
    body = one(next(r[kind][label] for r in parsed["resource"] if label in r.get(kind, {})))
    tags.update(body.get("tags", {}))
    return {key: value for key, value in tags.items() if "${" not in value}


def cases(w: dict) -> list[Case]:
    s, a, r, zone = w["slug"], w["account"], w["region"], w["zone"]
    bucket = f"arn:aws:s3:::{s}-tfstate-{a}"
    state_key = f"arn:aws:kms:{r}:{a}:key/11111111-2222-3333-4444-555555555555"
    state_key_ctx = {"kms:ResourceAliases": [f"alias/{s}-tfstate-{a}"],
                     **{f"aws:ResourceTag/{k}": v for k, v in w["state_key_tags"].items()}}
    env_key = f"arn:aws:kms:{r}:{a}:key/66666666-7777-8888-9999-000000000000"
    key_policy = w["state_key_policy"]  # the environment keys delegate to IAM the same way (database.tf)
    tags = {env: {"aws:ResourceTag/Environment": env, "aws:ResourceTag/Project": s} for env in ("dev", "prod")}
    secret = lambda env, name: f"arn:aws:secretsmanager:{r}:{a}:secret:{s}/{env}/{name}-AbCdEf"
    rds_secret = f"arn:aws:secretsmanager:{r}:{a}:secret:rds!db-0f1e2d3c-AbCdEf"
    rds_tag = lambda env: {
        "aws:ResourceTag/aws:rds:primaryDBInstanceArn": f"arn:aws:rds:{r}:{a}:db:{s}-{env}"}
    db = lambda env: f"arn:aws:rds:{r}:{a}:db:{s}-{env}"
    cluster = lambda env: f"arn:aws:eks:{r}:{a}:cluster/{s}-{env}"
    role = lambda name: f"arn:aws:iam::{a}:role/{name}"
    repo = f"arn:aws:ecr:{r}:{a}:repository/{s}"
    cache = f"arn:aws:ecr:{r}:{a}:repository/{s}/cache"
    vpc = f"arn:aws:ec2:{r}:{a}:vpc/vpc-0123456789abcdef0"
    instance = f"arn:aws:ec2:{r}:{a}:instance/i-0123456789abcdef0"
    sg = f"arn:aws:ec2:{r}:{a}:security-group/sg-0123456789abcdef0"
    region = {"aws:RequestedRegion": r}
    eni = f"arn:aws:ec2:{r}:{a}:network-interface/eni-0123456789abcdef0"
    asg = (f"arn:aws:autoscaling:{r}:{a}:autoScalingGroup:0f1e2d3c-aaaa-bbbb-cccc-0123456789ab"
           ":autoScalingGroupName/eks-x")
    asg_tags = lambda t: {**{f"aws:ResourceTag/{k}": v for k, v in t.items()},
                          **{f"autoscaling:ResourceTag/{k}": v for k, v in t.items()}}
    alb = f"arn:aws:elasticloadbalancing:{r}:{a}:loadbalancer/app/k8s-x/0123456789abcdef"
    listener = f"arn:aws:elasticloadbalancing:{r}:{a}:listener/app/k8s-x/0123456789abcdef/0123456789abcdef"
    target_group = f"arn:aws:elasticloadbalancing:{r}:{a}:targetgroup/k8s-x/0123456789abcdef"
    dev_boundary = {"iam:PermissionsBoundary": w["boundaries"]["dev"]}
    ci_boundary = {"iam:PermissionsBoundary": w["boundaries"]["ci"]}
    admin_policy = {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}
    return [
        # --- state: IAM-1 -----------------------------------------------------------------------
        Case("dev", "s3:GetObject", f"{bucket}/ephemeral/prod/terraform.tfstate", DENY, "prod state: not dev's"),
        Case("dev", "s3:PutObject", f"{bucket}/ephemeral/prod/terraform.tfstate.tflock", DENY, "nor to lock"),
        Case("dev", "s3:PutObject", f"{bucket}/persistent/terraform.tfstate", DENY, "persistent state is prod's"),
        Case("dev", "s3:DeleteObject", f"{bucket}/persistent/terraform.tfstate.tflock", DENY, "nor its lock"),
        Case("dev", "s3:GetObject", f"{bucket}/persistent/terraform.tfstate", ALLOW, "TF-2 remote state, MR plan"),
        Case("dev", "s3:PutObject", f"{bucket}/ephemeral/dev/terraform.tfstate", ALLOW, "its own state"),
        Case("build", "s3:GetObject", f"{bucket}/persistent/terraform.tfstate", DENY, "build reads no state"),
        Case("prod", "s3:PutObject", f"{bucket}/persistent/terraform.tfstate", ALLOW, "prod applies persistent"),
        # --- keys -------------------------------------------------------------------------------------
        Case("dev", "kms:ScheduleKeyDeletion", state_key, DENY, "the state key", state_key_ctx, key_policy),
        Case("dev", "kms:PutKeyPolicy", state_key, DENY, "the state key's policy", state_key_ctx, key_policy),
        Case("dev", "kms:DisableKey", state_key, DENY, "the state key", state_key_ctx, resource_policy=key_policy),
        Case("dev", "kms:Decrypt", state_key, ALLOW, "reads state through the key", state_key_ctx, key_policy),
        Case("dev", "kms:ScheduleKeyDeletion", env_key, DENY, "a prod key", tags["prod"], resource_policy=key_policy),
        Case("dev", "kms:ScheduleKeyDeletion", env_key, ALLOW, "its own key", tags["dev"], resource_policy=key_policy),
        Case("dev-made-admin", "kms:ScheduleKeyDeletion", state_key, DENY, "escalation to the state key",
             state_key_ctx, key_policy),
        Case("dev-made-admin", "kms:ListGrants", env_key, ALLOW, "EKS module's ClusterEncryption policy (cluster role)",
             tags["dev"], key_policy),
        # --- secrets ----------------------------------------------------------------------------------
        Case("dev", "secretsmanager:GetSecretValue", secret("prod", "database"), DENY, "prod secret", tags["prod"]),
        Case("dev", "secretsmanager:GetSecretValue", secret("prod", "app"), DENY, "prod signing key", tags["prod"]),
        Case("dev", "secretsmanager:DeleteSecret", secret("prod", "app"), DENY, "prod secret", tags["prod"]),
        Case("dev", "secretsmanager:GetSecretValue", rds_secret, DENY, "prod master password", rds_tag("prod")),
        Case("dev", "secretsmanager:PutSecretValue", secret("dev", "app"), ALLOW, "its own secret", tags["dev"]),
        Case("dev", "secretsmanager:DeleteSecret", rds_secret, DENY, "prod master secret", rds_tag("prod")),
        Case("dev", "secretsmanager:DeleteSecret", rds_secret, ALLOW, "nightly destroy of its db", rds_tag("dev")),
        Case("build", "secretsmanager:GetSecretValue", secret("prod", "app"), DENY, "build", tags["prod"]),
        Case("dev-made-admin", "secretsmanager:GetSecretValue", secret("prod", "app"), DENY, "escalation",
             tags["prod"]),
        Case("dev-made-admin", "secretsmanager:GetSecretValue", rds_secret, DENY, "escalation", rds_tag("prod")),
        Case("dev-made-admin", "secretsmanager:GetSecretValue", rds_secret, ALLOW, "ESO of dev", rds_tag("dev")),
        Case("dev-made-admin", "secretsmanager:GetSecretValue", secret("dev", "app"), ALLOW, "ESO of dev", tags["dev"]),
        Case("dev-made-admin", "secretsmanager:BatchGetSecretValue", "*", ALLOW, "ESO find by tags"),
        Case("dev-made-admin", "ssm:GetParameter", f"arn:aws:ssm:{r}:{a}:parameter/{s}/prod/flag", DENY,
             "prod parameters", tags["prod"]),
        Case("dev-made-admin", "ssm:GetParameter", f"arn:aws:ssm:{r}:{a}:parameter/{s}/dev/flag", ALLOW,
             "ESO of dev", tags["dev"]),
        # --- database, cluster, network -----------------------------------------------------------------
        Case("dev", "rds:ModifyDBInstance", db("prod"), DENY, "turn off deletion protection", tags["prod"]),
        Case("dev", "rds:DeleteDBInstance", db("prod"), DENY, "delete prod database", tags["prod"]),
        Case("dev", "rds:DeleteDBInstance", db("dev"), ALLOW, "nightly destroy", tags["dev"]),
        Case("dev", "eks:DeleteCluster", cluster("prod"), DENY, "delete prod cluster", tags["prod"]),
        Case("dev", "eks:UpdateClusterConfig", cluster("prod"), DENY, "open prod endpoint", tags["prod"]),
        Case("dev", "eks:CreateAccessEntry", cluster("prod"), DENY, "become prod cluster admin", tags["prod"]),
        Case("dev", "eks:DeleteCluster", cluster("dev"), ALLOW, "nightly destroy", tags["dev"]),
        Case("build", "eks:DescribeCluster", cluster("prod"), DENY, "build", tags["prod"]),
        Case("dev", "ec2:DeleteVpc", vpc, DENY, "prod network", {**tags["prod"], **region}),
        Case("dev", "ec2:TerminateInstances", instance, DENY, "prod nodes", {**tags["prod"], **region}),
        Case("dev", "ec2:AuthorizeSecurityGroupIngress", sg, DENY, "prod database firewall",
             {**tags["prod"], **region}),
        Case("dev", "ec2:DeleteVpc", vpc, ALLOW, "nightly destroy", {**tags["dev"], **region}),
        Case("dev", "ec2:DeleteVpc", vpc, DENY, "another service's dev network",
             {"aws:ResourceTag/Environment": "dev", "aws:ResourceTag/Project": "other-service", **region}),
        Case("dev", "rds:DeleteDBInstance", f"arn:aws:rds:{r}:{a}:db:{s}-dev-other", DENY, "another service's db",
             {"aws:ResourceTag/Environment": "dev", "aws:ResourceTag/Project": f"{s}-dev-other"}),
        Case("dev-made-admin", "ec2:TerminateInstances", instance, DENY, "escalation into another service",
             {"aws:ResourceTag/Environment": "dev", "aws:ResourceTag/Project": "other-service", **region}),
        Case("dev-made-admin", "ec2:TerminateInstances", instance, DENY, "escalation", {**tags["prod"], **region}),
        Case("dev-made-admin", "rds:DeleteDBInstance", db("prod"), DENY, "escalation", tags["prod"]),
        # --- untagged resources: whoever created them, not in reach (IAM-1) ------------------------------
        Case("dev", "ec2:TerminateInstances", instance, DENY, "an untagged instance", region),
        Case("dev", "ec2:DeleteSecurityGroup", sg, DENY, "an untagged security group", region),
        Case("dev", "ec2:AuthorizeSecurityGroupIngress", sg, DENY, "open an untagged security group", region),
        Case("dev", "ec2:DeleteNetworkInterface", eni, DENY, "an untagged ENI (a pod's, an ALB's)", region),
        Case("prod", "ec2:TerminateInstances", instance, DENY, "an untagged instance", region),
        Case("dev", "autoscaling:UpdateAutoScalingGroup", asg, DENY, "prod node group ASG, EKS's tags only",
             {**asg_tags({"eks:cluster-name": f"{s}-prod"}), **region}),
        Case("dev", "autoscaling:DeleteAutoScalingGroup", asg, DENY, "prod node group ASG, tagged by cluster.tf",
             {**asg_tags({"eks:cluster-name": f"{s}-prod", "Environment": "prod", "Project": s}), **region}),
        Case("dev", "autoscaling:CreateOrUpdateTags", asg, DENY, "tag prod's node group ASG",
             {**asg_tags({"eks:cluster-name": f"{s}-prod"}), "aws:RequestTag/Environment": "dev",
              "aws:RequestTag/Project": s, "aws:TagKeys": ["Environment", "Project"], **region}),
        Case("dev", "autoscaling:SetDesiredCapacity", asg, DENY, "an untagged ASG", region),
        Case("dev", "elasticloadbalancing:DeleteLoadBalancer", alb, DENY, "an untagged ALB", region),
        Case("prod", "elasticloadbalancing:ModifyListener", listener, DENY, "an untagged listener", region),
        Case("dev", "ec2:ModifyEbsDefaultKmsKeyId", "*", DENY, "account-wide EBS key", region),
        Case("dev", "ec2:DisableEbsEncryptionByDefault", "*", DENY, "account-wide EBS encryption", region),
        Case("prod", "ec2:EnableEbsEncryptionByDefault", "*", DENY, "account-wide EBS encryption", region),
        Case("prod", "ec2:ModifyInstanceMetadataDefaults", "*", DENY, "account-wide IMDS defaults", region),
        Case("prod-grown-admin", "ec2:ModifyEbsDefaultKmsKeyId", "*", DENY, "account-wide EBS key", region),
        Case("prod-grown-admin", "ec2:DisableEbsEncryptionByDefault", "*", DENY, "account-wide", region),
        Case("dev-made-admin", "ec2:ModifyInstanceMetadataDefaults", "*", DENY, "account-wide IMDS", region),
        Case("dev-made-admin", "ec2:TerminateInstances", instance, DENY, "an untagged instance", region),
        Case("dev-made-admin", "elasticloadbalancing:DeleteLoadBalancer", alb, DENY, "an untagged ALB", region),
        Case("dev-lb-controller", "elasticloadbalancing:DeleteLoadBalancer", alb, DENY, "an untagged ALB", region),
        Case("dev-lb-controller", "elasticloadbalancing:ModifyListener", listener, DENY, "untagged listener", region),
        Case("dev-lb-controller", "ec2:AuthorizeSecurityGroupIngress", sg, DENY, "an untagged security group", region),
        Case("dev-lb-controller", "elasticloadbalancing:DeleteLoadBalancer", alb, DENY, "prod's ALB",
             {**tags["prod"], **region}),
        Case("dev-lb-controller", "elasticloadbalancing:CreateLoadBalancer", alb, ALLOW, "an Ingress (defaultTags)",
             {"aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s, **region}),
        Case("dev-lb-controller", "elasticloadbalancing:ModifyListener", listener, ALLOW, "its own listener",
             {**tags["dev"], **region}),
        Case("dev-lb-controller", "elasticloadbalancing:RegisterTargets", target_group, ALLOW, "its own target group",
             {**tags["dev"], **region}),
        Case("dev-lb-controller", "ec2:AuthorizeSecurityGroupIngress", sg, ALLOW, "the node security group (tagged)",
             {**tags["dev"], **region}),
        Case("dev-lb-controller", "elasticloadbalancing:ModifyListener", listener, ALLOW,
             "a listener it created before defaultTags",
             {"aws:ResourceTag/elbv2.k8s.aws/cluster": f"{s}-dev", **region}),
        Case("dev-lb-controller", "elasticloadbalancing:AddTags", alb, ALLOW, "adds defaultTags to its older ALB",
             {"aws:ResourceTag/elbv2.k8s.aws/cluster": f"{s}-dev", "aws:RequestTag/Environment": "dev",
              "aws:RequestTag/Project": s, "aws:TagKeys": ["Environment", "Project"], **region}),
        Case("dev-lb-controller", "elasticloadbalancing:DeleteLoadBalancer", alb, DENY, "prod controller's ALB",
             {"aws:ResourceTag/elbv2.k8s.aws/cluster": f"{s}-prod", **region}),
        Case("dev-cluster", "ec2:CreateNetworkInterface", eni, ALLOW, "EKS places control plane ENIs (its own tags)",
             region),
        Case("dev-cluster", "ec2:ModifyEbsDefaultKmsKeyId", "*", DENY, "account-wide EBS key", region),
        Case("dev-cluster", "ec2:DeleteNetworkInterface", eni, ALLOW, "EKS removes its control plane ENIs", region),
        Case("dev-cluster", "ec2:CreateTags", eni, ALLOW, "AWS-operated roles tag the ENIs they manage",
             {"aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s, "aws:TagKeys": ["Environment"],
              **region}),
        Case("dev-lb-controller", "ec2:CreateTags", eni, DENY, "an untagged ENI",
             {"aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s, "aws:TagKeys": ["Environment"],
              **region}),
        Case("dev-cluster", "ec2:DeleteSecurityGroup", sg, ALLOW, "the cluster security group EKS created",
             {"aws:ResourceTag/aws:eks:cluster-name": f"{s}-dev", **region}),
        Case("dev-cluster", "ec2:DeleteSecurityGroup", sg, DENY, "an untagged security group", region),
        Case("dev-cluster", "ec2:TerminateInstances", instance, DENY, "a role named like it, made by a branch",
             region),
        Case("dev-cluster", "elasticloadbalancing:DeleteLoadBalancer", alb, DENY, "an untagged ALB", region),
        Case("dev-cluster", "ec2:DeleteSecurityGroup", sg, DENY, "prod's cluster security group",
             {"aws:ResourceTag/aws:eks:cluster-name": f"{s}-prod", **region}),
        Case("dev", "logs:PutAccountPolicy", "*", DENY, "subscribe every log group of the account", region),
        Case("dev", "logs:PutResourcePolicy", "*", DENY, "let any service write the account's logs", region),
        Case("prod-grown-admin", "logs:DeleteAccountPolicy", "*", DENY, "account-wide logs policy", region),
        Case("dev-made-admin", "logs:PutAccountPolicy", "*", DENY, "account-wide logs policy", region),
        Case("dev", "logs:CreateLogGroup", f"arn:aws:logs:{r}:{a}:log-group:/aws/eks/{s}-dev/cluster", ALLOW,
             "still creates its own log groups", region),
        Case("dev", "logs:CreateLogGroup", f"arn:aws:logs:{r}:{a}:log-group:/aws/rds/instance/{s}-dev/postgresql",
             ALLOW, "RDS log exports", region),
        Case("dev", "logs:DeleteLogGroup", f"arn:aws:logs:{r}:{a}:log-group:/aws/vpc-flow-log/{s}-dev", ALLOW,
             "its flow logs (network.tf names them)", {**tags["dev"], **region}),
        Case("dev", "logs:DescribeLogGroups", "*", ALLOW, "refresh", region),
        Case("dev", "logs:DeleteLogGroup", f"arn:aws:logs:{r}:{a}:log-group:/aws/lambda/billing", DENY,
             "an untagged log group of the account", region),
        Case("dev", "logs:GetLogEvents", f"arn:aws:logs:{r}:{a}:log-group:aws-cloudtrail-logs:log-stream:x", DENY,
             "read the account's trail", region),
        Case("dev", "logs:PutSubscriptionFilter", f"arn:aws:logs:{r}:{a}:log-group:/aws/lambda/billing", DENY,
             "copy another log group out", region),
        Case("dev", "logs:DeleteLogGroup", f"arn:aws:logs:{r}:{a}:log-group:/aws/eks/{s}-prod/cluster", DENY,
             "prod's control plane logs", region),
        # --- what the nightly apply of dev needs (a contained role must still work) ---------------------
        Case("dev", "eks:CreateCluster", "*", ALLOW, "apply dev",
             {"aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s}),
        Case("dev", "eks:CreateCluster", "*", DENY, "a cluster tagged for prod",
             {"aws:RequestTag/Environment": "prod", "aws:RequestTag/Project": s}),
        Case("dev", "iam:PassRole", role(f"{s}-dev-cluster"), ALLOW, "cluster role to EKS",
             {"iam:PassedToService": "eks.amazonaws.com", **tags["dev"]}),
        Case("dev", "iam:PassRole", role(f"{s}-dev-external-secrets"), ALLOW, "Pod Identity",
             {"iam:PassedToService": "pods.eks.amazonaws.com", **tags["dev"]}),
        Case("dev", "eks:CreatePodIdentityAssociation", cluster("dev"), ALLOW, "Pod Identity", tags["dev"]),
        Case("dev", "rds:CreateDBInstance", db("dev"), ALLOW, "apply dev", {"aws:RequestTag/Environment": "dev"}),
        Case("dev", "secretsmanager:CreateSecret", rds_secret, ALLOW, "RDS creates the master secret"),
        Case("dev", "secretsmanager:CreateSecret", secret("dev", "app"), ALLOW, "apply dev",
             {"aws:RequestTag/Environment": "dev"}),
        Case("dev", "kms:CreateKey", "*", ALLOW, "the environment's key, tagged",
             {"aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s}),
        Case("dev", "kms:CreateKey", "*", DENY, "a key tagged for prod",
             {"aws:RequestTag/Environment": "prod", "aws:RequestTag/Project": s}),
        Case("dev", "ec2:CreateVpc", f"arn:aws:ec2:{r}:{a}:vpc/*", ALLOW, "apply dev",
             {"aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s, **region}),
        Case("dev", "ec2:CreateVpc", f"arn:aws:ec2:{r}:{a}:vpc/*", DENY, "a network tagged for prod",
             {"aws:RequestTag/Environment": "prod", "aws:RequestTag/Project": s, **region}),
        Case("dev", "ec2:CreateTags", vpc, ALLOW, "tags on create", {"ec2:CreateAction": "CreateVpc", **region,
             "aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s,
             "aws:TagKeys": ["Environment", "Project"]}),
        Case("dev", "ec2:CreateSubnet", f"arn:aws:ec2:{r}:{a}:subnet/*", ALLOW, "apply dev",
             {"aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s, **region}),
        Case("dev", "ec2:CreateSubnet", vpc, ALLOW, "in its own VPC", {**tags["dev"], **region}),
        Case("dev", "ec2:AuthorizeSecurityGroupIngress", f"arn:aws:ec2:{r}:{a}:security-group-rule/*", ALLOW,
             "database_from_nodes rule, tagged", {"aws:RequestTag/Environment": "dev", "aws:RequestTag/Project": s,
                                                  **region}),
        Case("dev", "ec2:AuthorizeSecurityGroupIngress", f"arn:aws:ec2:{r}:{a}:security-group-rule/*", ALLOW,
             "EKS module rules (aws_security_group_rule, untagged)", region),
        Case("dev", "ec2:AuthorizeSecurityGroupIngress", sg, ALLOW, "its database firewall", {**tags["dev"], **region}),
        Case("dev", "ec2:CreateTags", sg, ALLOW, "the EKS module tags the cluster security group EKS created",
             {"aws:ResourceTag/aws:eks:cluster-name": f"{s}-dev", "aws:RequestTag/Environment": "dev",
              "aws:RequestTag/Project": s, "aws:TagKeys": ["Environment", "Project"], **region}),
        Case("dev", "autoscaling:CreateOrUpdateTags", asg, ALLOW, "cluster.tf tags the node group's ASG",
             {**asg_tags({"eks:cluster-name": f"{s}-dev"}), "aws:RequestTag/Environment": "dev",
              "aws:RequestTag/Project": s, "aws:TagKeys": ["Environment", "Project"], **region}),
        Case("dev", "logs:CreateLogGroup", f"arn:aws:logs:{r}:{a}:log-group:/aws/eks/{s}-dev/cluster", ALLOW,
             "control plane logs", region),
        Case("dev", "ssm:GetParameter", f"arn:aws:ssm:{r}:{a}:parameter/aws/service/eks/optimized-ami/1.34/x", ALLOW,
             "node AMI"),
        Case("dev", "iam:CreateServiceLinkedRole",
             role("aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS"), ALLOW, "EKS service-linked role",
             {"iam:AWSServiceName": "eks.amazonaws.com"}),
        Case("dev", "iam:CreatePolicy", f"arn:aws:iam::{a}:policy/{s}-dev-ExternalSecrets", ALLOW, "module policy"),
        Case("prod", "ecr:PutImage", repo, ALLOW, "the prod deploy moves deployed-prod (SEC-1)"),
        # --- IAM-2: roles and policies only under a boundary no CI role can remove ---------------------
        Case("dev", "iam:CreateRole", role(f"{s}-dev-x"), DENY, "role without boundary"),
        Case("dev", "iam:CreateRole", role(f"{s}-dev-x"), DENY, "role under the permissive CI boundary", ci_boundary),
        Case("dev", "iam:CreateRole", role(f"{s}-dev-x"), DENY, "a role of its own: may trust anyone, outlives "
             "the destroy", dev_boundary),
        Case("dev", "iam:UpdateAssumeRolePolicy", role(f"{s}-dev-x"), DENY, "trust another account", tags["dev"]),
        Case("dev", "iam:UpdateAssumeRolePolicy", role(f"{s}-dev-nodes"), DENY, "a prod-tagged name",
             tags["prod"]),
        Case("dev", "iam:CreateRole", role(f"{s}-dev-cluster-evil"), DENY, "not the cluster role's name", dev_boundary),
        Case("prod", "iam:CreateRole", role(f"{s}-prod-x"), DENY, "a role of its own", {
            "iam:PermissionsBoundary": w["boundaries"]["prod"]}),
        *[Case("dev", "iam:CreateRole", role(f"{s}-dev-{name}"), ALLOW, "a role the stack creates", dev_boundary)
          for name in ("nodes", "lb-controller", "external-secrets", "vpc-flow-log")],
        Case("dev", "iam:CreateRole", role(f"{s}-dev-cluster-" + "20261201150405000000000001"
                                           if len(f"{s}-dev-cluster-") <= 38 else f"{s}-dev-cluster"),
             ALLOW, "the EKS cluster role (name_prefix + 26 characters when it fits)", dev_boundary),
        Case("dev", "iam:UpdateAssumeRolePolicy", role(f"{s}-dev-nodes"), ALLOW, "the stack's own role", tags["dev"]),
        Case("dev", "iam:AttachRolePolicy", role(f"{s}-dev-x"), DENY, "admin on an unbounded role", admin_policy),
        Case("dev", "iam:PutRolePolicy", role(f"{s}-gitlab-dev"), DENY, "grow its own rights", ci_boundary),
        Case("dev", "iam:AttachRolePolicy", role(f"{s}-gitlab-prod"), DENY, "grow prod's rights",
             {**ci_boundary, **admin_policy}),
        Case("dev", "iam:UpdateAssumeRolePolicy", role(f"{s}-gitlab-prod"), DENY, "trust itself into prod"),
        Case("dev", "iam:DeleteRolePermissionsBoundary", role(f"{s}-dev-x"), DENY, "remove a boundary", tags["dev"]),
        Case("dev", "iam:CreatePolicyVersion", w["boundaries"]["dev"], DENY, "rewrite its boundary"),
        Case("dev", "iam:PassRole", role(f"{s}-prod-nodes"), DENY, "pass a prod role",
             {"iam:PassedToService": "ec2.amazonaws.com"}),
        Case("dev", "iam:PassRole", role(f"{s}-gitlab-prod"), DENY, "pass the prod CI role",
             {"iam:PassedToService": "ec2.amazonaws.com"}),
        Case("dev", "iam:CreateUser", f"arn:aws:iam::{a}:user/backdoor", DENY, "long-lived identity"),
        Case("dev", "iam:CreateAccessKey", f"arn:aws:iam::{a}:user/backdoor", DENY, "long-lived key"),
        Case("build", "iam:CreateRole", role(f"{s}-dev-x"), DENY, "build creates no role", dev_boundary),
        Case("prod", "iam:AttachRolePolicy", role(f"{s}-gitlab-prod"), DENY, "unbounded prod role", admin_policy),
        Case("prod", "iam:DeleteRolePermissionsBoundary", role(f"{s}-gitlab-prod"), DENY, "remove its boundary"),
        Case("prod", "iam:PutRolePermissionsBoundary", role(f"{s}-gitlab-prod"), DENY, "swap its boundary",
             {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        Case("prod", "iam:CreatePolicyVersion", w["boundaries"]["ci"], DENY, "rewrite the CI boundary"),
        Case("prod", "iam:DeleteOpenIDConnectProvider", w["oidc_provider"], DENY,
             "the account's provider, created by another service", {"aws:ResourceTag/Project": "other"}),
        Case("prod", "iam:UpdateOpenIDConnectProviderThumbprint", w["oidc_provider"], ALLOW,
             "its own provider", {"aws:ResourceTag/Project": s}),
        Case("prod", "iam:CreatePolicyVersion", f"arn:aws:iam::{a}:policy/{s}-gitlab-dev-terraform", ALLOW,
             "applies the CI policies"),
        Case("dev-made-admin", "iam:CreateRole", role(f"{s}-dev-y"), DENY, "escalation: a role with no boundary"),
        Case("dev-made-admin", "iam:DeleteRolePermissionsBoundary", role(f"{s}-dev-anything"), DENY, "escalation"),
        Case("dev-made-admin", "sts:AssumeRole", role(f"{s}-gitlab-prod"), DENY, "escalation into prod"),
        Case("dev-made-admin", "s3:GetObject", f"{bucket}/ephemeral/prod/terraform.tfstate", DENY, "escalation"),
        Case("prod-grown-admin", "cloudtrail:StopLogging", f"arn:aws:cloudtrail:{r}:{a}:trail/main", DENY,
             "prod cannot grow past the CI boundary"),
        Case("prod-grown-admin", "organizations:LeaveOrganization", "*", DENY, "past the CI boundary"),
        Case("prod-grown-admin", "lambda:CreateFunction", f"arn:aws:lambda:{r}:{a}:function:x", DENY, "past it"),
        Case("prod-grown-admin", "iam:CreateAccessKey", f"arn:aws:iam::{a}:user/someone", DENY, "no keys"),
        Case("prod-grown-admin", "iam:DeleteRolePermissionsBoundary", role(f"{s}-gitlab-prod"), DENY, "stays"),
        Case("prod-grown-admin", "iam:CreatePolicyVersion", w["boundaries"]["ci"], DENY, "boundary stays"),
        Case("prod-grown-admin", "secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{r}:{a}:secret:x-AbCdEf",
             DENY, "another service's secret", {"aws:ResourceTag/Project": "other"}),
        # --- IAM-2: the CI boundary is a ceiling even for a prod role that made itself admin ------------
        Case("prod-grown-admin", "iam:CreateRole", role("backdoor"), DENY, "a role outside the service, no boundary"),
        Case("prod-grown-admin", "iam:CreateRole", role("backdoor"), DENY, "outside the service, CI boundary",
             ci_boundary),
        Case("prod-grown-admin", "iam:AttachRolePolicy", role("OrganizationAccountAccessRole"), DENY,
             "AdministratorAccess to an admin role of the account", admin_policy),
        Case("prod-grown-admin", "iam:UpdateAssumeRolePolicy", role("OrganizationAccountAccessRole"), DENY,
             "trust itself into an untagged admin role"),
        Case("prod-grown-admin", "iam:PutRolePermissionsBoundary", role("OrganizationAccountAccessRole"), DENY,
             "rewrite another role", ci_boundary),
        Case("prod-grown-admin", "iam:PassRole", role("OrganizationAccountAccessRole"), DENY, "run EC2 as admin",
             {"iam:PassedToService": "ec2.amazonaws.com"}),
        Case("prod-grown-admin", "iam:PutRolePolicy", role(f"{s}-prod-x"), DENY, "a prod role without boundary"),
        Case("prod-grown-admin", "iam:CreateRole", role(f"{s}-prod-x"), DENY, "prod role under the CI boundary",
             ci_boundary),
        Case("prod-grown-admin", "iam:CreateRole", role(f"{s}-gitlab-backdoor"), DENY, "CI role without boundary"),
        Case("prod-grown-admin", "iam:AttachRolePolicy", role(f"{s}-gitlab-prod"), DENY,
             "AdministratorAccess to itself, boundary kept", {**ci_boundary, **admin_policy}),
        Case("prod-grown-admin", "iam:CreatePolicyVersion", f"arn:aws:iam::{a}:policy/PlatformAdmins", DENY,
             "rewrite a policy of the account"),
        Case("prod-grown-admin", "iam:SetDefaultPolicyVersion", f"arn:aws:iam::{a}:policy/PlatformAdmins", DENY,
             "roll a policy of the account to another version"),
        Case("prod-grown-admin", "iam:AttachUserPolicy", f"arn:aws:iam::{a}:user/someone", DENY, "a user",
             admin_policy),
        Case("prod-grown-admin", "iam:AddUserToGroup", f"arn:aws:iam::{a}:group/admins", DENY, "a group"),
        Case("prod", "iam:AttachRolePolicy", role(f"{s}-gitlab-prod"), ALLOW, "applies its own attachment",
             {**ci_boundary, "iam:PolicyARN": f"arn:aws:iam::{a}:policy/{s}-gitlab-prod-terraform"}),
        Case("dev", "iam:AttachRolePolicy", role(f"{s}-dev-nodes"), ALLOW, "node role policy of the EKS module",
             {**dev_boundary, "iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"}),
        Case("dev", "iam:AttachRolePolicy", role(f"{s}-dev-nodes"), DENY, "admin on a bounded dev role",
             {**dev_boundary, **admin_policy}),
        # --- images: ECR-1 and CI-4 ---------------------------------------------------------------------
        Case("dev", "ecr:PutImage", repo, DENY, "dev writes no tag"),
        Case("dev", "ecr:DeleteRepository", repo, DENY, "persistent repository"),
        Case("dev", "ecr:PutLifecyclePolicy", repo, DENY, "persistent lifecycle"),
        Case("dev", "ecr:DescribeImages", repo, ALLOW, "deploy resolves <sha> to a digest"),
        Case("build", "ecr:PutImage", cache, ALLOW, "Kaniko cache"),
        Case("build", "ecr:DeleteRepository", repo, DENY, "build deletes nothing"),
        Case("dev-made-admin", "ecr:PutImage", repo, DENY, "escalation: write a deployable tag"),
        # --- DNS and certificate: defects 3 and 4 ------------------------------------------------------
        Case("prod", "route53:ListTagsForResource", zone, ALLOW, "data.aws_route53_zone reads tags"),
        Case("prod", "route53:ListHostedZones", "*", ALLOW, "global: requests count as us-east-1",
             {"aws:RequestedRegion": "us-east-1"}),
        Case("prod", "route53:GetChange", "arn:aws:route53:::change/C0123456789", ALLOW, "waits for the records",
             {"aws:RequestedRegion": "us-east-1"}),
        Case("prod", "route53:ChangeResourceRecordSets", zone, ALLOW, "validation record",
             {"route53:ChangeResourceRecordSetsNormalizedRecordNames": [f"_0abc.{s}.{w['domain']}"]}),
        Case("prod", "route53:ChangeResourceRecordSets", zone, DENY, "another service's name",
             {"route53:ChangeResourceRecordSetsNormalizedRecordNames": [f"www.{w['domain']}"]}),
        Case("dev", "route53:ListTagsForResource", zone, ALLOW, "MR plan of persistent refreshes the zone"),
        Case("dev", "route53:ListHostedZones", "*", ALLOW, "MR plan", {"aws:RequestedRegion": "us-east-1"}),
        Case("dev", "route53:ChangeResourceRecordSets", zone, DENY, "dev writes no DNS",
             {"route53:ChangeResourceRecordSetsNormalizedRecordNames": [f"_0abc.{s}.{w['domain']}"]}),
        Case("dev", "acm:DescribeCertificate", f"arn:aws:acm:{r}:{a}:certificate/0f1e2d3c", ALLOW, "MR plan", region),
        Case("dev", "budgets:ModifyBudget", f"arn:aws:budgets::{a}:budget/{s}-prod", DENY, "prod's budget"),
        Case("dev", "budgets:ModifyBudget", f"arn:aws:budgets::{a}:budget/{s}-dev", ALLOW, "TF-6 its budget"),
        Case("dev", "sns:DeleteTopic", f"arn:aws:sns:{r}:{a}:{s}-prod-budget", DENY, "prod's alerts", tags["prod"]),
        Case("dev", "sns:CreateTopic", f"arn:aws:sns:{r}:{a}:{s}-dev-budget", ALLOW, "TF-6 its alert topic", region),
        Case("dev", "iam:AttachUserPolicy", f"arn:aws:iam::{a}:user/someone", DENY, "escalation through a user"),
        Case("dev", "iam:PutGroupPolicy", f"arn:aws:iam::{a}:group/admins", DENY, "escalation through a group"),
        Case("dev", "iam:CreateLoginProfile", f"arn:aws:iam::{a}:user/someone", DENY, "console password"),
        Case("dev", "iam:SetDefaultPolicyVersion", f"arn:aws:iam::{a}:policy/{s}-gitlab-dev-terraform", DENY,
             "roll its own policy back or forward"),
        Case("dev", "lambda:CreateFunction", f"arn:aws:lambda:{r}:{a}:function:x", DENY, "run code as a passed role"),
        Case("dev", "iam:PassRole", role(f"{s}-dev-x"), DENY, "pass its role to Lambda",
             {"iam:PassedToService": "lambda.amazonaws.com"}),
        Case("dev", "cloudformation:CreateStack", f"arn:aws:cloudformation:{r}:{a}:stack/x/1", DENY, "stack as admin"),
        Case("dev", "sts:AssumeRole", role(f"{s}-gitlab-prod"), DENY, "hop to prod"),
        Case("dev", "acm:DeleteCertificate", f"arn:aws:acm:{r}:{a}:certificate/0f1e2d3c", DENY, "persistent", region),
        # --- IAM-1: prod-plan, the read-only role of the drift schedule and the automatic prod plan ---
        *_prod_plan_cases(w),
    ]


def _assume_with_web_identity(w: dict, role: str, sub: str, aud: str = "sts.amazonaws.com") -> str:
    """STS's decision on a GitLab ID token for the role `<slug>-gitlab-<role>`: its trust policy
    (rendered from ci_policies.tf, the one iam.tf gives the role) is the resource policy."""
    host = w["oidc_provider"].split("oidc-provider/", 1)[1]
    # STS compares <issuer>:aud and <issuer>:sub like any string key (IAM user guide, "Available
    # keys for AWS OIDC federation"), but iam-data's Service Authorization Reference lists the
    # keys of a few issuers only, and the simulator drops the others from the request: the
    # issuer's keys are renamed to Google's, in the trust policy and the request alike.
    known = "accounts.google.com"
    trust = json.loads(json.dumps(w["trust"][role]).replace(f'"{host}:', f'"{known}:'))
    assert json.dumps(trust) != json.dumps(w["trust"][role]), "the trust policy no longer names the issuer's keys"
    host = known
    simulation = {
        "request": {
            "principal": w["oidc_provider"],
            "action": "sts:AssumeRoleWithWebIdentity",
            "resource": {"resource": f"arn:aws:iam::{w['account']}:role/{w['slug']}-gitlab-{role}",
                         "accountId": w["account"]},
            "contextVariables": {f"{host}:aud": aud, f"{host}:sub": sub},
        },
        "identityPolicies": [], "serviceControlPolicies": [], "resourceControlPolicies": [],
        "resourcePolicy": trust,
    }
    proc = subprocess.run([_node(), str(IAM_DIR / "simulate.mjs")], input=json.dumps([simulation]), text=True,
                          capture_output=True, cwd=IAM_DIR, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)[0]["result"]


@pytest.mark.parametrize(("role", "ref", "expected"), [
    ("prod-plan", "ref_type:branch:ref:main", ALLOW),
    ("prod-plan", "ref_type:branch:ref:feature", DENY),
    ("prod-plan", "ref_type:branch:ref:main-copy", DENY),
    ("prod-plan", "ref_type:tag:ref:main", DENY),
    ("prod", "ref_type:branch:ref:main", ALLOW),
    ("prod", "ref_type:branch:ref:feature", DENY),
    ("dev", "ref_type:branch:ref:feature", ALLOW),
    ("dev", "ref_type:tag:ref:v1.0.0", DENY),
    ("build", "ref_type:tag:ref:v1.0.0", ALLOW),
    ("promote", "ref_type:branch:ref:main", ALLOW),
    ("promote", "ref_type:branch:ref:feature", DENY),
    ("promote", "ref_type:branch:ref:main-copy", DENY),
    ("promote", "ref_type:tag:ref:main", DENY),
])
def test_ci1_trust_policies_as_sts_decides_them(world: dict, role: str, ref: str, expected: str) -> None:
    """CI-1, IAM-1: only pipelines of the default branch assume prod-plan (and prod); the main
    schedules run on it. The sub claim GitLab writes: project_path:<path>:ref_type:<type>:ref:<ref>."""
    sub = f"project_path:{world['project_path']}:{ref}"
    decision = _assume_with_web_identity(world, role, sub)
    assert (ALLOW if decision == "Allowed" else DENY) == expected, f"{role} for {sub}: {decision}"


def test_ci1_trust_refuses_another_project_and_another_audience(world: dict) -> None:
    main = "ref_type:branch:ref:main"
    other = world["project_path"] + "-fork"
    assert _assume_with_web_identity(world, "prod-plan", f"project_path:{other}:{main}") != "Allowed"
    assert _assume_with_web_identity(world, "prod-plan", f"project_path:{world['project_path']}:{main}",
                                     aud="https://gitlab.com") != "Allowed"


def _prod_plan_cases(w: dict) -> list[Case]:
    s, a, r, zone = w["slug"], w["account"], w["region"], w["zone"]
    bucket = f"arn:aws:s3:::{s}-tfstate-{a}"
    region = {"aws:RequestedRegion": r}
    prod = {"aws:ResourceTag/Environment": "prod", "aws:ResourceTag/Project": s}
    dev = {"aws:ResourceTag/Environment": "dev", "aws:ResourceTag/Project": s}
    state_key = f"arn:aws:kms:{r}:{a}:key/11111111-2222-3333-4444-555555555555"
    state_key_ctx = {"kms:ResourceAliases": [f"alias/{s}-tfstate-{a}"],
                     **{f"aws:ResourceTag/{k}": v for k, v in w["state_key_tags"].items()}}
    env_key = f"arn:aws:kms:{r}:{a}:key/66666666-7777-8888-9999-000000000000"
    key_policy = w["state_key_policy"]
    secret = lambda env, name: f"arn:aws:secretsmanager:{r}:{a}:secret:{s}/{env}/{name}-AbCdEf"
    rds_secret = f"arn:aws:secretsmanager:{r}:{a}:secret:rds!db-0f1e2d3c-AbCdEf"
    db = f"arn:aws:rds:{r}:{a}:db:{s}-prod"
    cluster = f"arn:aws:eks:{r}:{a}:cluster/{s}-prod"
    instance = f"arn:aws:ec2:{r}:{a}:instance/i-0123456789abcdef0"
    role = lambda name: f"arn:aws:iam::{a}:role/{name}"
    repo = f"arn:aws:ecr:{r}:{a}:repository/{s}"
    via_secrets = {"kms:ViaService": f"secretsmanager.{r}.amazonaws.com"}
    P = "prod-plan"
    return [
        # What plan -refresh of the prod ephemeral stack and of the persistent stack reads.
        Case(P, "s3:ListBucket", bucket, ALLOW, "init lists the state bucket"),
        Case(P, "s3:GetObject", f"{bucket}/ephemeral/prod/terraform.tfstate", ALLOW, "reads the prod state"),
        Case(P, "s3:GetObject", f"{bucket}/persistent/terraform.tfstate", ALLOW, "reads the persistent state"),
        Case(P, "kms:Decrypt", state_key, ALLOW, "decrypts the state", state_key_ctx, key_policy),
        Case(P, "ec2:DescribeInstances", "*", ALLOW, "refreshes the network and nodes", region),
        Case(P, "ec2:DescribeAvailabilityZones", "*", ALLOW, "data.aws_availability_zones", region),
        Case(P, "eks:DescribeCluster", cluster, ALLOW, "refreshes the cluster", prod),
        Case(P, "eks:ListAccessEntries", cluster, ALLOW, "refreshes access entries", prod),
        Case(P, "eks:DescribeAddonVersions", "*", ALLOW, "the EKS module's add-on versions"),
        Case(P, "rds:DescribeDBInstances", db, ALLOW, "refreshes the database", prod),
        Case(P, "secretsmanager:DescribeSecret", secret("prod", "app"), ALLOW, "refreshes the secret", prod),
        Case(P, "secretsmanager:GetSecretValue", secret("prod", "database"), ALLOW,
             "aws_secretsmanager_secret_version's refresh is GetSecretValue (host, port, name)", prod),
        Case(P, "secretsmanager:GetSecretValue", secret("prod", "app"), ALLOW,
             "the same refresh of the app secret's version (docs/infrastructure.md)", prod),
        Case(P, "kms:Decrypt", env_key, ALLOW, "decrypts those secrets through Secrets Manager",
             {**prod, **via_secrets}, key_policy),
        Case(P, "kms:DescribeKey", env_key, ALLOW, "refreshes the prod keys", prod, key_policy),
        Case(P, "iam:GetRole", role(f"{s}-prod-nodes"), ALLOW, "refreshes the stack's roles"),
        Case(P, "ecr:DescribeRepositories", repo, ALLOW, "refreshes the repositories"),
        Case(P, "route53:GetHostedZone", zone, ALLOW, "refreshes the zone"),
        Case(P, "acm:DescribeCertificate", f"arn:aws:acm:{r}:{a}:certificate/0f1e2d3c", ALLOW, "certificate", region),
        # ... and nothing it could change anything with.
        Case(P, "ec2:TerminateInstances", instance, DENY, "prod nodes", {**prod, **region}),
        Case(P, "rds:ModifyDBInstance", db, DENY, "turn off deletion protection", prod),
        Case(P, "rds:DeleteDBInstance", db, DENY, "delete the prod database", prod),
        Case(P, "eks:DeleteCluster", cluster, DENY, "delete the prod cluster", prod),
        Case(P, "eks:CreateAccessEntry", cluster, DENY, "become cluster admin", prod),
        Case(P, "s3:PutObject", f"{bucket}/ephemeral/prod/terraform.tfstate", DENY, "rewrite the prod state"),
        Case(P, "s3:PutObject", f"{bucket}/ephemeral/prod/terraform.tfstate.tflock", DENY,
             "not even the lock: its jobs plan with -lock=false"),
        Case(P, "s3:DeleteObject", f"{bucket}/persistent/terraform.tfstate.tflock", DENY, "break an apply's lock"),
        Case(P, "s3:GetObject", f"{bucket}/ephemeral/dev/terraform.tfstate", DENY, "dev's state is not its plan"),
        Case(P, "kms:ScheduleKeyDeletion", state_key, DENY, "the state key", state_key_ctx, key_policy),
        Case(P, "kms:ScheduleKeyDeletion", env_key, DENY, "a prod key", prod, key_policy),
        Case(P, "kms:Decrypt", env_key, DENY, "a prod key outside Secrets Manager", prod, key_policy),
        Case(P, "kms:Encrypt", state_key, DENY, "write state-key ciphertext", state_key_ctx, key_policy),
        Case(P, "secretsmanager:GetSecretValue", rds_secret, DENY, "the master password: no version in the stack",
             {"aws:ResourceTag/aws:rds:primaryDBInstanceArn": db}),
        Case(P, "secretsmanager:GetSecretValue", secret("prod", "other"), DENY, "any other prod secret", prod),
        Case(P, "secretsmanager:GetSecretValue", secret("dev", "app"), DENY, "dev's signing key", dev),
        Case(P, "secretsmanager:PutSecretValue", secret("prod", "app"), DENY, "replace the signing key", prod),
        Case(P, "iam:CreateRole", role(f"{s}-gitlab-x"), DENY, "a role",
             {"iam:PermissionsBoundary": w["boundaries"]["ci"]}),
        Case(P, "iam:PassRole", role(f"{s}-prod-nodes"), DENY, "pass a prod role",
             {"iam:PassedToService": "ec2.amazonaws.com"}),
        Case(P, "iam:PutRolePolicy", role(f"{s}-gitlab-prod-plan"), DENY, "grow its own rights",
             {"iam:PermissionsBoundary": w["boundaries"]["ci"]}),
        Case(P, "iam:AttachRolePolicy", role(f"{s}-gitlab-prod-plan"), DENY, "attach admin to itself",
             {"iam:PermissionsBoundary": w["boundaries"]["ci"],
              "iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        Case(P, "sts:AssumeRole", role(f"{s}-gitlab-prod"), DENY, "hop to the prod role"),
        Case(P, "ecr:PutImage", repo, DENY, "push or promote an image"),
        Case(P, "route53:ChangeResourceRecordSets", zone, DENY, "change DNS"),
        Case(P, "ssm:PutParameter", f"arn:aws:ssm:{r}:{a}:parameter/{s}/prod/x", DENY, "write a parameter", prod),
        Case(P, "eks:DescribeCluster", f"arn:aws:eks:{r}:{a}:cluster/{s}-dev", DENY, "the dev cluster", dev),
    ]


def _simulate(w: dict, table: list[Case]) -> list[dict]:
    simulations = []
    for case in table:
        principal = w["principals"][case.principal]
        simulations.append({
            "request": {
                "principal": principal["arn"],
                "action": case.action,
                "resource": {"resource": case.resource, "accountId": w["account"]},
                "contextVariables": {"aws:PrincipalArn": principal["arn"], **case.context},
            },
            "identityPolicies": [{"name": f"p{i}", "policy": p} for i, p in enumerate(principal["identity"])],
            "permissionBoundaryPolicies": [{"name": "boundary", "policy": principal["boundary"]}],
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
            **({"resourcePolicy": case.resource_policy} if case.resource_policy else {}),
        })
    proc = subprocess.run([_node(), str(IAM_DIR / "simulate.mjs")], input=json.dumps(simulations), text=True,
                          capture_output=True, cwd=IAM_DIR, timeout=300, check=False)
    assert proc.returncode == 0, f"iam-simulate failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def test_iam1_iam2_containment_table(world: dict) -> None:
    table = cases(world)
    assert len(table) >= 40, "IAM-1: the case table must hold at least 40 cases"
    results = _simulate(world, table)
    wrong = []
    for case, result in zip(table, results, strict=True):
        assert result["result"] != "error", f"simulator rejected {case}: {result.get('detail')}"
        decision = ALLOW if result["result"] == "Allowed" else DENY
        if decision != case.expected:
            wrong.append(f"{case.principal} {case.action} {case.resource}: {decision}, "
                         f"expected {case.expected} ({case.why})")
    assert not wrong, "IAM-1/IAM-2 violated:\n" + "\n".join(wrong)


def test_iam1_only_the_default_branch_writes_a_deployable_tag(world: dict) -> None:
    """IAM-1, CI-4: ECR has no condition key on the image tag, so a role that may PutImage in a
    repository may write any tag there. The line is drawn by repository: every ref's build role
    writes candidates, only the promote role (default branch, test below) writes the service's."""
    s, a, r = world["slug"], world["account"], world["region"]
    repo = f"arn:aws:ecr:{r}:{a}:repository/{s}"
    candidates = f"arn:aws:ecr:{r}:{a}:repository/{s}-candidates"
    cache = f"arn:aws:ecr:{r}:{a}:repository/{s}/cache"
    push = ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]
    table = [
        *[Case("build", action, repo, DENY, "any ref writes <sha> or latest without a scan") for action in push],
        *[Case("dev", action, repo, DENY, "any branch, through the dev role") for action in push],
        Case("prod-plan", "ecr:PutImage", repo, DENY, "read only"),
        Case("dev-made-admin", "ecr:PutImage", repo, DENY, "escalation: a role of dev's making"),
        *[Case("build", action, candidates, ALLOW, "build-image pushes <sha>-candidate from any ref") for action in push],
        Case("build", "ecr:PutImage", cache, ALLOW, "Kaniko's layer cache"),
        Case("build", "ecr:BatchGetImage", repo, ALLOW, "the nightly rescan reads the deployed image (SEC-1)"),
        Case("build", "ecr:GetDownloadUrlForLayer", repo, ALLOW, "Trivy pulls the deployed image's layers"),
        Case("build", "ecr:DeleteRepository", candidates, DENY, "build deletes nothing"),
        *[Case("promote", action, repo, ALLOW, "the promote job copies the scanned candidate in") for action in push],
        Case("promote", "ecr:GetDownloadUrlForLayer", candidates, ALLOW, "reads the candidate's layers"),
        Case("promote", "ecr:BatchGetImage", candidates, ALLOW, "reads the candidate's manifest by digest"),
        Case("promote", "ecr:PutImage", candidates, DENY, "it reads candidates, never writes them"),
        Case("promote", "ecr:PutImage", cache, DENY, "nor the cache"),
        Case("promote", "ecr:DeleteRepository", repo, DENY, "nor deletes"),
        Case("promote", "ecr:PutLifecyclePolicy", repo, DENY, "nor the lifecycle (persistent stack)"),
        Case("promote", "ecr:PutImage", f"arn:aws:ecr:{r}:{a}:repository/other-service", DENY, "another service"),
        Case("promote", "s3:GetObject", f"arn:aws:s3:::{s}-tfstate-{a}/ephemeral/prod/terraform.tfstate", DENY,
             "no state"),
        Case("promote", "sts:AssumeRole", f"arn:aws:iam::{a}:role/{s}-gitlab-prod", DENY, "no hop to prod"),
    ]
    results = _simulate(world, table)
    wrong = [f"{c.principal} {c.action} {c.resource}: {res['result']}, expected {c.expected} ({c.why})"
             for c, res in zip(table, results, strict=True)
             if (ALLOW if res["result"] == "Allowed" else DENY) != c.expected]
    assert not wrong, "IAM-1: deployable tags\n" + "\n".join(wrong)


def test_simulator_sees_the_release_0_1_0_escalation(world: dict) -> None:
    """The evaluator catches what the issue found: dev attaching AdministratorAccess to an unbounded role."""
    s, a = world["slug"], world["account"]
    old_dev = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["iam:CreateRole", "iam:AttachRolePolicy"],
        "Resource": f"arn:aws:iam::{a}:role/{s}-dev-*"}]}
    world = {**world, "principals": {**world["principals"], "old-dev": {
        "arn": f"arn:aws:iam::{a}:role/{s}-gitlab-dev", "identity": [old_dev], "boundary": ADMIN}}}
    table = [Case("old-dev", "iam:AttachRolePolicy", f"arn:aws:iam::{a}:role/{s}-dev-x", ALLOW, "release 0.1.0",
                  {"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"})]
    assert _simulate(world, table)[0]["result"] == "Allowed"


def _statements(world: dict) -> list[tuple[str, dict]]:
    found = []
    for name, principal in world["principals"].items():
        for policy in [*principal["identity"], principal["boundary"]]:
            found += [(name, statement) for statement in policy["Statement"]]
    return found


def test_every_scoped_action_can_be_scoped_and_exists(world: dict) -> None:
    """An action AWS authorizes only on "*" never matches a statement scoped to ARNs: the apply
    would fail with AccessDenied (eks:CreateCluster was one). Unknown action names fail too."""
    named: set[str] = set()
    scoped: dict[str, list[str]] = {}
    for principal, statement in _statements(world):
        if "Action" not in statement:  # NotAction: a deny of everything but the named actions
            named.update(a for a in statement["NotAction"] if "*" not in a)
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resource = statement.get("Resource", "*")  # NotResource only in denies
        resources = resource if isinstance(resource, list) else [resource]
        for action in actions:
            if "*" in action:
                continue
            named.add(action)
            if statement["Effect"] == "Allow" and resources != ["*"]:
                scoped.setdefault(action, []).append(f"{principal}/{statement.get('Sid')}")
    proc = subprocess.run([_node(), str(IAM_DIR / "wildcard_only.mjs")], input=json.dumps(sorted(named)), text=True,
                          capture_output=True, cwd=IAM_DIR, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    verdict = json.loads(proc.stdout)
    unknown = sorted(a for a, v in verdict.items() if v == "unknown")
    assert not unknown, f"actions AWS does not know: {unknown}"
    unscopable = {a: where for a, where in scoped.items() if verdict[a] is True}
    assert not unscopable, f"these actions only match Resource \"*\", so their statements never apply: {unscopable}"


def test_wildcard_only_lookup_knows_create_cluster() -> None:
    names = json.dumps(["eks:CreateCluster", "eks:DeleteCluster"])
    proc = subprocess.run([_node(), str(IAM_DIR / "wildcard_only.mjs")], input=names, text=True,
                          capture_output=True, cwd=IAM_DIR, timeout=120, check=False)
    assert json.loads(proc.stdout) == {"eks:CreateCluster": True, "eks:DeleteCluster": False}


@dataclass(frozen=True)
class TagThenAct:
    """Tag a resource as one's own, then, if that was allowed, act on it with the new tags."""

    principal: str
    tag_action: str
    resource: str
    tags: dict
    then: list[str]
    why: str
    context: dict = field(default_factory=dict)
    resource_policy: dict | None = None


def _tag_then_act(w: dict, sequences: list[TagThenAct]) -> list[str]:
    """Every sequence whose tagging step is allowed and whose next step is then allowed."""
    request_tags = lambda t: {**{f"aws:RequestTag/{k}": v for k, v in t.items()}, "aws:TagKeys": sorted(t)}
    steps = [Case(q.principal, q.tag_action, q.resource, ALLOW, q.why, {**q.context, **request_tags(q.tags)},
                  q.resource_policy) for q in sequences]
    tagged = [q for q, result in zip(sequences, _simulate(w, steps), strict=True) if result["result"] == "Allowed"]
    def now_tagged(q: TagThenAct) -> dict:
        service = q.tag_action.split(":")[0]
        keys = {f"aws:ResourceTag/{k}": v for k, v in q.tags.items()}
        if service in ("autoscaling", "ec2", "elasticloadbalancing"):  # service-specific alias of the key
            keys.update({f"{service}:ResourceTag/{k}": v for k, v in q.tags.items()})
        return {**q.context, **keys}

    follow = [Case(q.principal, action, q.resource, DENY, q.why, now_tagged(q), q.resource_policy)
              for q in tagged for action in q.then]
    results = _simulate(w, follow) if follow else []
    for case, result in zip(follow, results, strict=True):
        assert result["result"] != "error", f"simulator rejected {case}: {result.get('detail')}"
    return [f"{c.principal}: {c.why}: tagged {c.resource}, then {c.action} allowed"
            for c, result in zip(follow, results, strict=True) if result["result"] == "Allowed"]


def test_iam1_no_role_tags_a_resource_into_its_reach(world: dict) -> None:
    """IAM-1: "resources tagged for my environment" must not include what a role can tag itself."""
    w, s, a, r = world, world["slug"], world["account"], world["region"]
    key = lambda n: f"arn:aws:kms:{r}:{a}:key/{n}1111111-2222-3333-4444-555555555555"
    state_key_ctx = {"kms:ResourceAliases": [f"alias/{s}-tfstate-{a}"],
                     **{f"aws:ResourceTag/{k}": v for k, v in w["state_key_tags"].items()}}
    key_policy = w["state_key_policy"]
    destroy_key = ["kms:ScheduleKeyDeletion", "kms:PutKeyPolicy", "kms:DisableKey", "kms:CreateGrant"]
    own = lambda env: {"Environment": env, "Project": s}
    sequences = [
        TagThenAct("dev", "kms:TagResource", key(0), own("dev"), destroy_key, "the state key",
                   state_key_ctx, key_policy),
        TagThenAct("prod", "kms:TagResource", key(0), own("prod"), destroy_key, "the state key",
                   state_key_ctx, key_policy),
        TagThenAct("dev", "kms:TagResource", key(1), own("dev"), destroy_key, "an untagged key of the account",
                   {}, key_policy),
        TagThenAct("prod", "kms:TagResource", key(1), own("prod"), destroy_key, "an untagged key of the account",
                   {}, key_policy),
        TagThenAct("dev", "kms:TagResource", key(2), own("dev"), destroy_key, "a prod key",
                   {"aws:ResourceTag/Environment": "prod", "aws:ResourceTag/Project": s}, key_policy),
        TagThenAct("dev-made-admin", "kms:TagResource", key(0), own("dev"), destroy_key, "the state key",
                   state_key_ctx, key_policy),
        TagThenAct("prod-grown-admin", "kms:TagResource", key(0), own("prod"), destroy_key, "the state key",
                   state_key_ctx, key_policy),
    ]
    instance = f"arn:aws:ec2:{r}:{a}:instance/i-0123456789abcdef0"
    sg = f"arn:aws:ec2:{r}:{a}:security-group/sg-0123456789abcdef0"
    eni = f"arn:aws:ec2:{r}:{a}:network-interface/eni-0123456789abcdef0"
    asg = f"arn:aws:autoscaling:{r}:{a}:autoScalingGroup:0f1e2d3c-aaaa-bbbb-cccc-0123456789ab:autoScalingGroupName/x"
    alb = f"arn:aws:elasticloadbalancing:{r}:{a}:loadbalancer/app/x/0123456789abcdef"
    region = {"aws:RequestedRegion": r}
    sequences += [
        TagThenAct(p, "ec2:CreateTags", instance, own(env), ["ec2:TerminateInstances", "ec2:ModifyInstanceAttribute"],
                   "an untagged instance", region)
        for p, env in (("dev", "dev"), ("prod", "prod"), ("dev-made-admin", "dev"), ("dev-lb-controller", "dev"))
    ] + [
        TagThenAct("dev", "ec2:CreateTags", sg, own("dev"),
                   ["ec2:AuthorizeSecurityGroupIngress", "ec2:DeleteSecurityGroup"], "an untagged security group",
                   region),
        TagThenAct("dev-lb-controller", "ec2:CreateTags", sg, own("dev"), ["ec2:AuthorizeSecurityGroupIngress"],
                   "an untagged security group", region),
        TagThenAct("prod", "ec2:CreateTags", eni, own("prod"), ["ec2:DeleteNetworkInterface"], "an untagged ENI",
                   region),
        TagThenAct("dev-lb-controller", "ec2:CreateTags", eni, own("dev"), ["ec2:ModifyNetworkInterfaceAttribute"],
                   "an untagged ENI", region),
        TagThenAct("dev-cluster", "ec2:CreateTags", sg, own("dev"), ["ec2:AuthorizeSecurityGroupIngress"],
                   "a role named like the cluster role, made by a branch: an untagged security group", region),
        TagThenAct("dev", "autoscaling:CreateOrUpdateTags", asg, own("dev"),
                   ["autoscaling:DeleteAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup"], "an untagged ASG",
                   region),
        TagThenAct("dev", "elasticloadbalancing:AddTags", alb, own("dev"), ["elasticloadbalancing:DeleteLoadBalancer"],
                   "an untagged ALB", region),
        TagThenAct("dev-lb-controller", "elasticloadbalancing:AddTags", alb, own("dev"),
                   ["elasticloadbalancing:DeleteLoadBalancer"], "an untagged ALB", region),
    ]
    escalations = _tag_then_act(w, sequences)
    assert not escalations, "IAM-1: tag-then-act escalation:\n" + "\n".join(escalations)


def test_iam1_tagging_is_still_possible_where_the_apply_needs_it(world: dict) -> None:
    """The contained roles still create keys with their tags and retag their own keys."""
    w, s, a, r = world, world["slug"], world["account"], world["region"]
    key = f"arn:aws:kms:{r}:{a}:key/71111111-2222-3333-4444-555555555555"
    table = [
        Case(env, "kms:TagResource", "*", ALLOW, "CreateKey with Tags (authorized on *)",
             {"aws:RequestTag/Environment": env, "aws:RequestTag/Project": s,
              "aws:TagKeys": ["Environment", "Project"]})
        for env in ("dev", "prod")
    ] + [
        Case(env, "kms:TagResource", key, ALLOW, "retag its own key",
             {"aws:ResourceTag/Environment": env, "aws:ResourceTag/Project": s,
              "aws:RequestTag/Environment": env, "aws:TagKeys": ["Environment"]}, w["state_key_policy"])
        for env in ("dev", "prod")
    ] + [
        Case("dev", "kms:TagResource", key, DENY, "hand its key to prod",
             {"aws:ResourceTag/Environment": "dev", "aws:ResourceTag/Project": s,
              "aws:RequestTag/Environment": "prod", "aws:TagKeys": ["Environment"]}, w["state_key_policy"]),
    ]
    results = _simulate(w, table)
    wrong = [f"{c.principal} {c.action} {c.resource}: {res['result']}, expected {c.expected} ({c.why})"
             for c, res in zip(table, results, strict=True)
             if (ALLOW if res["result"] == "Allowed" else DENY) != c.expected]
    assert not wrong, "\n".join(wrong)


IAM_DATA = IAM_DIR / "node_modules" / "@cloud-copilot" / "iam-data" / "data"


def _supported_keys(action: str) -> list[str] | None:
    """Condition keys the Service Authorization Reference lists for an action (iam-data's copy of
    it): the action's own and those of every resource type it takes. None for an unknown action."""
    service, name = action.split(":")
    actions = json.loads((IAM_DATA / "actions" / f"{service}.json").read_text())
    if name.lower() not in actions:
        return None
    entry = actions[name.lower()]
    resource_types = json.loads((IAM_DATA / "resourceTypes" / f"{service}.json").read_text())
    keys = list(entry["conditionKeys"])
    for resource in entry["resourceTypes"]:
        keys += resource["conditionKeys"] + resource_types.get(resource["name"].lower(), {}).get("conditionKeys", [])
    return keys


def _key_matches(pattern: str, key: str) -> bool:
    return re.fullmatch(re.sub(r"\\\$\\\{\w+\\\}", ".+", re.escape(pattern)), key, re.IGNORECASE) is not None


def _supports(action: str, key: str) -> bool:
    tag_key = re.match(r"aws:(RequestTag/|ResourceTag/|TagKeys$)", key, re.IGNORECASE)
    if key.lower().startswith("aws:") and not tag_key:
        return True  # global condition keys are in every request context
    return any(_key_matches(pattern, key) for pattern in _supported_keys(action) or [])


def _expand(action: str) -> list[str]:
    service, name = action.split(":")
    actions = json.loads((IAM_DATA / "actions" / f"{service}.json").read_text())
    pattern = re.escape(name).replace(r"\*", ".*")
    return [f"{service}:{a['name']}" for a in actions.values() if re.fullmatch(pattern, a["name"], re.IGNORECASE)]


def test_every_condition_key_is_supported_by_the_actions_it_conditions(world: dict) -> None:
    """A key an action does not support is absent from its requests: an Allow on it never
    applies (the apply fails), a Deny on it never fires (the guard fails open). Checked against
    the Service Authorization Reference as iam-data carries it (docs/CONTRACTS.md)."""
    if not IAM_DATA.is_dir():
        _node()
    wrong = _dead_condition_keys(_statements(world))
    assert not wrong, "condition keys that never reach the decision:\n" + "\n".join(wrong)


def test_condition_key_check_catches_a_guard_that_never_fires() -> None:
    if not IAM_DATA.is_dir():
        _node()
    guard = {"Sid": "Dead", "Effect": "Deny", "Action": ["ec2:ModifyEbsDefaultKmsKeyId"], "Resource": "*",
             "Condition": {"StringNotEquals": {"aws:ResourceTag/Environment": ["dev"]}}}
    assert _dead_condition_keys([("dev", guard)]) == [
        "dev/Dead: ec2:ModifyEbsDefaultKmsKeyId does not support aws:ResourceTag/Environment"]


def _dead_condition_keys(statements: list[tuple[str, dict]]) -> list[str]:
    wrong = []
    for principal, statement in statements:
        if "Condition" not in statement or "Action" not in statement:
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if actions == ["*"]:
            continue  # deny of everything tagged otherwise: the global tag keys, checked per case
        for operator, block in statement["Condition"].items():
            for key, value in block.items():
                absence_is_the_point = operator == "Null" and value == "true"
                for action in actions:
                    if "*" in action:
                        if not any(_supports(a, key) for a in _expand(action)):
                            wrong.append(f"{principal}/{statement.get('Sid')}: no {action} supports {key}")
                    elif not _supports(action, key) and not absence_is_the_point:
                        wrong.append(f"{principal}/{statement.get('Sid')}: {action} does not support {key}")
    return sorted(set(wrong))


def _ephemeral_role_names(service: Path, slug: str, environment: str) -> list[str]:
    """The IAM role names the ephemeral stack creates, read from its module calls."""
    import hcl2

    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    render = lambda value: value.replace("${local.name}", f"{slug}-{environment}")
    names = []
    for path in sorted((service / "infra" / "terraform" / "ephemeral").glob("*.tf")):
        with path.open() as handle:
            modules = hcl2.load(handle, serialization_options=options).get("module", [])
        for block in modules:
            for body in block.values():
                source = body["source"]
                if source.endswith("/eks/aws"):
                    role = render(body["iam_role_name"])
                    # iam_role_use_name_prefix: the prefix is kept when "<role>-" fits 38 characters.
                    names.append(role + "-20261201150405000000000001" if len(role + "-") <= 38 else role)
                    names += [render(g["iam_role_name"]) for g in body["eks_managed_node_groups"].values()]
                elif source.endswith("/eks-pod-identity/aws"):
                    assert body.get("use_name_prefix") is False, "pod identity roles have fixed names"
                    names.append(render(body["name"]))
                elif source.endswith("/vpc/aws"):
                    names.append(render(body["vpc_flow_log_iam_role_name"]))
    return names


def test_iam2_ci_roles_can_create_every_role_the_ephemeral_stack_creates(world: dict, service: Path) -> None:
    """The CI roles create roles by exact name (IAM-2): a role added to or renamed in the stack
    must be added to ci_policies.tf too, or the apply fails. Read from the stack, decided here."""
    a = world["account"]
    table = []
    for environment in ("dev", "prod"):
        names = _ephemeral_role_names(service, world["slug"], environment)
        assert len(names) == 5, f"the stack's roles changed: {names}"
        boundary = {"iam:PermissionsBoundary": world["boundaries"][environment]}
        table += [Case(environment, "iam:CreateRole", f"arn:aws:iam::{a}:role/{name}", ALLOW, "the stack's role",
                       boundary) for name in names]
    results = _simulate(world, table)
    refused = [c.resource for c, r in zip(table, results, strict=True) if r["result"] != "Allowed"]
    assert not refused, f"IAM-2: the CI role cannot create roles its stack creates: {refused}"
