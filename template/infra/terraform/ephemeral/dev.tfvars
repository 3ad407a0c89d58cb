# dev is destroyed every evening and re-created on demand (TF-2, TF-5): cheap and disposable.
environment = "dev"

# TF-4: one shared NAT gateway; a NAT per AZ would triple the hourly cost (TF-6).
one_nat_gateway_per_az = false

# TF-7: nothing worth a snapshot lives here, and deletion must not block the nightly destroy.
rds_skip_final_snapshot     = true
rds_deletion_protection     = false
cluster_deletion_protection = false
rds_backup_retention_days   = 1
rds_multi_az                = false
secret_recovery_window_days = 0
vpc_flow_logs               = false
