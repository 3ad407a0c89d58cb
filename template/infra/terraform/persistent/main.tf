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

# Trivy's AVD-AWS-0031 only knows IMMUTABLE; IMMUTABLE_WITH_EXCLUSION leaves `latest` alone mutable.
#trivy:ignore:AVD-AWS-0031
resource "aws_ecr_repository" "service" {
  # checkov:skip=CKV_AWS_51:IMMUTABLE_WITH_EXCLUSION keeps every tag immutable except `latest`; this check only knows IMMUTABLE.
  name = var.project_slug

  # A pushed <sha> or <sha>-candidate tag can never be overwritten; only `latest` moves (CI-4).
  image_tag_mutability = "IMMUTABLE_WITH_EXCLUSION"

  image_tag_mutability_exclusion_filter {
    filter      = "latest"
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

