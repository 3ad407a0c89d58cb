# ECR-1: a deployed image is never expired; candidates that were never promoted are.
#
# Service repository. Promotion copies a scanned candidate in under `<sha>` (and `latest` on the
# default branch); the prod deploy adds `deployed-prod`. Before release 0.2.0 candidates were
# pushed here too and promotion kept their `<sha>-candidate` tag, so both kinds of image are
# still found here after an update. ECR selects an image for a rule when its tags match the
# rule's patterns, and "an image that matches the tagging requirements of a rule cannot be
# expired by a rule with a lower priority" (ECR user guide, lifecycle policies). So the first
# rules only *match* promoted images, with a count no repository reaches, and the candidate rule
# that follows can no longer touch them. Patterns know only `*`: a bare 40-hex `<sha>` ends in a
# hex digit, or in `<hex>e`, while `<sha>-candidate` always ends in "te", so these 31 suffixes
# match every `<sha>` and never a candidate. Pure expressions only, so tests/test_terraform.py
# evaluates this file with Terraform.

locals {
  hex_digits = split("", "0123456789abcdef")

  promoted_tag_patterns = concat(
    ["latest"],
    [for digit in local.hex_digits : "*${digit}" if digit != "e"],
    [for digit in local.hex_digits : "*${digit}e"],
  )

  # Each keep rule matches one suffix, at most 1/16 of the promoted images: at ECR's default quota
  # of 100,000 images per repository that is about 6,250, far below the count used in ECR's own
  # examples, so no keep rule ever expires what it keeps (tests/test_ecr_lifecycle.py).
  keep_count = 9999

  keep_promoted_rules = [
    for index, pattern in local.promoted_tag_patterns : {
      rulePriority = index + 1
      description  = "Keep promoted images (a tag matching ${pattern})"
      selection = {
        tagStatus      = "tagged"
        tagPatternList = [pattern]
        countType      = "imageCountMoreThan"
        countNumber    = local.keep_count
      }
      action = { type = "expire" }
    }
  ]

  service_lifecycle_policy = jsonencode({
    rules = concat(local.keep_promoted_rules, [
      {
        rulePriority = length(local.keep_promoted_rules) + 1
        description  = "Candidates that were never promoted (failed scan or abandoned pipeline)"
        selection = {
          tagStatus      = "tagged"
          tagPatternList = ["*-candidate"]
          countType      = "sinceImagePushed"
          countUnit      = "days"
          countNumber    = var.candidate_retention_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = length(local.keep_promoted_rules) + 2
        description  = "Images left without any tag"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 1
        }
        action = { type = "expire" }
      },
    ])
  })

  # ECR-1: nothing in the candidates repository is ever deployed (promotion copies the image into
  # the service repository), so every image there, tagged or not, expires after the retention.
  candidates_lifecycle_policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Candidates: promoted ones live on in the service repository"
        selection = {
          tagStatus   = "any"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.candidate_retention_days
        }
        action = { type = "expire" }
      },
    ]
  })
}
