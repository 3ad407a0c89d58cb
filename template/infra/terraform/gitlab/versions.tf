terraform {
  # 1.11 made S3 native locking (use_lockfile) generally available (TF-1).
  required_version = ">= 1.11.1, < 2.0.0"

  required_providers {
    # Resources and arguments checked against the provider's docs at v19.1.0 (docs/CONTRACTS.md).
    gitlab = {
      source  = "gitlabhq/gitlab"
      version = "~> 19.1"
    }
  }
}
