# TF-2: what lives longer than any environment. Never destroyed: the ECR repository keeps
# every promoted image and the OIDC provider is what lets pipelines reach AWS at all.

provider "aws" {
  region              = var.aws_region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = {
      Project   = var.project_slug
      Stack     = "persistent"
      ManagedBy = "terraform"
    }
  }
}

# --- ECR (CI-4) ------------------------------------------------------------------------

# The deployable images (CI-4, IAM-1). Only the promote role, which trusts the protected default
# branch alone, writes here (ci_policies.tf): ECR has no condition key on the image tag, so the
# repository is the only line IAM can draw between a candidate any branch may push and a `<sha>`
# that deployments trust.
# Trivy's AVD-AWS-0031 only knows IMMUTABLE; IMMUTABLE_WITH_EXCLUSION leaves two tags mutable.
#trivy:ignore:AVD-AWS-0031
resource "aws_ecr_repository" "service" {
  # checkov:skip=CKV_AWS_51:IMMUTABLE_WITH_EXCLUSION keeps every tag immutable except `latest` and `deployed-prod`; this check only knows IMMUTABLE.
  name = var.project_slug

  # A promoted <sha> tag can never be overwritten (CI-4). `latest` follows the default branch;
  # `deployed-prod` follows the prod deploy, and the nightly audit rescans what it names (SEC-1).
  image_tag_mutability = "IMMUTABLE_WITH_EXCLUSION"

  image_tag_mutability_exclusion_filter {
    filter      = "latest"
    filter_type = "WILDCARD"
  }

  image_tag_mutability_exclusion_filter {
    filter      = "deployed-prod"
    filter_type = "WILDCARD"
  }

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_ecr_lifecycle_policy" "service" {
  repository = aws_ecr_repository.service.name
  policy     = local.service_lifecycle_policy
}

# What build-image pushes, from any branch, tag or merge request: `<sha>-candidate`, scanned and,
# on the default branch, copied by digest into the service repository (CI-4). Nothing deploys
# from here. Its tags are mutable on purpose: a branch may push any tag here (the build role
# trusts every ref), so with immutable tags it could squat `<sha>-candidate` of a commit before
# the default branch builds it and block that promotion. The pipeline never trusts these tags:
# the scan and the promote use the digest the same pipeline's build computed (Kaniko --digest-file).
#trivy:ignore:AVD-AWS-0031
resource "aws_ecr_repository" "candidates" {
  # checkov:skip=CKV_AWS_51:Candidates are addressed by digest, never by tag (CI-4); immutable tags would let any branch block a promotion by pushing a commit's candidate tag first.
  name                 = "${var.project_slug}-candidates"
  image_tag_mutability = "MUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  # Same encryption type and key as the service repository (ECR "Blob mounting": repositories
  # must match for layers to be shared).
  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "candidates" {
  repository = aws_ecr_repository.candidates.name
  policy     = local.candidates_lifecycle_policy
}

# Kaniko's layer cache (CI-3): disposable, so it may be rebuilt at any time. Its tags are
# cache keys Kaniko may push again, never deployable images (AVD-AWS-0031 does not apply).
#trivy:ignore:AVD-AWS-0031
resource "aws_ecr_repository" "cache" {
  # checkov:skip=CKV_AWS_51:Kaniko rewrites cache tags it derives from layer digests; immutability would fail those pushes. Deployable images live in the immutable service repository.
  name                 = "${var.project_slug}/cache"
  image_tag_mutability = "MUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "cache" {
  repository = aws_ecr_repository.cache.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Cache layers nobody has rebuilt for a while"
        selection = {
          tagStatus   = "any"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.cache_retention_days
        }
        action = { type = "expire" }
      },
    ]
  })
}

