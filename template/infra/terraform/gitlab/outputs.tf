output "project_id" {
  description = "ID of the project whose settings this stack manages."
  value       = gitlab_project.this.id
}

output "schedule_ids" {
  description = "Pipeline schedule ids, by SCHEDULED_JOB."
  value = {
    destroy-ephemeral = gitlab_pipeline_schedule.destroy_ephemeral.pipeline_schedule_id
    drift             = gitlab_pipeline_schedule.drift.pipeline_schedule_id
    audit             = gitlab_pipeline_schedule.audit.pipeline_schedule_id
  }
}
