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

locals {
  state_bucket = "${var.project_slug}-tfstate-${var.account_id}"
  oidc_host    = trimprefix(var.gitlab_url, "https://")
  project_sub  = "project_path:${var.gitlab_project_path}"
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

# --- GitLab OIDC (CI-1): no long-lived AWS keys anywhere ---------------------------------

resource "aws_iam_openid_connect_provider" "gitlab" {
  url            = var.gitlab_url
  client_id_list = ["sts.amazonaws.com"]

  lifecycle {
    prevent_destroy = true
  }
}

locals {
  # Which pipelines may assume each role, as GitLab writes the token's `sub` claim.
  ci_roles = {
    build = { test = "StringLike", sub = "${local.project_sub}:ref_type:*:ref:*" }
    dev   = { test = "StringLike", sub = "${local.project_sub}:ref_type:branch:ref:*" }
    prod  = { test = "StringEquals", sub = "${local.project_sub}:ref_type:branch:ref:${var.default_branch}" }
  }
}

data "aws_iam_policy_document" "trust" {
  for_each = local.ci_roles

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.gitlab.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = each.value.test
      variable = "${local.oidc_host}:sub"
      values   = [each.value.sub]
    }
  }
}

resource "aws_iam_role" "ci" {
  for_each = local.ci_roles

  name                 = "${var.project_slug}-gitlab-${each.key}"
  description          = "GitLab CI of ${var.gitlab_project_path}, ${each.key} jobs"
  assume_role_policy   = data.aws_iam_policy_document.trust[each.key].json
  max_session_duration = 3600
}

# --- What each role may do -----------------------------------------------------------------

data "aws_kms_alias" "state" {
  name = "alias/${local.state_bucket}"
}

data "aws_iam_policy_document" "build" {
  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PushPullTagThisServiceOnly"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:DescribeImageScanFindings",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [aws_ecr_repository.service.arn, aws_ecr_repository.cache.arn]
  }
}

resource "aws_iam_role_policy" "build" {
  name   = "ecr-push"
  role   = aws_iam_role.ci["build"].id
  policy = data.aws_iam_policy_document.build.json
}

data "aws_iam_policy_document" "terraform" {
  # checkov:skip=CKV_AWS_107:Terraform must read the RDS-managed master secret's metadata to plan the ephemeral stack; scope is this region and account.
  # checkov:skip=CKV_AWS_108:Terraform reads what it manages (state objects, secrets metadata); each statement is limited to this service's names where AWS allows it.
  # checkov:skip=CKV_AWS_109:Terraform creates and deletes the environment's KMS keys and IAM roles; IAM writes are limited to <slug>-<env>-* names.
  # checkov:skip=CKV_AWS_110:iam:PassRole is limited to this environment's <slug>-<env>-* roles.
  # checkov:skip=CKV_AWS_111:Terraform manages VPC, EKS and RDS end to end; their IDs are generated, so write actions are scoped by region, not by ARN.
  # checkov:skip=CKV_AWS_356:Same as above: ec2/eks/rds/kms resources do not exist before apply; the region condition bounds the wildcard.
  for_each = toset(["dev", "prod"])

  statement {
    sid       = "ListStateBucket"
    actions   = ["s3:ListBucket"]
    resources = ["arn:aws:s3:::${local.state_bucket}"]
  }

  statement {
    sid     = "ReadSharedState"
    actions = ["s3:GetObject"]
    resources = [
      "arn:aws:s3:::${local.state_bucket}/persistent/*",
      "arn:aws:s3:::${local.state_bucket}/ephemeral/${each.key}/*",
    ]
  }

  # The lock is the object <key>.tflock (TF-1): writing and deleting it is how a run locks.
  statement {
    sid     = "WriteOwnStateAndLock"
    actions = ["s3:PutObject", "s3:DeleteObject"]
    resources = concat(
      ["arn:aws:s3:::${local.state_bucket}/ephemeral/${each.key}/*"],
      each.key == "prod" ? ["arn:aws:s3:::${local.state_bucket}/persistent/*"] : [],
    )
  }

  statement {
    sid       = "StateEncryption"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [data.aws_kms_alias.state.target_key_arn]
  }

  statement {
    sid = "ManageEphemeralStack"
    actions = [
      "autoscaling:*",
      "ec2:*",
      "eks:*",
      "elasticloadbalancing:Describe*",
      "kms:*",
      "logs:*",
      "rds:*",
      "secretsmanager:*",
    ]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.aws_region]
    }
  }

  statement {
    sid       = "ReadEksAmiParameters"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = ["arn:aws:ssm:${var.aws_region}::parameter/aws/service/eks/*"]
  }

  statement {
    sid = "OwnIamOnly"
    actions = [
      "iam:AttachRolePolicy",
      "iam:CreatePolicy",
      "iam:CreatePolicyVersion",
      "iam:CreateRole",
      "iam:DeletePolicy",
      "iam:DeletePolicyVersion",
      "iam:DeleteRole",
      "iam:DeleteRolePolicy",
      "iam:DetachRolePolicy",
      "iam:PassRole",
      "iam:PutRolePolicy",
      "iam:TagPolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:UpdateRole",
    ]
    resources = [
      "arn:aws:iam::${var.account_id}:role/${var.project_slug}-${each.key}-*",
      "arn:aws:iam::${var.account_id}:policy/${var.project_slug}-${each.key}-*",
    ]
  }

  statement {
    sid       = "ReadIam"
    actions   = ["iam:Get*", "iam:List*"]
    resources = ["*"]
  }

  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:aws:iam::${var.account_id}:role/aws-service-role/*"]
  }

  statement {
    sid       = "PlanPersistentStack"
    actions   = ["ecr:DescribeRepositories", "ecr:GetLifecyclePolicy", "ecr:ListTagsForResource"]
    resources = [aws_ecr_repository.service.arn, aws_ecr_repository.cache.arn]
  }

  # The deploy job resolves the promoted <sha> tag to its digest before it touches the cluster.
  statement {
    sid       = "ResolvePromotedImage"
    actions   = ["ecr:DescribeImages"]
    resources = [aws_ecr_repository.service.arn]
  }

  # Only the prod role, assumable from the protected branch alone, may change the persistent stack.
  dynamic "statement" {
    for_each = each.key == "prod" ? [1] : []

    content {
      sid       = "ApplyPersistentStack"
      actions   = ["ecr:*"]
      resources = [aws_ecr_repository.service.arn, aws_ecr_repository.cache.arn]
    }
  }

  dynamic "statement" {
    for_each = each.key == "prod" ? [1] : []

    content {
      sid     = "ApplyPersistentIam"
      actions = ["iam:*"]
      resources = [
        aws_iam_openid_connect_provider.gitlab.arn,
        "arn:aws:iam::${var.account_id}:role/${var.project_slug}-gitlab-*",
        "arn:aws:iam::${var.account_id}:policy/${var.project_slug}-gitlab-*",
      ]
    }
  }

  dynamic "statement" {
    for_each = each.key == "prod" ? [1] : []

    content {
      sid       = "ApplyPersistentCertificateRecords"
      actions   = ["route53:ChangeResourceRecordSets", "route53:GetHostedZone", "route53:ListResourceRecordSets"]
      resources = [data.aws_route53_zone.base.arn]
    }
  }

  dynamic "statement" {
    for_each = each.key == "prod" ? [1] : []

    content {
      sid       = "ApplyPersistentCertificate"
      actions   = ["acm:*", "route53:GetChange", "route53:ListHostedZones"]
      resources = ["*"]

      condition {
        test     = "StringEquals"
        variable = "aws:RequestedRegion"
        values   = [var.aws_region]
      }
    }
  }
}

resource "aws_iam_policy" "terraform" {
  for_each = data.aws_iam_policy_document.terraform

  name        = "${var.project_slug}-gitlab-${each.key}-terraform"
  description = "Terraform and deploy jobs of the ${each.key} environment"
  policy      = each.value.json
}

resource "aws_iam_role_policy_attachment" "terraform" {
  for_each = aws_iam_policy.terraform

  role       = aws_iam_role.ci[each.key].name
  policy_arn = each.value.arn
}
