# The environments the pipeline deploys to (.gitlab/ci/kubernetes.yml, .gitlab/ci/terraform.yml).
resource "gitlab_project_environment" "dev" {
  project = gitlab_project.this.id
  name    = "dev"
  tier    = "development"
}

resource "gitlab_project_environment" "production" {
  project = gitlab_project.this.id
  name    = "production"
  tier    = "production"
}

# deploy-prod, terraform-apply-prod and terraform-apply-persistent deploy to `production`: only
# maintainers may start them, and a maintainer other than the one who starts it must approve
# (GIT-1). Protected environments and deployment approvals need GitLab Premium or Ultimate.
resource "gitlab_project_protected_environment" "production" {
  project     = gitlab_project.this.id
  environment = gitlab_project_environment.production.name

  deploy_access_levels_attribute = [
    { access_level = "maintainer" },
  ]

  approval_rules = [
    {
      access_level       = "maintainer"
      required_approvals = var.production_approvals
    },
  ]
}
