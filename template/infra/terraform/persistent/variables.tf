variable "project_slug" {
  description = "Service identifier (DNS-1123 label); names the ECR repository and the CI roles."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.project_slug))
    error_message = "project_slug must be a DNS-1123 label of at most 40 characters."
  }
}

variable "aws_region" {
  description = "AWS region of the ECR repository and of the state bucket."
  type        = string
}

variable "account_id" {
  description = "12-digit AWS account ID; the provider refuses to act on any other account."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be exactly 12 digits (leading zeros kept)."
  }
}

variable "gitlab_project_path" {
  description = "GitLab project (group/project) whose pipelines may assume the CI roles (CI-1)."
  type        = string
}

variable "gitlab_url" {
  description = "Issuer URL of the GitLab instance that signs the pipeline ID tokens."
  type        = string
  default     = "https://gitlab.com"
}

variable "default_branch" {
  description = "Protected branch whose pipelines alone may assume the prod role (CI-1)."
  type        = string
  default     = "main"
}

variable "candidate_retention_days" {
  description = "Days an unpromoted <sha>-candidate image stays in ECR before expiring (CI-4)."
  type        = number
  default     = 7
}

variable "cache_retention_days" {
  description = "Days a Kaniko layer-cache image stays in the cache repository (CI-3)."
  type        = number
  default     = 14
}

variable "create_gitlab_oidc_provider" {
  description = "Create the account's GitLab OIDC provider; false when another service of the account already did (one per issuer URL)."
  type        = bool
  default     = true
}

variable "base_domain" {
  type        = string
  description = "Public Route 53 zone the service's hostnames live under (<slug>.<domain>, dev.<slug>.<domain>)."
}
