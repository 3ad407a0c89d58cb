variable "gitlab_project_path" {
  description = "The project whose settings this stack manages (group/project)."
  type        = string

  validation {
    condition     = can(regex("^[\\w.-]+(/[\\w.-]+)+$", var.gitlab_project_path))
    error_message = "gitlab_project_path must be group/project (subgroups allowed)."
  }
}

variable "default_branch" {
  description = "The protected branch the prod role trusts and the schedules run on."
  type        = string
  default     = "main"
}

variable "schedule_timezone" {
  description = "Time zone of the schedules' cron lines (a name GitLab knows, e.g. Europe/Paris)."
  type        = string
  default     = "UTC"
}

variable "destroy_cron" {
  description = "When the dev ephemeral stack is destroyed each day (TF-2, TF-5)."
  type        = string
  default     = "0 19 * * 1-5"
}

variable "drift_cron" {
  description = "When the drift check runs (TF-3)."
  type        = string
  default     = "0 6 * * *"
}

variable "audit_cron" {
  description = "When the audits and the rescan of the deployed image run (SEC-1)."
  type        = string
  default     = "30 5 * * *"
}

variable "production_approvals" {
  description = "How many maintainers must approve a production deployment or apply (GIT-1)."
  type        = number
  default     = 1

  validation {
    condition     = var.production_approvals >= 1
    error_message = "A production deployment needs at least one approval (GIT-1)."
  }
}

variable "ci_variables" {
  description = <<-EOT
    CI/CD variables of the project, if it ever needs one (it needs none for AWS: OIDC, CI-1).
    Always masked and hidden; protected only when only production jobs read it.
  EOT
  type = map(object({
    value     = string
    protected = bool
  }))
  default   = {}
  sensitive = true
}
