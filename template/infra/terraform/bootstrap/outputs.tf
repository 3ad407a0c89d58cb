output "state_bucket" {
  description = "Name of the S3 bucket holding every stack's state (backend \"s3\" bucket)."
  value       = aws_s3_bucket.state.id
}

output "state_kms_key_arn" {
  description = "KMS key that encrypts the state objects; CI roles need kms:Decrypt and kms:GenerateDataKey on it."
  value       = aws_kms_key.state.arn
}
