# IAM-1: the CI roles and the roles of this environment reach only what carries these tags, and
# the other environment's roles are kept off it (persistent/ci_policies.tf). default_tags covers
# what Terraform creates; these locals carry the same tags to what AWS and the controllers create.
# Pure expressions, so tests/test_terraform.py evaluates this file with Terraform.

locals {
  environment_tags = {
    Environment = var.environment
    Project     = var.project_slug
  }

  # NET-1: the VPC CNI enforces NetworkPolicy only when asked (off by default upstream); without
  # it deploy/k8s network-policy.yaml would be accepted and ignored. IAM-1: the ENIs it creates
  # for pods carry the environment's tags (ADDITIONAL_ENI_TAGS, a JSON object in a string).
  vpc_cni_configuration = jsonencode({
    enableNetworkPolicy = "true"
    env                 = { ADDITIONAL_ENI_TAGS = jsonencode(local.environment_tags) }
  })
}
