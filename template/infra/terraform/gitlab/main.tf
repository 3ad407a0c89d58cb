# GitLab settings of this project, as code (GIT-1): what a person used to click in Settings is
# declared here, reviewed in a merge request and checked by `make practices`. docs/gitlab.md says
# who applies it and with which token.

provider "gitlab" {
  # GITLAB_TOKEN (a project access token, role Maintainer, scope api) and, for a self-managed
  # instance, GITLAB_BASE_URL come from the environment of whoever applies; never from a file.
}

# The project already exists: it is adopted, never created nor deleted from here.
import {
  to = gitlab_project.this
  id = var.gitlab_project_path
}

data "gitlab_project" "this" {
  path_with_namespace = var.gitlab_project_path
}

resource "gitlab_project" "this" {
  # checkov:skip=CKV_GLB_1:How many reviews a merge needs is the team's call; a production deployment always needs an approval (GIT-1).
  # checkov:skip=CKV_GLB_4:Signed commits need every contributor's key set up first; enable reject_unsigned_commits once they are.
  # Name, path and namespace are read back from the project, so adopting it changes none of them.
  name         = data.gitlab_project.this.name
  path         = data.gitlab_project.this.path
  namespace_id = data.gitlab_project.this.namespace[0].id

  default_branch = var.default_branch

  # Pipeline variables outrank every value in the YAML (CI-2): only maintainers may pass them,
  # and the pipeline refuses the names it must never take from one (CI-1).
  ci_pipeline_variables_minimum_override_role = "maintainer"

  # The prod role's trust policy matches project_path, ref_type and ref of the ID token (CI-1).
  ci_id_token_sub_claim_components = ["project_path", "ref_type", "ref"]

  # An older deploy job never runs after a newer one.
  ci_forward_deployment_enabled = true

  only_allow_merge_if_pipeline_succeeds = true

  # Caches are never shared between protected and other refs (GitLab's default, kept so): a branch
  # that uploads a doctored Trivy database under the `trivy` key would otherwise make the default
  # branch's scan pass a vulnerable image before promotion (CI-4).
  ci_separated_caches = true

  # A file that looks like a key never reaches the repository (CI-1).
  push_rules {
    prevent_secrets = true
  }

  lifecycle {
    prevent_destroy = true
  }
}

# The prod role trusts only the default branch's ID token, so who can push there decides who can
# reach production: maintainers, through merge requests, never a force push (CI-1, GIT-1).
# allowed_to_* are the Premium/Ultimate form, which the protected environment below needs anyway.
resource "gitlab_branch_protection" "default" {
  project          = gitlab_project.this.id
  branch           = var.default_branch
  allow_force_push = false

  allowed_to_push = [
    { access_level = "maintainer" },
  ]
  allowed_to_merge = [
    { access_level = "maintainer" },
  ]
  allowed_to_unprotect = [
    { access_level = "maintainer" },
  ]
}

# CI/CD variables: masked and hidden always, protected only for production secrets (CI-1).
resource "gitlab_project_variable" "this" {
  for_each = nonsensitive(toset(keys(var.ci_variables)))

  project   = gitlab_project.this.id
  key       = each.key
  value     = var.ci_variables[each.key].value
  masked    = true
  hidden    = true
  protected = var.ci_variables[each.key].protected
  raw       = true
}
