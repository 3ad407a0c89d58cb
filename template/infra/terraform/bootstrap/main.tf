provider "aws" {
  region              = var.aws_region
  allowed_account_ids = [var.account_id]

  default_tags {
    tags = {
      Project   = var.project_slug
      Stack     = "bootstrap"
      ManagedBy = "terraform"
    }
  }
}

locals {
  state_bucket = "${var.project_slug}-tfstate-${var.account_id}"
}

data "aws_iam_policy_document" "state_key" {
  # checkov:skip=CKV_AWS_356:"*" in a key policy means "this key"; access is limited to the account root, which delegates to IAM policies.
  # checkov:skip=CKV_AWS_109:Same as above: the key policy only delegates to IAM in this account.
  # checkov:skip=CKV_AWS_111:Same as above: the key policy only delegates to IAM in this account.
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${var.account_id}:root"]
    }
  }
}

# The state holds resource attributes; it is encrypted with a key of its own so that
# reading it needs kms:Decrypt as well as s3:GetObject.
resource "aws_kms_key" "state" {
  description             = "Terraform state of ${var.project_slug}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.state_key.json

  # IAM-1: shared by both environments, owned by neither. Without an Environment tag a CI role
  # could tag it as its own and then manage it (persistent/ci_policies.tf).
  tags = {
    Environment = "shared"
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_kms_alias" "state" {
  name          = "alias/${local.state_bucket}"
  target_key_id = aws_kms_key.state.key_id
}

resource "aws_s3_bucket" "state" {
  # checkov:skip=CKV_AWS_18:Access logging needs a second bucket per service; CloudTrail already records who called the S3 API.
  # checkov:skip=CKV_AWS_144:Cross-region replication doubles the cost; versioning plus prevent_destroy already protect the state.
  # checkov:skip=CKV2_AWS_62:Nothing consumes state-change events; Terraform reads the bucket directly.
  bucket = local.state_bucket

  # TF-1: losing this bucket loses the map of everything Terraform manages.
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.state.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    id     = "expire-old-state-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_state_retention_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyPlainHttp"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.state.arn,
      "${aws_s3_bucket.state.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "state" {
  bucket = aws_s3_bucket.state.id
  policy = data.aws_iam_policy_document.tls_only.json

  # The public access block must exist first, or a policy change could briefly expose the bucket.
  depends_on = [aws_s3_bucket_public_access_block.state]
}
