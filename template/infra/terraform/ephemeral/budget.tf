# TF-6: the cost table in docs/costs.md becomes a monthly AWS Budget per environment, so an
# environment left running or a forgotten load balancer shows up as an alert, not as an invoice.
# It counts what carries this environment's CostAllocation tag (every resource, through the
# provider's default_tags): activate that tag once under Billing, "Cost allocation tags".

resource "aws_sns_topic" "budget" {
  name              = "${local.name}-budget"
  kms_master_key_id = aws_kms_key.secrets.arn
}

data "aws_iam_policy_document" "budget_topic" {
  statement {
    sid       = "BudgetsPublishes"
    actions   = ["SNS:Publish"]
    resources = [aws_sns_topic.budget.arn]

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

resource "aws_sns_topic_policy" "budget" {
  arn    = aws_sns_topic.budget.arn
  policy = data.aws_iam_policy_document.budget_topic.json
}

resource "aws_budgets_budget" "environment" {
  name         = local.name
  budget_type  = "COST"
  limit_amount = tostring(var.budget_monthly_usd[var.environment])
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  cost_filter {
    name   = "TagKeyValue"
    values = [format("user:CostAllocation$%s", local.name)]
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 80
    threshold_type             = "PERCENTAGE"
    notification_type          = "ACTUAL"
    subscriber_sns_topic_arns  = [aws_sns_topic.budget.arn]
    subscriber_email_addresses = var.budget_alert_emails
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 100
    threshold_type             = "PERCENTAGE"
    notification_type          = "FORECASTED"
    subscriber_sns_topic_arns  = [aws_sns_topic.budget.arn]
    subscriber_email_addresses = var.budget_alert_emails
  }

  depends_on = [aws_sns_topic_policy.budget]
}
