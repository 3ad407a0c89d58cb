# --- From the copier answers (terraform.tfvars) --------------------------------------------

variable "project_slug" {
  description = "Service identifier (DNS-1123 label); names the cluster, the database and the secrets."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.project_slug))
    error_message = "project_slug must be a DNS-1123 label of at most 40 characters."
  }
}

variable "aws_region" {
  description = "AWS region of the environment."
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

variable "kubernetes_version" {
  description = "EKS Kubernetes version (major.minor)."
  type        = string
}

variable "node_instance_type" {
  description = "EC2 instance type of the managed node group (TF-6 prices it)."
  type        = string
}

variable "node_count" {
  description = "Nodes the managed node group starts with (TF-6 prices them)."
  type        = number

  validation {
    condition     = var.node_count >= 1 && var.node_count <= 50
    error_message = "node_count must be between 1 and 50."
  }
}

variable "rds_instance_class" {
  description = "RDS PostgreSQL instance class."
  type        = string
}

variable "database_name" {
  description = "Name of the application database (the service's package name)."
  type        = string
}

variable "enable_ecr_pull_secret" {
  description = "Let External Secrets call ecr:GetAuthorizationToken to refresh an ecr-secret pull secret (K8S-6)."
  type        = bool
  default     = false
}

# --- Per environment (dev.tfvars, prod.tfvars) ----------------------------------------------

variable "environment" {
  description = "Environment this state describes: dev or prod."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "one_nat_gateway_per_az" {
  description = "TF-4: one NAT gateway per AZ (prod) instead of one shared NAT gateway (dev)."
  type        = bool
}

variable "rds_skip_final_snapshot" {
  description = "TF-7: true only where the data is disposable (dev)."
  type        = bool

  validation {
    condition     = !(var.environment == "prod" && var.rds_skip_final_snapshot)
    error_message = "TF-7: prod must take a final snapshot (rds_skip_final_snapshot = false)."
  }
}

variable "rds_deletion_protection" {
  description = "TF-7: refuse to delete the database (prod)."
  type        = bool

  validation {
    condition     = var.environment != "prod" || var.rds_deletion_protection
    error_message = "TF-7: prod must keep deletion protection on."
  }
}

variable "rds_backup_retention_days" {
  description = "Days RDS keeps automated backups (TF-7)."
  type        = number
}

variable "rds_multi_az" {
  description = "Run a standby database in a second AZ."
  type        = bool
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can be restored; 0 in dev so the nightly re-create can reuse the name."
  type        = number
}

variable "vpc_flow_logs" {
  description = "Send VPC flow logs to CloudWatch (costs per GB ingested, TF-6)."
  type        = bool
}

variable "budget_monthly_usd" {
  description = "TF-6: monthly AWS Budget of each environment in USD (docs/costs.md estimate plus a quarter for the hidden costs)."
  type        = map(number)
}

# --- Defaults worth knowing about --------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the environment's VPC."
  type        = string
  default     = "10.0.0.0/16"
}

variable "az_count" {
  description = "Availability zones the VPC spans (EKS needs at least two)."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3."
  }
}

variable "cluster_endpoint_public_cidrs" {
  description = "NET-1: networks allowed to reach the public EKS API endpoint: the egress CIDRs of the GitLab runners that run the Terraform and deploy jobs (copier answer ci_runner_cidrs), admins'. None keeps the endpoint private."
  type        = list(string)

  validation {
    condition     = alltrue([for cidr in var.cluster_endpoint_public_cidrs : can(cidrhost(cidr, 0)) && !endswith(cidr, "/0")])
    error_message = "The EKS API must not be open to the whole internet: list IPv4 CIDR blocks of the runners and admins, never 0.0.0.0/0."
  }

  # The helm_release resources of this stack and the deploy jobs call the EKS API from the
  # runner: a private endpoint they cannot reach fails every apply and every deploy.
  validation {
    condition     = length(var.cluster_endpoint_public_cidrs) > 0 || var.ci_reaches_private_endpoint
    error_message = "The pipeline cannot reach the EKS API: set cluster_endpoint_public_cidrs in terraform.tfvars to the egress CIDRs of the GitLab runners that run the Terraform and deploy jobs (copier answer ci_runner_cidrs), or, if those runners reach this VPC privately (peering, VPN, a runner in the VPC), set ci_reaches_private_endpoint = true."
  }
}

variable "ci_reaches_private_endpoint" {
  description = "NET-1: the GitLab runners of the Terraform and deploy jobs reach the cluster's private endpoint (peered network, VPN, runner in the VPC), so the public endpoint may stay closed."
  type        = bool
  default     = false
}

variable "cluster_deletion_protection" {
  description = "Refuse to delete the EKS cluster (prod)."
  type        = bool

  validation {
    condition     = var.environment != "prod" || var.cluster_deletion_protection
    error_message = "prod must keep cluster deletion protection on."
  }
}

variable "budget_alert_emails" {
  description = "TF-6: addresses the budget alerts are mailed to, besides the <slug>-<env>-budget SNS topic."
  type        = list(string)
  default     = []
}

variable "cluster_admin_arns" {
  description = "IAM principals (besides the CI role of this environment) given cluster admin through access entries."
  type        = list(string)
  default     = []
}

variable "postgres_major_version" {
  description = "PostgreSQL major version of the RDS instance."
  type        = string
  default     = "17"
}

variable "rds_allocated_storage_gb" {
  description = "Initial gp3 storage of the database, in GB; storage autoscaling may grow it up to four times."
  type        = number
  default     = 20
}

variable "database_username" {
  description = "Master user name; its password is generated and rotated by RDS in Secrets Manager (TF-7)."
  type        = string
  default     = "app"
}

variable "database_role_secret_version" {
  description = "RUN-2: bump to write new random credentials for the <db>_migrator and <db>_app roles (docs/runbook.md)."
  type        = number
  default     = 1
}

variable "external_secrets_chart_version" {
  description = "Version of the external-secrets Helm chart (pinned, K8S-5)."
  type        = string
  default     = "1.0.0"
}

variable "lb_controller_chart_version" {
  description = "Version of the aws-load-balancer-controller Helm chart (pinned)."
  type        = string
  default     = "1.14.0"
}
