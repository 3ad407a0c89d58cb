# TF-2: everything here is destroyed every evening in dev (scripts/destroy-ephemeral, TF-5)
# and re-created on demand. What must outlive it sits in ../persistent.

provider "aws" {
  region              = var.aws_region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = {
      Project     = var.project_slug
      Stack       = "ephemeral"
      Environment = var.environment
      ManagedBy   = "terraform"
      # TF-6: what the environment's budget (budget.tf) counts.
      CostAllocation = "${var.project_slug}-${var.environment}"
    }
  }
}

# A token read at plan time lives 15 minutes and would be stored in a saved plan applied
# later: the exec plugin asks for a fresh one each time the provider connects.
provider "helm" {
  kubernetes = {
    host                   = module.eks.cluster_endpoint
    cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)
    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.aws_region]
    }
  }
}

locals {
  # Names fixed in docs/CONTRACTS.md: cluster and database are <slug>-<env>.
  name         = "${var.project_slug}-${var.environment}"
  state_bucket = "${var.project_slug}-tfstate-${var.account_id}"
  azs          = slice(data.aws_availability_zones.available.names, 0, var.az_count)
}

# Zone names are shuffled per account; zone IDs are not. The EKS control plane cannot use a few
# zone IDs (EKS user guide, "Cluster VPC and subnet requirements"), so they are excluded by ID.
data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394:local.azs takes the first az_count zones of this sorted list; AWS names new zones with later letters, so the set cannot silently grow.
  state            = "available"
  exclude_zone_ids = ["use1-az3", "usw1-az2", "cac1-az3"]

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

# TF-2: values of the persistent stack are read from its state, never copied by hand.
data "terraform_remote_state" "persistent" {
  backend = "s3"

  config = {
    bucket = local.state_bucket
    key    = "persistent/terraform.tfstate"
    region = var.aws_region
  }
}
