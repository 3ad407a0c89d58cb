output "ecr_repository_url" {
  description = "Deployable images: the promote job copies scanned candidates here as <sha> and latest (CI-4)."
  value       = aws_ecr_repository.service.repository_url
}

output "ecr_repository_arn" {
  description = "ARN of the service's ECR repository."
  value       = aws_ecr_repository.service.arn
}

output "ecr_candidates_repository_url" {
  description = "Where build-image pushes <sha>-candidate from any ref; nothing deploys from it (CI-4)."
  value       = aws_ecr_repository.candidates.repository_url
}

output "ecr_cache_repository_url" {
  description = "Kaniko --cache-repo (CI-3)."
  value       = aws_ecr_repository.cache.repository_url
}

output "ci_role_arns" {
  description = "Role each pipeline job assumes with its GitLab ID token, by DEPLOY_ENV (build, dev, promote, prod, prod-plan)."
  value       = { for name, role in aws_iam_role.ci : name => role.arn }
}

output "gitlab_oidc_provider_arn" {
  description = "IAM OIDC provider trusted by the CI roles (created here or by another service of the account)."
  value       = local.oidc_provider_arn
}

output "permissions_boundary_arns" {
  description = "IAM-2: boundary every role of an environment is created under, by environment (dev, prod)."
  value       = { for env in local.environments : env => aws_iam_policy.boundary[env].arn }
}

output "certificate_arn" {
  description = "ACM certificate of both hostnames; the load balancer controller finds it by host."
  value       = aws_acm_certificate_validation.service.certificate_arn
}
