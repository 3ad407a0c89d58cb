output "environment" {
  description = "Environment this state describes."
  value       = var.environment
}

output "cluster_name" {
  description = "EKS cluster name (<slug>-<env>); `aws eks update-kubeconfig --name` takes it."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = module.eks.cluster_endpoint
}

output "vpc_id" {
  description = "VPC of the environment; scripts/destroy-ephemeral waits for its load balancers to go (TF-5)."
  value       = module.vpc.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets of the nodes (TF-4)."
  value       = module.vpc.private_subnets
}

output "nat_gateway_ids" {
  description = "NAT gateways: one in dev, one per AZ in prod (TF-4)."
  value       = module.vpc.natgw_ids
}

output "db_instance_arn" {
  description = "RDS instance ARN; the ExternalSecret finds the master secret by its aws:rds:primaryDBInstanceArn tag."
  value       = module.rds.db_instance_arn
}

output "db_address" {
  description = "Host name of the database."
  value       = module.rds.db_instance_address
}

output "db_master_user_secret_arn" {
  description = "Secret RDS manages for the master user (TF-7)."
  value       = module.rds.db_instance_master_user_secret_arn
}

output "database_secret_name" {
  description = "Secrets Manager secret with host, port and dbname (K8S-5)."
  value       = aws_secretsmanager_secret.database.name
}

output "app_secret_name" {
  description = "Secrets Manager secret with the signing key, JSON key secret_key (K8S-5)."
  value       = aws_secretsmanager_secret.app.name
}

output "ecr_repository_url" {
  description = "Image repository, read from the persistent stack (TF-2)."
  value       = data.terraform_remote_state.persistent.outputs.ecr_repository_url
}

output "database_role_secret_names" {
  description = "Secrets Manager secrets of the migrator and app roles, JSON username and password (RUN-2)."
  value       = { for key, secret in aws_secretsmanager_secret.database_role : key => secret.name }
}
