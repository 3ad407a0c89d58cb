variable "project_slug" {
  description = "Service identifier (DNS-1123 label); prefixes every AWS name."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.project_slug))
    error_message = "project_slug must be a DNS-1123 label of at most 40 characters."
  }
}

variable "aws_region" {
  description = "AWS region of the state bucket and of every stack."
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

variable "noncurrent_state_retention_days" {
  description = "Days an overwritten state version is kept before S3 expires it."
  type        = number
  default     = 90
}
