terraform {
  # 1.11 made S3 native locking (use_lockfile) generally available (TF-1).
  required_version = ">= 1.11.1, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.28"
    }
  }
}
