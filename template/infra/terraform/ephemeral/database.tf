resource "aws_security_group" "database" {
  # checkov:skip=CKV2_AWS_5:Attached to the RDS instance through module.rds (vpc_security_group_ids), which checkov does not follow offline.
  name        = "${local.name}-database"
  description = "PostgreSQL of ${local.name}, reachable from the EKS nodes only"
  vpc_id      = module.vpc.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_nodes" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the EKS nodes"
  referenced_security_group_id = module.eks.node_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

module "rds" {
  # checkov:skip=CKV_TF_1:Registry module pinned to an exact release; a published registry release cannot be changed, and init verifies what it downloads against that version.
  source  = "terraform-aws-modules/rds/aws"
  version = "7.0.0"

  identifier = local.name

  engine               = "postgres"
  engine_version       = var.postgres_major_version
  family               = "postgres${var.postgres_major_version}"
  major_engine_version = var.postgres_major_version
  instance_class       = var.rds_instance_class

  # rds v7 leaves storage_type unset, and AWS then picks gp2: gp3 is cheaper per GB and faster.
  storage_type          = "gp3"
  allocated_storage     = var.rds_allocated_storage_gb
  max_allocated_storage = var.rds_allocated_storage_gb * 4
  storage_encrypted     = true

  db_name  = var.database_name
  username = var.database_username
  port     = 5432

  # TF-7: RDS generates and rotates the password in Secrets Manager; it never passes
  # through a Terraform variable or the state.
  manage_master_user_password = true

  multi_az               = var.rds_multi_az
  create_db_subnet_group = false
  db_subnet_group_name   = module.vpc.database_subnet_group_name
  vpc_security_group_ids = [aws_security_group.database.id]

  # TF-7: dev skips the final snapshot; prod keeps one, keeps backups and cannot be deleted.
  backup_retention_period          = var.rds_backup_retention_days
  skip_final_snapshot              = var.rds_skip_final_snapshot
  final_snapshot_identifier_prefix = "${local.name}-final"
  deletion_protection              = var.rds_deletion_protection
  copy_tags_to_snapshot            = true

  auto_minor_version_upgrade             = true
  iam_database_authentication_enabled    = true
  enabled_cloudwatch_logs_exports        = ["postgresql", "upgrade"]
  create_cloudwatch_log_group            = true
  cloudwatch_log_group_retention_in_days = 30

  # RUN-2: the server certificate is signed by this root, which the image's CA bundle holds (the
  # app connects with sslmode=verify-full, app/db/tls.py). rds-ca-rsa2048-g1 is valid until 2061
  # and what libpq verifies everywhere; AWS's default for new instances may change, this may not.
  ca_cert_identifier = "rds-ca-rsa2048-g1"

  # RUN-2: no connection without TLS, and none below TLS 1.2.
  parameters = [
    { name = "rds.force_ssl", value = "1" },
    { name = "ssl_min_protocol_version", value = "TLSv1.2" },
  ]
}

# --- Database roles (RUN-2): the app and the migrations never use the master user ---------------
#
# <db>_migrator owns the schema (alembic runs as it); <db>_app may read and write its tables and
# nothing else. app/db/roles.py creates both with the master credentials, in the db-roles init
# container, and sets their passwords from these secrets. Bump database_role_secret_version to
# rotate them (docs/runbook.md).

locals {
  database_roles = {
    migrator = "${var.database_name}_migrator"
    app      = "${var.database_name}_app"
  }
}

resource "aws_secretsmanager_secret" "database_role" {
  # checkov:skip=CKV2_AWS_57:Rotated by bumping database_role_secret_version; the db-roles init container sets the new password in PostgreSQL (docs/runbook.md).
  for_each = local.database_roles

  name                    = "${var.project_slug}/${var.environment}/database-${each.key}"
  description             = "PostgreSQL role ${each.value} of ${local.name} (user name and password)"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

# Ephemeral and write-only, like the signing key: the passwords never reach the state.
ephemeral "random_password" "database_role" {
  for_each = local.database_roles

  length  = 40
  special = false
}

resource "aws_secretsmanager_secret_version" "database_role" {
  for_each = local.database_roles

  secret_id                = aws_secretsmanager_secret.database_role[each.key].id
  secret_string_wo         = jsonencode({ username = each.value, password = ephemeral.random_password.database_role[each.key].result })
  secret_string_wo_version = var.database_role_secret_version
}

# --- Secrets the External Secrets Operator syncs (docs/CONTRACTS.md) ----------------------------

data "aws_iam_policy_document" "secrets_key" {
  # checkov:skip=CKV_AWS_356:"*" in a key policy means "this key"; access is delegated to IAM in this account only.
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

  # The budget topic (budget.tf) is encrypted with this key; AWS Budgets publishes to it.
  statement {
    sid       = "BudgetsEncryptsAlerts"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [var.account_id]
    }
  }
}

resource "aws_kms_key" "secrets" {
  description             = "Secrets of ${local.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.secrets_key.json
}

resource "aws_secretsmanager_secret" "database" {
  # checkov:skip=CKV2_AWS_57:Holds only host, port and database name; nothing to rotate. The password lives in the RDS-managed secret, which RDS rotates.
  name                    = "${var.project_slug}/${var.environment}/database"
  description             = "Where the database of ${local.name} is (no password)"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_version" "database" {
  secret_id = aws_secretsmanager_secret.database.id
  secret_string = jsonencode({
    host   = module.rds.db_instance_address
    port   = module.rds.db_instance_port
    dbname = var.database_name
  })
}

resource "aws_secretsmanager_secret" "app" {
  # checkov:skip=CKV2_AWS_57:The signing key changes by bumping secret_string_wo_version; a rotation Lambda would log every user out on its own schedule.
  name                    = "${var.project_slug}/${var.environment}/app"
  description             = "Signing key of ${local.name}"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

# Ephemeral and write-only: the generated key reaches Secrets Manager but never the state.
ephemeral "random_password" "secret_key" {
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret_version" "app" {
  secret_id                = aws_secretsmanager_secret.app.id
  secret_string_wo         = jsonencode({ secret_key = ephemeral.random_password.secret_key.result })
  secret_string_wo_version = 1
}
