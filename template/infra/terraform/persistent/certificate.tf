# The Ingress serves HTTPS only, and the AWS Load Balancer Controller finds its certificate in
# ACM from the hosts the overlays set. A certificate outlives the daily ephemeral cluster, and
# re-validating one every morning would be slow and noisy, so it lives in this stack (TF-2).

locals {
  # Read by the CI policies (ci_policies.tf): the zone the prod role writes validation records in.
  hosted_zone_arn = data.aws_route53_zone.base.arn

  hostnames = {
    prod = "${var.project_slug}.${var.base_domain}"
    dev  = "dev.${var.project_slug}.${var.base_domain}"
  }
}

data "aws_route53_zone" "base" {
  name         = var.base_domain
  private_zone = false
}

resource "aws_acm_certificate" "service" {
  domain_name               = local.hostnames.prod
  subject_alternative_names = [local.hostnames.dev]
  validation_method         = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each = {
    for option in aws_acm_certificate.service.domain_validation_options : option.domain_name => option
  }

  zone_id         = data.aws_route53_zone.base.zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "service" {
  certificate_arn         = aws_acm_certificate.service.arn
  validation_record_fqdns = [for record in aws_route53_record.certificate_validation : record.fqdn]
}
