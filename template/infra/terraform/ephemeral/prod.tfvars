# prod uses the same stack with its own state; the daily destroy never targets it.
environment = "prod"

# TF-4: one NAT gateway per AZ, so losing a zone does not cut the others off.
one_nat_gateway_per_az = true

# TF-7: a final snapshot, retained backups and deletion protection.
rds_skip_final_snapshot     = false
rds_deletion_protection     = true
cluster_deletion_protection = true
rds_backup_retention_days   = 7
rds_multi_az                = true
secret_recovery_window_days = 7
vpc_flow_logs               = true
