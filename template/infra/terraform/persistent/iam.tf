# --- GitLab OIDC (CI-1): no long-lived AWS keys anywhere ---------------------------------

# The provider is one per issuer URL in an account: the first service creates it, every other
# service in the account sets create_gitlab_oidc_provider = false and uses it (docs/infrastructure.md).
resource "aws_iam_openid_connect_provider" "gitlab" {
  count = var.create_gitlab_oidc_provider ? 1 : 0

  url            = var.gitlab_url
  client_id_list = ["sts.amazonaws.com"]

  lifecycle {
    prevent_destroy = true
  }
}

moved {
  from = aws_iam_openid_connect_provider.gitlab
  to   = aws_iam_openid_connect_provider.gitlab[0]
}

# IAM-2: every CI role carries the CI boundary, so even the prod role, which applies this
# stack, cannot grant itself more than the boundary allows, nor remove it.
resource "aws_iam_role" "ci" {
  for_each = local.ci_roles

  name                 = "${var.project_slug}-gitlab-${each.key}"
  description          = "GitLab CI of ${var.gitlab_project_path}, ${each.key} jobs"
  assume_role_policy   = local.trust_policies[each.key]
  max_session_duration = 3600
  permissions_boundary = aws_iam_policy.boundary["ci"].arn

  # The trust names the provider by ARN; when this stack creates it, it must exist first.
  depends_on = [aws_iam_openid_connect_provider.gitlab]
}

# IAM-2: the ceilings. "ci" bounds the CI roles; "dev" and "prod" bound every role the
# ephemeral stack of that environment creates (cluster, nodes, controllers, flow logs).
# Only an account administrator changes them: every CI role is denied writing them.
resource "aws_iam_policy" "boundary" {
  for_each = local.boundary_policies

  name        = local.boundary_names[each.key]
  description = "Permissions boundary (IAM-2): ${each.key == "ci" ? "GitLab CI roles" : "roles of the ${each.key} environment"}"
  policy      = each.value
}

resource "aws_iam_role_policy" "build" {
  name   = "ecr-push"
  role   = aws_iam_role.ci["build"].id
  policy = local.build_policy
}

resource "aws_iam_role_policy" "promote" {
  name   = "ecr-promote"
  role   = aws_iam_role.ci["promote"].id
  policy = local.promote_policy
}

resource "aws_iam_policy" "terraform" {
  for_each = local.terraform_policies

  name        = "${var.project_slug}-gitlab-${each.key}-terraform"
  description = "Terraform and deploy jobs of the ${each.key} environment"
  policy      = each.value
}

resource "aws_iam_role_policy_attachment" "terraform" {
  for_each = aws_iam_policy.terraform

  role       = aws_iam_role.ci[each.key].name
  policy_arn = each.value.arn
}

# The prod role alone, assumable from the protected default branch alone, applies this stack.
resource "aws_iam_policy" "persistent" {
  name        = "${var.project_slug}-gitlab-prod-persistent"
  description = "Apply of the persistent stack (ECR, CI roles, certificate)"
  policy      = local.persistent_policy
}

resource "aws_iam_role_policy_attachment" "persistent" {
  role       = aws_iam_role.ci["prod"].name
  policy_arn = aws_iam_policy.persistent.arn
}

# IAM-1: what the scheduled drift check and the automatic prod plan use, so that no job nobody
# started reaches the prod role. It reads; it writes nothing, not even a state lock.
resource "aws_iam_policy" "prod_plan" {
  name        = "${var.project_slug}-gitlab-prod-plan-read"
  description = "Read-only plan (refresh) of the prod ephemeral stack and of the persistent stack"
  policy      = local.prod_plan_policy
}

resource "aws_iam_role_policy_attachment" "prod_plan" {
  role       = aws_iam_role.ci["prod-plan"].name
  policy_arn = aws_iam_policy.prod_plan.arn
}
