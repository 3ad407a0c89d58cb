# The pipeline schedules (.gitlab-ci.yml picks the jobs from SCHEDULED_JOB). They run on the
# protected default branch as the owner of the token that applies this stack, so that owner must
# be a maintainer allowed to deploy to `production` (the drift check uses the prod role).

# TF-2, TF-5: the dev ephemeral stack is destroyed every working evening.
resource "gitlab_pipeline_schedule" "destroy_ephemeral" {
  project        = gitlab_project.this.id
  description    = "Destroy the dev ephemeral stack (scripts/destroy-ephemeral)"
  ref            = "refs/heads/${var.default_branch}"
  cron           = var.destroy_cron
  cron_timezone  = var.schedule_timezone
  active         = true
  take_ownership = true
}

resource "gitlab_pipeline_schedule_variable" "destroy_ephemeral" {
  project              = gitlab_project.this.id
  pipeline_schedule_id = gitlab_pipeline_schedule.destroy_ephemeral.pipeline_schedule_id
  key                  = "SCHEDULED_JOB"
  value                = "destroy-ephemeral"
}

# TF-3: resources changed outside Terraform fail the drift jobs.
resource "gitlab_pipeline_schedule" "drift" {
  project        = gitlab_project.this.id
  description    = "Terraform drift check of persistent and prod (plan -detailed-exitcode)"
  ref            = "refs/heads/${var.default_branch}"
  cron           = var.drift_cron
  cron_timezone  = var.schedule_timezone
  active         = true
  take_ownership = true
}

resource "gitlab_pipeline_schedule_variable" "drift" {
  project              = gitlab_project.this.id
  pipeline_schedule_id = gitlab_pipeline_schedule.drift.pipeline_schedule_id
  key                  = "SCHEDULED_JOB"
  value                = "drift"
}

# SEC-1: a CVE published today fails the audits of an unchanged lock, and the deployed image.
resource "gitlab_pipeline_schedule" "audit" {
  project        = gitlab_project.this.id
  description    = "Audits of the lock and the code, and a rescan of the deployed image"
  ref            = "refs/heads/${var.default_branch}"
  cron           = var.audit_cron
  cron_timezone  = var.schedule_timezone
  active         = true
  take_ownership = true
}

resource "gitlab_pipeline_schedule_variable" "audit" {
  project              = gitlab_project.this.id
  pipeline_schedule_id = gitlab_pipeline_schedule.audit.pipeline_schedule_id
  key                  = "SCHEDULED_JOB"
  value                = "audit"
}
