"""Mutation testing of the conformance report (scripts/practices.py, issue 14).

Each mutant is one small edit a team in a hurry makes to a freshly generated service: a gate
disabled in a new way, a permission widened, a safety step removed, a setting weakened in one
overlay or one environment only, a dependency added back. Applied alone, it must turn exactly its
practice's line FAIL (and the checklist items covering that practice), with a message saying what
to fix; the unmutated service stays all PASS/MANUAL. The mutation score per practice is printed
and must be 100 %, on every answer combination of the harness.

The report runs in-process (the service's own scripts/practices.py, imported), with deptry from
the service's locked virtualenv and kubectl from this one; the tools it runs are remembered by the
content of the files they read, so a mutant of the pipeline does not re-render the overlays.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from conftest import TEMPLATE_ROOT, answers_of
from test_practices import installed_venvs  # noqa: F401 - the fixture, shared with test_practices

HEX = "0123456789abcdef" * 4


@dataclass(frozen=True)
class Edit:
    path: str
    old: str | None  # None: append `new` to the file (creating it); "re:<pattern>": the first match
    new: str


@dataclass(frozen=True)
class Mutant:
    practice: str
    name: str
    edits: tuple[Edit, ...]
    says: str  # what the FAIL line must say, so a person knows what to fix


def mutant(practice: str, name: str, path: str, old: str | None, new: str, says: str) -> Mutant:
    return Mutant(practice, name, (Edit(path, old, new),), says)


CI = ".gitlab-ci.yml"
TF_CI = ".gitlab/ci/terraform.yml"
DEPLOYMENT = "deploy/k8s/base/deployment.yaml"
PROD = "deploy/k8s/overlays/prod/kustomization.yaml"
GITLAB = "infra/terraform/gitlab"
PERSISTENT = "infra/terraform/persistent"
EPHEMERAL = "infra/terraform/ephemeral"
SCAN = '--exit-code 1 --ignorefile .trivyignore.yaml --cache-dir .cache/trivy\n      "${CANDIDATE_IMAGE}:${CI_COMMIT_SHA}-candidate@${digest}"'
RESCAN = '--ignorefile .trivyignore.yaml --cache-dir .cache/trivy "${image}"'
# promote-image: what it needs, and the rule that runs it on the default branch.
PROMOTE_NEEDS = "  needs: [build-image, scan-image]\n"
PROMOTE_RULE = "    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n  script:\n    - *candidate-digest"
KANIKO = "ghcr.io/osscontainertools/kaniko:v1.28.5-debug@sha256:d6d74217dc077acfd3094992e917c357080a2d3fdd1042a49e34e29a7e57c572"
PROD_APP_PATCH = "            containers:\n              - name: app\n                resources:\n"
DEV = "deploy/k8s/overlays/dev/kustomization.yaml"
NETWORK_POLICY = "deploy/k8s/base/network-policy.yaml"
SCAN_OPTIONS = "--scanners vuln --pkg-types os,library --severity HIGH,CRITICAL\n      --ignore-unfixed " + SCAN
PRESTOP = "            preStop:\n              sleep:\n                seconds: 20\n"


def json_patch(kind: str, name: str, operation: str) -> str:
    """A kustomize inline JSON 6902 patch, the way a team adds one to an overlay in a hurry."""
    indented = "".join(f"      {line}\n" for line in operation.splitlines())
    return f"patches:\n  - target:\n      kind: {kind}\n      name: {name}\n    patch: |-\n{indented}"

MUTANTS: list[Mutant] = [
    # --- CI-1 -------------------------------------------------------------------------------
    mutant("CI-1", "a stored AWS key for a quick fix", CI, "  PIP_CACHE_DIR: $CI_PROJECT_DIR/.cache/pip\n",
           "  PIP_CACHE_DIR: $CI_PROJECT_DIR/.cache/pip\n  AWS_ACCESS_KEY_ID: $DEPLOY_KEY_ID\n", "uses AWS_ACCESS_KEY_ID"),
    mutant("CI-1", "developers may pass pipeline variables", f"{GITLAB}/main.tf",
           'ci_pipeline_variables_minimum_override_role = "maintainer"',
           'ci_pipeline_variables_minimum_override_role = "developer"', "minimum_override_role is developer"),
    mutant("CI-1", "a project variable shown in the UI", f"{GITLAB}/main.tf", "  hidden    = true\n",
           "  hidden    = false\n", "is not hidden = true"),
    mutant("CI-1", "the OIDC audience changed", CI, "      aud: sts.amazonaws.com\n",
           "      aud: https://gitlab.com\n", "aud sts.amazonaws.com"),
    # --- CI-2 -------------------------------------------------------------------------------
    mutant("CI-2", "the region set under variables", CI, "  PIP_CACHE_DIR: $CI_PROJECT_DIR/.cache/pip\n",
           "  PIP_CACHE_DIR: $CI_PROJECT_DIR/.cache/pip\n  AWS_REGION: us-east-1\n", "sets AWS_REGION under variables"),
    mutant("CI-2", "the session name export dropped", CI,
           '    - export AWS_ROLE_SESSION_NAME="gitlab-${CI_PROJECT_ID}-${CI_JOB_ID}"\n', "",
           "does not export AWS_ROLE_SESSION_NAME"),
    # --- CI-3 -------------------------------------------------------------------------------
    mutant("CI-3", "docker:dind to build faster", CI, "  interruptible: true\n  script:\n    # DOCKER_CONFIG",
           f"  interruptible: true\n  services:\n    - name: docker:27.3.1-dind@sha256:{HEX}\n  script:\n    # DOCKER_CONFIG",
           "runs a docker:dind service"),
    Mutant("CI-3", "the Kaniko image moved into a variable", (
        Edit(CI, f"    name: {KANIKO}\n", "    name: ${KANIKO_IMAGE}\n"),
        Edit(CI, "  interruptible: true\n  script:\n    # DOCKER_CONFIG",
             f"  variables:\n    KANIKO_IMAGE: {KANIKO}\n  interruptible: true\n  script:\n    # DOCKER_CONFIG"),
    ), "is a variable; a pipeline variable replaces it"),
    # --- CI-4 -------------------------------------------------------------------------------
    mutant("CI-4", "the scan made non-blocking with || true", CI, SCAN, SCAN + " || true", "|| true"),
    mutant("CI-4", "allow_failure on the scan", CI, "  needs: [build-image]\n",
           "  needs: [build-image]\n  allow_failure: true\n", "allows failure"),
    mutant("CI-4", "allow_failure with exit codes", CI, "  needs: [build-image]\n",
           "  needs: [build-image]\n  allow_failure:\n    exit_codes: [1]\n", "allows exit codes [1]"),
    mutant("CI-4", "a rule making the scan manual on branches", CI, "  needs: [build-image]\n",
           "  needs: [build-image]\n  rules:\n    - if: $CI_COMMIT_BRANCH\n      when: manual\n    - when: on_success\n",
           "`when: manual` in a push to the default branch"),
    mutant("CI-4", "set +e before the scan", CI, "    - trivy image --image-src remote",
           "    - set +e\n    - trivy image --image-src remote", "after `set +e`"),
    mutant("CI-4", "exit code 0", CI, SCAN, SCAN.replace("--exit-code 1", "--exit-code 0"), "without --exit-code 1"),
    Mutant("CI-4", "the scan in an if that only warns", (
        Edit(CI, "    - trivy image --image-src remote", "    - if ! trivy image --image-src remote"),
        Edit(CI, SCAN, SCAN + '; then echo "vulnerabilities found, see the log"; fi'),
    ), "negates or tests the command"),
    mutant("CI-4", "promote needs the scan as optional", CI, PROMOTE_NEEDS,
           "  needs: [build-image, {job: scan-image, optional: true}]\n", "needs the scan as optional"),
    mutant("CI-4", "HIGH dropped from the severities", CI, "--pkg-types os,library --severity HIGH,CRITICAL\n"
           "      --ignore-unfixed --exit-code 1 --ignorefile .trivyignore.yaml --cache-dir .cache/trivy\n      \"${CANDIDATE_IMAGE}:${CI_COMMIT_SHA}",
           "--pkg-types os,library --severity CRITICAL\n      --ignore-unfixed --exit-code 1 --ignorefile "
           ".trivyignore.yaml --cache-dir .cache/trivy\n      \"${CANDIDATE_IMAGE}:${CI_COMMIT_SHA}", "leaves out HIGH"),
    # Issue 14 review: gates disabled in ways the first report did not know.
    mutant("CI-4", "the scan followed by && echo ok || echo warn", CI, SCAN,
           SCAN + ' && echo "image is clean" || echo "vulnerabilities found, see the log above"', "continues with `&& echo"),
    mutant("CI-4", "allow_failure through a YAML merge key", CI, "\nscan-image:\n",
           "\n.lenient: &lenient\n  allow_failure: true\n\nscan-image:\n  <<: *lenient\n", "allows failure"),
    mutant("CI-4", "promote always on the default branch", CI, PROMOTE_RULE, PROMOTE_RULE.replace(
           "\n  script:", "\n      when: always\n  script:"), "promotes after a failed scan"),
    # A rule without `when` takes the job's (GitLab Ci::Build::Rules, default_when): always here.
    mutant("CI-4", "promote `when: always` at the job level", CI, PROMOTE_NEEDS, PROMOTE_NEEDS + "  when: always\n",
           "promotes after a failed scan"),
    mutant("CI-4", "promote on_failure in merge requests", CI, PROMOTE_NEEDS + "  rules:\n",
           PROMOTE_NEEDS + "  rules:\n    - if: $CI_MERGE_REQUEST_IID\n      when: on_failure\n",
           "`when: on_failure` in a merge request"),
    mutant("CI-4", "the severity shortened to -s CRITICAL", CI, SCAN_OPTIONS,
           SCAN_OPTIONS.replace("--severity HIGH,CRITICAL", "-s CRITICAL"), "leaves out HIGH"),
    mutant("CI-4", "the scan looks for secrets only", CI, SCAN_OPTIONS,
           SCAN_OPTIONS.replace("--scanners vuln", "--scanners secret"), "does not scan for vulnerabilities"),
    mutant("CI-4", "the scan reads OS packages only", CI, SCAN_OPTIONS,
           SCAN_OPTIONS.replace("--pkg-types os,library", "--pkg-types os"), "leaves out library packages"),
    Mutant("CI-4", "the scan's report kept in an exported variable", (
        Edit(CI, "    - trivy image --image-src remote", '    - export TRIVY_REPORT="$(trivy image --image-src remote'),
        Edit(CI, SCAN, SCAN + ')"'),
    ), "inside a quoted string"),
    # --- CI-5 -------------------------------------------------------------------------------
    mutant("CI-5", "Kaniko without the empty entrypoint", CI,
           '-debug@sha256:d6d74217dc077acfd3094992e917c357080a2d3fdd1042a49e34e29a7e57c572\n    entrypoint: [""]\n',
           "-debug@sha256:d6d74217dc077acfd3094992e917c357080a2d3fdd1042a49e34e29a7e57c572\n", 'needs `entrypoint: [""]`'),
    mutant("CI-5", "the slim Kaniko image", CI, "kaniko:v1.28.5-debug@", "kaniko:v1.28.5@", "is not a -debug variant"),
    mutant("CI-5", "trivy-fs without the empty entrypoint", CI,
           '    entrypoint: [""]\n  interruptible: true\n  cache:\n    key: trivy\n    paths:\n      - .cache/trivy\n'
           "  # Every option that decides what fails is on the command line",
           "  interruptible: true\n  cache:\n    key: trivy\n    paths:\n      - .cache/trivy\n"
           "  # Every option that decides what fails is on the command line", "job trivy-fs: image"),
    # --- TF-1 -------------------------------------------------------------------------------
    mutant("TF-1", "an interruptible apply", TF_CI, "terraform-apply-dev:\n",
           "terraform-apply-dev:\n  interruptible: true\n", "runs Terraform but is interruptible"),
    mutant("TF-1", "the resource_group of the dev apply removed", TF_CI,
           "  stage: infrastructure\n  resource_group: terraform-ephemeral-dev\n  script:\n    - scripts/tf ephemeral dev init\n"
           "    - scripts/tf ephemeral dev plan -out=dev.tfplan\n    - scripts/tf ephemeral dev apply",
           "  stage: infrastructure\n  script:\n    - scripts/tf ephemeral dev init\n"
           "    - scripts/tf ephemeral dev plan -out=dev.tfplan\n    - scripts/tf ephemeral dev apply",
           "without a resource_group"),
    mutant("TF-1", "an included apply made interruptible from the main file", CI, None,
           "\n# Plans are safe to cancel; let a newer commit stop them.\nterraform-apply-dev:\n  interruptible: true\n",
           "job terraform-apply-dev: runs Terraform but is interruptible"),
    mutant("TF-1", "the lock file turned off", f"{GITLAB}/backend.tf", "use_lockfile = true", "use_lockfile = false",
           "without use_lockfile = true"),
    # --- TF-2 -------------------------------------------------------------------------------
    mutant("TF-2", "the destroy schedule renamed", f"{GITLAB}/schedules.tf", '  value                = "destroy-ephemeral"\n',
           '  value                = "destroy-dev"\n', "SCHEDULED_JOB=destroy-ephemeral"),
    mutant("TF-2", "the registry may be destroyed", f"{PERSISTENT}/main.tf", "    prevent_destroy = true\n",
           "    prevent_destroy = false\n", "aws_ecr_repository.service lacks lifecycle prevent_destroy"),
    mutant("TF-2", "dev state written under the persistent key", f"{EPHEMERAL}/dev.s3.tfbackend", None,
           'key = "persistent/terraform.tfstate"\n', "share state keys"),
    # --- TF-3 -------------------------------------------------------------------------------
    mutant("TF-3", "the drift schedule paused", f"{GITLAB}/schedules.tf", "  active         = true\n  ",
           "  active         = true\n  ", "drift"),  # replaced below: the second schedule
    mutant("TF-3", "drift reported but never failing", TF_CI, "    - scripts/tf ephemeral prod plan -detailed-exitcode -lock=false\n",
           "    - scripts/tf ephemeral prod plan -detailed-exitcode -lock=false || echo drift\n", "|| echo drift"),
    mutant("TF-3", "drift allowed to fail", TF_CI, "    action: verify\n  rules:\n",
           "    action: verify\n  allow_failure: true\n  rules:\n", "allows failure in the drift schedule"),
    # --- TF-4 -------------------------------------------------------------------------------
    mutant("TF-4", "NAT gateway switched off to save money", f"{EPHEMERAL}/network.tf", "enable_nat_gateway     = true",
           "enable_nat_gateway     = false", "no NAT gateway"),
    mutant("TF-4", "nodes in the public subnets", f"{EPHEMERAL}/cluster.tf", "subnet_ids = module.vpc.private_subnets",
           "subnet_ids = module.vpc.public_subnets", "puts the nodes in module.vpc.public_subnets"),
    mutant("TF-4", "internal-elb tag removed", f"{EPHEMERAL}/network.tf", '    "kubernetes.io/role/internal-elb" = 1\n', "",
           "lack kubernetes.io/role/internal-elb"),
    # --- TF-5 -------------------------------------------------------------------------------
    mutant("TF-5", "make tf-destroy straight to terraform", "Makefile", "tf-destroy: ## Destroy the ephemeral stack of ENV, "
           "Kubernetes load balancers first (TF-5)\n\tscripts/destroy-ephemeral $(ENV)\n",
           "tf-destroy: ## Destroy the ephemeral stack of ENV, Kubernetes load balancers first (TF-5)\n"
           "\tscripts/tf ephemeral $(ENV) destroy\n", "tf-destroy does not go through scripts/destroy-ephemeral"),
    mutant("TF-5", "the nightly job destroys with terraform", TF_CI, "  script:\n    - scripts/destroy-ephemeral dev\n",
           "  script:\n    - scripts/tf ephemeral dev destroy -auto-approve\n", "no scheduled job runs scripts/destroy-ephemeral"),
    # --- TF-6 -------------------------------------------------------------------------------
    mutant("TF-6", "the NAT data processing cost dropped", "docs/costs.md", "- **NAT data processing**", "- **NAT traffic**",
           "does not mention data processing"),
    mutant("TF-6", "the snapshot paragraph dropped", "docs/costs.md", "- **Snapshots**: prod keeps automated backups and a final "
           "snapshot when the database is deleted\n  (TF-7); manual snapshots stay until someone deletes them.\n", "",
           "does not mention snapshot"),
    # --- TF-7 -------------------------------------------------------------------------------
    mutant("TF-7", "prod deletion protection off for a rebuild", f"{EPHEMERAL}/prod.tfvars",
           "rds_deletion_protection     = true", "rds_deletion_protection     = false", "rds_deletion_protection must be true"),
    mutant("TF-7", "prod backups off", f"{EPHEMERAL}/prod.tfvars", "rds_backup_retention_days   = 7",
           "rds_backup_retention_days   = 0", "rds_backup_retention_days is 0"),
    mutant("TF-7", "dev keeps a final snapshot", f"{EPHEMERAL}/dev.tfvars", "rds_skip_final_snapshot     = true",
           "rds_skip_final_snapshot     = false", "dev.tfvars: rds_skip_final_snapshot must be true"),
    mutant("TF-7", "deletion protection hard-coded in the module", f"{EPHEMERAL}/database.tf",
           "deletion_protection              = var.rds_deletion_protection",
           "deletion_protection              = false # TODO: var.rds_deletion_protection, blocked the destroy",
           "sets deletion_protection = false for every environment"),
    Mutant("TF-7", "an auto.tfvars lowers the retention", (
        Edit(f"{EPHEMERAL}/prod.tfvars", "rds_backup_retention_days   = 7\n", ""),
        Edit(f"{EPHEMERAL}/loadtest.auto.tfvars", None, "# temporary: cheaper while we load-test\nrds_backup_retention_days = 0\n"),
    ), "rds_backup_retention_days is 0, set by loadtest.auto.tfvars"),
    # --- K8S-1 ------------------------------------------------------------------------------
    mutant("K8S-1", "prod patch removes the readiness probe", PROD, PROD_APP_PATCH,
           "            containers:\n              - name: app\n                readinessProbe: null\n                resources:\n",
           "deploy/k8s/overlays/prod: Deployment"),
    mutant("K8S-1", "prod JSON patch removes the liveness probe", PROD, "patches:\n", json_patch(
        "Deployment", "{slug}", "- op: remove\n  path: /spec/template/spec/containers/0/livenessProbe"),
        "container app has no HTTP livenessProbe"),
    mutant("K8S-1", "liveness checks the database", DEPLOYMENT, "          livenessProbe:\n            httpGet:\n              path: /health\n",
           "          livenessProbe:\n            httpGet:\n              path: /ready\n", "livenessProbe is GET /ready"),
    # --- K8S-2 ------------------------------------------------------------------------------
    mutant("K8S-2", "migrations no longer run", DEPLOYMENT, 'command: ["alembic", "upgrade", "head"]',
           'command: ["alembic", "current"]', "no init container runs `alembic upgrade head`"),
    mutant("K8S-2", "the advisory lock removed", "alembic/env.py", 'connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": SCHEMA_LOCK_ID})',
           "pass", "advisory lock"),
    # --- K8S-3 ------------------------------------------------------------------------------
    mutant("K8S-3", "the binding to cluster-admin", "deploy/k8s/base/rbac.yaml", "  kind: Role\n  name: {slug}\n",
           "  kind: ClusterRole\n  name: cluster-admin\n", "binds cluster-admin"),
    mutant("K8S-3", "a Role granting everything", "deploy/k8s/base/rbac.yaml", "rules: []\n",
           'rules:\n  - apiGroups: [""]\n    resources: ["*"]\n    verbs: ["*"]\n', "grants `*`"),
    mutant("K8S-3", "privilege escalation in prod only", PROD, PROD_APP_PATCH,
           "            containers:\n              - name: app\n                securityContext:\n"
           "                  allowPrivilegeEscalation: true\n                resources:\n", "allowPrivilegeEscalation: false"),
    mutant("K8S-3", "a Role reading Secrets and exec-ing into pods", "deploy/k8s/base/rbac.yaml", "rules: []\n",
           'rules:\n  # the admin endpoint lists the pods and reads the TLS secret\n  - apiGroups: [""]\n'
           '    resources: ["pods", "pods/exec", "secrets"]\n    verbs: ["get", "list", "watch", "create"]\n', "reads Secrets"),
    mutant("K8S-3", "a Role that may bind roles", "deploy/k8s/base/rbac.yaml", "rules: []\n",
           'rules:\n  - apiGroups: ["rbac.authorization.k8s.io"]\n    resources: ["roles", "rolebindings"]\n'
           '    verbs: ["escalate", "bind", "create", "patch"]\n', "writes RBAC"),
    mutant("K8S-3", "Pod Security relaxed", "deploy/k8s/base/namespace.yaml", "pod-security.kubernetes.io/enforce: restricted",
           "pod-security.kubernetes.io/enforce: baseline", "enforces Pod Security `restricted`"),
    # --- K8S-4 ------------------------------------------------------------------------------
    mutant("K8S-4", "the HPA stops scaling on memory", "deploy/k8s/base/hpa.yaml", "        name: memory\n", "        name: cpu\n",
           "does not scale on memory"),
    mutant("K8S-4", "the migration container loses its limits", DEPLOYMENT,
           "            limits:\n              cpu: 500m\n              memory: 256Mi\n", "", "limits.cpu"),
    mutant("K8S-4", "metrics-server left out", f"{EPHEMERAL}/cluster.tf", "    metrics-server = {}\n", "",
           "does not install metrics-server"),
    # --- K8S-5 ------------------------------------------------------------------------------
    mutant("K8S-5", "a secret key misspelt", DEPLOYMENT, "                  key: secret-key\n",
           "                  key: secret_key\n", "reads key secret_key"),
    mutant("K8S-5", "the ConfigMap renamed on one side", DEPLOYMENT, "                name: {slug}-config\n",
           "                name: {slug}-settings\n", "which no manifest or ExternalSecret makes"),
    # --- K8S-6 ------------------------------------------------------------------------------
    mutant("K8S-6", "a pull secret nobody refreshes, in prod only", PROD, PROD_APP_PATCH,
           "            imagePullSecrets:\n              - name: ecr-login\n" + PROD_APP_PATCH, "pulls with ecr-login"),
    mutant("K8S-6", "a script that makes the pull secret by hand", "scripts/refresh-pull-secret", None,
           "#!/bin/sh\naws ecr get-login-password | kubectl create secret docker-registry ecr-login "
           "--docker-username AWS --docker-password-stdin\n", "makes a pull secret by hand"),
    # --- SEC-1 ------------------------------------------------------------------------------
    mutant("SEC-1", "the audit schedule paused", f"{GITLAB}/schedules.tf", "  active         = true\n  ",
           "  active         = true\n  ", "audit"),  # replaced below: the third schedule
    mutant("SEC-1", "pip-audit || true", CI, "-r requirements.txt -r requirements-dev.txt\n\ntrivy-fs:",
           "-r requirements.txt -r requirements-dev.txt || true\n\ntrivy-fs:", "|| true"),
    mutant("SEC-1", "semgrep allowed to fail", CI, "  interruptible: true\n  script:\n    - semgrep scan",
           "  interruptible: true\n  allow_failure: true\n  script:\n    - semgrep scan", "job semgrep: allows failure"),
    mutant("SEC-1", "semgrep without --error", CI, "--config p/security-audit --error --metrics=off",
           "--config p/security-audit --metrics=off", "no job runs semgrep"),
    mutant("SEC-1", "the nightly rescan only warns", CI, RESCAN, RESCAN + " || true", "job rescan-deployed-image"),
    mutant("SEC-1", "trivy fs in the background", CI, "--skip-dirs .cache .\n", "--skip-dirs .cache . &\n",
           "in the background"),
    mutant("SEC-1", "trivy fs looks for secrets only", CI, "trivy fs --scanners vuln,secret", "trivy fs --scanners secret",
           "does not scan for vulnerabilities"),
    # --- SEC-2 ------------------------------------------------------------------------------
    mutant("SEC-2", "passlib back in the lock", "requirements.txt", None,
           "passlib==1.7.4 \\\n    --hash=sha256:aa6bca462b8d8bda89c70b382f0c298a20b5560af6cbfa2dce410c0a2fb669f1\n"
           "    # via -r requirements.in\n", "passlib"),
    Mutant("SEC-2", "python-jose added for a script, and locked", (
        Edit("requirements-dev.in", None, "python-jose[cryptography]~=3.3\n"),
        Edit("requirements-dev.txt", None, f"python-jose==3.3.0 \\\n    --hash=sha256:{HEX}\n    # via -r requirements-dev.in\n"),
    ), "python-jose"),
    # --- SEC-3 ------------------------------------------------------------------------------
    mutant("SEC-3", "the runtime runs as root", "Dockerfile", "USER 10001:10001\n", "USER root\n",
           "numeric non-root USER"),
    mutant("SEC-3", "a compiler in the runtime", "Dockerfile", "USER 10001:10001\n",
           "RUN apt-get update && apt-get install -y --no-install-recommends gcc\nUSER 10001:10001\n", "installs a compiler"),
    # --- SEC-4 ------------------------------------------------------------------------------
    mutant("SEC-4", "an expired CVE exception", ".trivyignore.yaml", "vulnerabilities: []\n",
           "vulnerabilities:\n  - id: CVE-2024-0001\n    statement: Not reachable from the API.\n    expired_at: 2025-01-31\n",
           ".trivyignore.yaml"),
    mutant("SEC-4", "trivy fs without the exceptions file", CI, "--exit-code 1 --ignorefile .trivyignore.yaml --cache-dir "
           ".cache/trivy --skip-dirs", "--exit-code 1 --cache-dir .cache/trivy --skip-dirs", "without --ignorefile"),
    mutant("SEC-4", "pip-audit ignores findings", CI, "pip-audit --strict --disable-pip",
           "pip-audit --strict --disable-pip --ignore-vuln GHSA-4xh5-x5gv-qwph --ignore-vuln PYSEC-2024-60",
           "pip-audit ignores GHSA-4xh5-x5gv-qwph, PYSEC-2024-60"),
    # --- DEP-1 ------------------------------------------------------------------------------
    mutant("DEP-1", "make install without hashes", "Makefile", "-q --require-hashes -r requirements-dev.txt", "-q -r requirements-dev.txt",
           "`make install` installs without --require-hashes"),
    mutant("DEP-1", "make lock without hashes", "Makefile", "pip-compile -q --generate-hashes --allow-unsafe --no-emit-index-url "
           "--no-emit-find-links --strip-extras -o requirements.txt", "pip-compile -q --allow-unsafe --no-emit-index-url "
           "--no-emit-find-links --strip-extras -o requirements.txt", "without --generate-hashes"),
    mutant("DEP-1", "a private index leaked into the lock", "requirements.txt", None,
           "--index-url https://pypi.internal.example/simple\n", "leaked into the lock"),
    mutant("DEP-1", "a dev tool declared but never locked", "requirements-dev.in", None, "pytest-xdist~=3.6\n",
           "pytest-xdist is declared in requirements-dev.in but not locked"),
    mutant("DEP-1", "a package installed into the image by hand", "Dockerfile", "RUN /opt/venv/bin/pip uninstall -y pip\n",
           "# sentry for the incident; add to requirements.in later\nRUN /opt/venv/bin/pip install --no-cache-dir sentry-sdk\n"
           "RUN /opt/venv/bin/pip uninstall -y pip\n", "pip install --no-cache-dir sentry-sdk` installs without --require-hashes"),
    # --- DEP-2 ------------------------------------------------------------------------------
    mutant("DEP-2", "deptry dropped from make lint", "Makefile", "\t$(BIN)/deptry .\n", "", "does not run deptry"),
    Mutant("DEP-2", "a dependency added and locked, never imported", (
        Edit("requirements.in", None, "requests~=2.32\n"),
        Edit("requirements.txt", None, f"requests==2.32.5 \\\n    --hash=sha256:{HEX}\n    # via -r requirements.in\n"),
    ), "DEP002"),
    # --- OPS-1 ------------------------------------------------------------------------------
    mutant("OPS-1", "logs to stderr", "app/core/logging.json", '"stream": "ext://sys.stdout"', '"stream": "ext://sys.stderr"',
           "writes to ext://sys.stderr"),
    mutant("OPS-1", "extra fields logged unredacted", "app/core/logging.py", "entry[key] = redact(value, str(key))",
           "entry[key] = value", "without redact()"),
    mutant("OPS-1", "extra fields merged unredacted", "app/core/logging.py", "        return _encode(entry)",
           "        entry.update(vars(record))\n        return _encode(entry)", "without redact()"),
    mutant("OPS-1", "a line that is not JSON", "app/core/logging.py", "        return _encode(entry)", "        return str(entry)",
           "does not write JSON"),
    mutant("OPS-1", "the message logged unredacted", "app/core/logging.py", '"message": redact_text(record.getMessage()),',
           '"message": record.getMessage(),', "without redact_text"),
    # --- OPS-2 ------------------------------------------------------------------------------
    mutant("OPS-2", "port-forward to a pod", "docs/runbook.md", "svc/{slug} 8080:80", "deploy/{slug} 8080:8000",
           "kubectl port-forward"),
    mutant("OPS-2", "port-forward to the wrong service port", "docs/runbook.md", "svc/{slug} 8080:80", "svc/{slug} 8080:8000",
           "kubectl port-forward"),
    # --- OPS-3 ------------------------------------------------------------------------------
    mutant("OPS-3", "health says healthy", "app/api/routes/health.py", 'return {"status": "ok"}', 'return {"status": "healthy"}',
           "must return"),
    mutant("OPS-3", "health renamed /healthz", "app/api/routes/health.py", '@router.get("/health")', '@router.get("/healthz")',
           "no GET /health route"),
    mutant("OPS-3", "health checks the database", "app/api/routes/health.py",
           'async def health() -> dict[str, str]:\n',
           'async def health(request: Request) -> dict[str, str]:\n', "touches the database or the request"),
    # --- SUP-1 ------------------------------------------------------------------------------
    mutant("SUP-1", "Trivy pinned by tag only", CI, "name: aquasec/trivy:0.74.0@sha256:62b1e65e8869bc4b4c6aa4fa2b21595256c7c2f6018a9d9ad61caf87187c1969\n"
           "    entrypoint: [\"\"]\n  interruptible: true\n  cache:", "name: aquasec/trivy:0.74.0\n    entrypoint: [\"\"]\n"
           "  interruptible: true\n  cache:", "job trivy-fs: image aquasec/trivy:0.74.0 is not"),
    mutant("SUP-1", "the runtime FROM by tag", "Dockerfile", "re:@sha256:[0-9a-f]{64}(?= AS runtime)", "",
           "is not name:tag@sha256"),
    mutant("SUP-1", "Renovate stops pinning digests", "renovate.json", '"pinDigests": true', '"pinDigests": false', "pinDigests"),
    # --- RUN-1 ------------------------------------------------------------------------------
    mutant("RUN-1", "the preStop sleep dropped", DEPLOYMENT, "          lifecycle:\n            preStop:\n              sleep:\n"
           "                seconds: 20\n", "", "no preStop sleep"),
    mutant("RUN-1", "the grace period back to the default", DEPLOYMENT, "terminationGracePeriodSeconds: 45",
           "terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds 30"),
    mutant("RUN-1", "prod scaled down to one pod", PROD, "patches:\n", "patches:\n  - target:\n      kind: HorizontalPodAutoscaler\n"
           "    patch: |-\n      - op: replace\n        path: /spec/minReplicas\n        value: 1\n", "lets prod run one pod"),
    # --- RUN-2 ------------------------------------------------------------------------------
    mutant("RUN-2", "DATABASE_URL from the environment", DEPLOYMENT,
           "            - name: DATABASE_URL_FILE\n              value: /var/run/secrets/db/url\n",
           "            - name: DATABASE_URL\n              valueFrom:\n                secretKeyRef:\n"
           "                  name: db-app-secret\n                  key: url\n", "a rotated password needs a restart"),
    mutant("RUN-2", "the database secret refreshed hourly", "deploy/k8s/base/external-secrets.yaml", "  refreshInterval: 1m\n",
           "  refreshInterval: 1h\n", "refreshes every 1h"),
    # --- GIT-1 ------------------------------------------------------------------------------
    mutant("GIT-1", "production approved by nobody", f"{GITLAB}/environments.tf", "required_approvals = var.production_approvals",
           "required_approvals = 0", "production deployments need no approval"),
    mutant("GIT-1", "force pushes allowed", f"{GITLAB}/main.tf", "allow_force_push = false", "allow_force_push = true",
           "allows force pushes"),
    mutant("GIT-1", "developers may push to main", f"{GITLAB}/main.tf", '  allowed_to_push = [\n    { access_level = "maintainer" },',
           '  allowed_to_push = [\n    { access_level = "developer" },', "lets developers push or merge"),
    # --- IAM-1 ------------------------------------------------------------------------------
    mutant("IAM-1", "the prod role trusted from any branch", f"{PERSISTENT}/ci_policies.tf",
           '    prod        = { test = "StringEquals", sub = "${local.project_sub}:ref_type:branch:ref:${var.default_branch}" }',
           '    prod        = { test = "StringLike", sub = "${local.project_sub}:ref_type:branch:ref:*" }', "the prod role is assumable"),
    mutant("IAM-1", "dev allowed to touch prod resources", f"{PERSISTENT}/ci_policies.tf",
           '"aws:ResourceTag/Environment" = [env, local.shared_environment]',
           '"aws:ResourceTag/Environment" = [env, "prod", local.shared_environment]', "deny_other_environment"),
    # --- IAM-2 ------------------------------------------------------------------------------
    mutant("IAM-2", "a CI role without its boundary", f"{PERSISTENT}/iam.tf",
           '  permissions_boundary = aws_iam_policy.boundary["ci"].arn\n', "", "has no permissions_boundary"),
    mutant("IAM-2", "an IAM statement granting *", f"{PERSISTENT}/ci_policies.tf",
           '{ Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },',
           '{ Sid = "RegistryLogin", Effect = "Allow", Action = "*", Resource = "*" },', "allows * on every resource"),
    mutant("IAM-2", "a NotAction allow", f"{PERSISTENT}/ci_policies.tf",
           '{ Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },',
           '{ Sid = "RegistryLogin", Effect = "Allow", NotAction = ["iam:*"], Resource = "*" },', "NotAction"),
    mutant("IAM-2", "a hotfix policy written in a resource", f"{PERSISTENT}/iam.tf", None,
           '\nresource "aws_iam_role_policy" "dev_hotfix" {\n  name = "hotfix"\n  role = aws_iam_role.ci["dev"].id\n'
           '  policy = jsonencode({\n    Version   = "2012-10-17"\n'
           '    Statement = [{ Effect = "Allow", Action = "*", Resource = "*" }]\n  })\n}\n',
           "aws_iam_role_policy.dev_hotfix: statement (no Sid) allows *"),
    mutant("IAM-2", "AdministratorAccess attached", f"{PERSISTENT}/iam.tf", None,
           '\nresource "aws_iam_role_policy_attachment" "dev_admin" {\n  role       = aws_iam_role.ci["dev"].name\n'
           '  policy_arn = "arn:aws:iam::aws:policy/AdministratorAccess"\n}\n', "attaches arn:aws:iam::aws:policy/AdministratorAccess"),
    Mutant("IAM-2", "iam:* on a local that is *", (
        Edit(f"{PERSISTENT}/ci_policies.tf", None, '\nlocals {\n  everything = "*"\n}\n'),
        Edit(f"{PERSISTENT}/ci_policies.tf",
             '{ Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },',
             '{ Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },\n'
             '      { Sid = "Debug", Effect = "Allow", Action = "iam:*", Resource = local.everything },'),
    ), "statement Debug allows iam:* on every resource"),
    mutant("IAM-2", "role-writing IAM prefixes on *", f"{PERSISTENT}/ci_policies.tf",
           '{ Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },',
           '{ Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },\n'
           '      { Sid = "Roles", Effect = "Allow", Action = ["iam:Put*", "iam:Attach*", "iam:PassRole"], Resource = "*" },',
           "allows iam:Put*, iam:Attach*, iam:PassRole on every resource"),
    # --- ECR-1 ------------------------------------------------------------------------------
    mutant("ECR-1", "every tag expires after the retention", f"{PERSISTENT}/lifecycle.tf", 'tagPatternList = ["*-candidate"]',
           'tagPatternList = ["*"]', "a deployed <sha> image would be deleted"),
    mutant("ECR-1", "keep only ten promoted images", f"{PERSISTENT}/lifecycle.tf", "keep_count = 9999", "keep_count = 10",
           "keep_count is 10"),
    mutant("ECR-1", "untagged rule widened to any", f"{PERSISTENT}/lifecycle.tf", 'tagStatus   = "untagged"',
           'tagStatus   = "any"', "selects any image"),
    mutant("ECR-1", "the candidate rule first", f"{PERSISTENT}/lifecycle.tf", "rulePriority = length(local.keep_promoted_rules) + 1",
           "rulePriority = 1", "must come after the keep rules"),
    # --- NET-1 ------------------------------------------------------------------------------
    mutant("NET-1", "policyTypes emptied", "deploy/k8s/base/network-policy.yaml", "  policyTypes:\n    - Ingress\n    - Egress\n",
           "  policyTypes: []\n", "no NetworkPolicy has policyTypes"),
    mutant("NET-1", "network policy enforcement off", f"{EPHEMERAL}/tags.tf", 'enableNetworkPolicy = "true"',
           'enableNetworkPolicy = "false"', "enableNetworkPolicy"),
    mutant("NET-1", "an allow-all egress rule for a new API", "deploy/k8s/base/network-policy.yaml", "  egress:\n",
           "  egress:\n    - {}\n", "allows all traffic"),
    mutant("NET-1", "the policy selects other pods", "deploy/k8s/base/network-policy.yaml",
           "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {slug}\n",
           "  podSelector:\n    matchLabels:\n      app.kubernetes.io/name: {slug}-api\n", "no NetworkPolicy selects its pods"),
    mutant("NET-1", "prod egress opened to anywhere", PROD, "patches:\n", json_patch(
        "NetworkPolicy", "{slug}", "- op: add\n  path: /spec/egress/-\n  value:\n    to:\n      - ipBlock:\n"
        "          cidr: 0.0.0.0/0"), "egress rule to ipBlock 0.0.0.0/0"),
    mutant("NET-1", "dev ingress from every namespace", DEV, "patches:\n", json_patch(
        "NetworkPolicy", "{slug}", "- op: add\n  path: /spec/ingress/-\n  value:\n    from:\n      - namespaceSelector: {{}}"),
        "ingress rule from namespaceSelector {}"),
    mutant("NET-1", "the vpc-cni add-on loses its configuration", f"{EPHEMERAL}/cluster.tf",
           "      configuration_values = local.vpc_cni_configuration\n", "", "enableNetworkPolicy"),
    mutant("NET-1", "dev gets its own vpc-cni configuration", f"{EPHEMERAL}/cluster.tf",
           "configuration_values = local.vpc_cni_configuration",
           'configuration_values = var.environment == "dev" ? jsonencode({ env = { ENABLE_PREFIX_DELEGATION = "true" } })'
           " : local.vpc_cni_configuration", "in every environment"),
]


@dataclass(frozen=True)
class Variant:
    """An edit that keeps a practice: the report must not turn it FAIL (a false alarm teaches teams
    to ignore the report). `expect` gives the lines that change status, with their new status."""

    name: str
    edits: tuple[Edit, ...]
    expect: tuple[tuple[str, str], ...] = ()


# Equivalent forms of the generated configuration (issue 14 review): each line stays as it was,
# or turns MANUAL where the report cannot judge what it points at.
VARIANTS: list[Variant] = [
    Variant("the CI files included by a wildcard (include:local with *)", (
        Edit(CI, "re:include:\n(  - local: \\.gitlab/ci/[\\w.-]+\\.yml\n)+", "include:\n  - local: .gitlab/ci/*.yml\n"),
    )),
    Variant("a Trivy global option before the subcommand", (
        Edit(CI, "    - trivy image --image-src remote", "    - trivy --cache-dir .cache/trivy image --image-src remote"),
    )),
    Variant("the scan piped to tee, its status checked through pipefail", (
        Edit(CI, SCAN, SCAN + ' | tee trivy.txt; test "${PIPESTATUS[0]}" -eq 0 || echo "see trivy.txt"'),
    )),
    Variant("the preStop sleep as an exec of sleep", (
        Edit(DEPLOYMENT, PRESTOP, '            preStop:\n              exec:\n                command: ["sleep", "20"]\n'),
    )),
    Variant("a namespace-wide egress policy (podSelector {})", (
        Edit(NETWORK_POLICY, "  policyTypes:\n    - Ingress\n    - Egress\n", "  policyTypes: [Ingress]\n"),
        Edit(NETWORK_POLICY, "  egress:\n", "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
             "  name: namespace-egress\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n"),
    )),
    Variant("a default-deny policy for the whole namespace", (
        Edit(NETWORK_POLICY, None, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
             "  name: default-deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n"),
    )),
    Variant("the scan moved into a script of the repository", (
        Edit(CI, "re:    - trivy image --image-src remote [^\\n]*\\n[^\\n]*\\n[^\\n]*-candidate@\\$\\{digest\\}\"\\n",
             '    - scripts/scan-image "${CANDIDATE_IMAGE}:${CI_COMMIT_SHA}-candidate@${digest}"\n'),
        Edit("scripts/scan-image", None, "#!/bin/sh\nset -eu\nexec trivy image --image-src remote --scanners vuln "
             "--pkg-types os,library --severity HIGH,CRITICAL \\\n  --ignore-unfixed --exit-code 1 --ignorefile "
             ".trivyignore.yaml --cache-dir .cache/trivy \"$1\"\n"),
    ), (("CI-4", "MANUAL"), ("CHK-3", "MANUAL"))),
]


def _nth_schedule(practice: str, name: str, index: int, says: str) -> Mutant:
    """Deactivate the index-th pipeline schedule of schedules.tf (0: destroy, 1: drift, 2: audit)."""
    marker = "  active         = true\n"
    return Mutant(practice, name, (Edit(f"{GITLAB}/schedules.tf", f"#{index}#{marker}", "  active         = false\n"),), says)


MUTANTS = [
    m if m.edits[0].old != "  active         = true\n  " else
    _nth_schedule(m.practice, m.name, 1 if m.practice == "TF-3" else 2,
                  f"the {'drift' if m.practice == 'TF-3' else 'audit'} pipeline schedule is declared but not active")
    for m in MUTANTS
]  # fmt: skip


def statuses_after(
    report: ModuleType, work: Path, edits: tuple[Edit, ...], values: dict[str, str]
) -> dict[str, tuple[str, str]]:
    """The report's lines with `edits` applied to `work`, which is put back as it was afterwards."""
    touched = {edit.path: (work / edit.path).read_bytes() if (work / edit.path).exists() else None
               for edit in edits}  # fmt: skip
    try:
        for edit in edits:
            apply(work, edit, values)
        return statuses(report, work)
    finally:
        for relative, content in touched.items():
            if content is None:
                (work / relative).unlink()
            else:
                (work / relative).write_bytes(content)


def apply(root: Path, edit: Edit, values: dict[str, str]) -> None:
    path = root / edit.path
    new = edit.new.format_map(values) if "{slug}" in edit.new else edit.new
    if edit.old is None:
        path.write_text((path.read_text() if path.exists() else "") + new)
        return
    text = path.read_text()
    if edit.old.startswith("re:"):
        text, count = re.subn(edit.old[3:], new, text, count=1)
        assert count == 1, f"{edit.path} has no match for {edit.old[3:]!r}: update this mutant"
        path.write_text(text)
        return
    old, occurrence = edit.old, 0
    if old.startswith("#") and old[1:].split("#", 1)[0].isdigit():
        occurrence, old = int(old[1:].split("#", 1)[0]), old[1:].split("#", 1)[1]
    old = old.format_map(values) if "{slug}" in old else old
    at = -1
    for _ in range(occurrence + 1):
        at = text.find(old, at + 1)
        if at < 0:
            raise AssertionError(f"{edit.path} no longer contains {old!r} (occurrence {occurrence}): update this mutant")
    path.write_text(text[:at] + new + text[at + len(old) :])


def load_report(service: Path, name: str) -> ModuleType:
    """The service's own scripts/practices.py, as a module of this process."""
    spec = importlib.util.spec_from_file_location(f"practices_{name}", service / "scripts" / "practices.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def statuses(report: ModuleType, root: Path) -> dict[str, tuple[str, str]]:
    practices, checklist = report.report(root)
    return {line.id: (line.status, "\n".join([line.detail, *line.more])) for line in [*practices, *checklist]}


def catalog() -> dict[str, list[dict[str, object]]]:
    return yaml.safe_load((TEMPLATE_ROOT / "template" / "docs" / "practices.yaml").read_text())


def test_corpus_covers_every_automatable_practice() -> None:
    counts = Counter(m.practice for m in MUTANTS)
    practices = [str(p["id"]) for p in catalog()["practices"]]
    assert len(MUTANTS) >= 60, f"only {len(MUTANTS)} mutants"
    thin = {pid: counts[pid] for pid in practices if counts[pid] < 2}
    assert not thin, f"practices with fewer than two mutants: {thin}"
    assert set(counts) <= set(practices), f"mutants of unknown practices: {set(counts) - set(practices)}"
    names = Counter((m.practice, m.name) for m in MUTANTS)
    assert max(names.values()) == 1, "two mutants share a name"


def test_every_mutant_fails_exactly_its_practice(
    service: Path,
    installed_venvs: Callable[[Path], list[str]],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    venv = Path(installed_venvs(service)[1].split("=", 1)[1])
    work = tmp_path / "service"
    shutil.copytree(service, work, ignore=shutil.ignore_patterns(".venv", ".git"))
    answers = answers_of(service)
    values = {"slug": str(answers["project_slug"])}
    report = load_report(work, service.parent.name.replace("-", "_"))
    report.PYTHON = str(venv / "bin" / "python")

    before = statuses(report, work)
    failing = {pid: detail for pid, (status, detail) in before.items() if status == "FAIL"}
    assert not failing, f"the unmutated service does not pass: {failing}"
    covering = {
        str(p["id"]): {str(i["id"]) for i in catalog()["checklist"] if p["id"] in i["practices"]}
        for p in catalog()["practices"]
    }

    caught: Counter[str] = Counter()
    problems = []
    for mutant_ in MUTANTS:
        after = statuses_after(report, work, mutant_.edits, values)
        failed = {pid for pid, (status, _) in after.items() if status == "FAIL"}
        expected = {mutant_.practice} | covering[mutant_.practice]
        detail = after[mutant_.practice][1]
        why = []
        if failed != expected:
            why.append(f"FAIL lines {sorted(failed)}, expected {sorted(expected)}: " + "; ".join(
                f"{pid}: {after[pid][1]}" for pid in sorted(failed ^ expected) if pid in after))
        elif mutant_.says not in detail:
            why.append(f"the FAIL line does not say {mutant_.says!r}: {detail}")
        if why:
            problems.append(f"{mutant_.practice} {mutant_.name!r}: {' '.join(why)}")
        else:
            caught[mutant_.practice] += 1

    total = Counter(m.practice for m in MUTANTS)
    with capsys.disabled():
        print(f"\nmutation score of the report ({service.parent.name}):")
        for pid in total:
            print(f"  {pid:<6} {caught[pid]}/{total[pid]}  {100 * caught[pid] // total[pid]:3d} %")
        print(f"  all    {sum(caught.values())}/{len(MUTANTS)}")
    assert not problems, "mutants the report misses:\n" + "\n".join(problems)


def test_equivalent_variants_keep_their_lines(
    service: Path,
    installed_venvs: Callable[[Path], list[str]],  # noqa: F811
    tmp_path: Path,
) -> None:
    """The report's false alarms of the issue 14 review: valid forms stay PASS (or MANUAL)."""
    venv = Path(installed_venvs(service)[1].split("=", 1)[1])
    work = tmp_path / "service"
    shutil.copytree(service, work, ignore=shutil.ignore_patterns(".venv", ".git"))
    values = {"slug": str(answers_of(service)["project_slug"])}
    report = load_report(work, service.parent.name.replace("-", "_") + "_variants")
    report.PYTHON = str(venv / "bin" / "python")
    before = {pid: status for pid, (status, _) in statuses(report, work).items()}
    problems = []
    for variant in VARIANTS:
        after = statuses_after(report, work, variant.edits, values)
        expected = {**before, **dict(variant.expect)}
        changed = {pid: f"{expected[pid]} -> {status}: {detail}" for pid, (status, detail) in after.items()
                   if status != expected.get(pid)}  # fmt: skip
        if changed:
            problems.append(f"{variant.name!r}: {changed}")
    assert not problems, "equivalent forms the report misjudges:\n" + "\n".join(problems)
