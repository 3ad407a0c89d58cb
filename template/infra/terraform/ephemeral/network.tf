# TF-4: nodes and database live in private subnets and reach the internet (ECR, AWS APIs)
# through NAT. Load balancers find their subnets by the kubernetes.io/role tags.
module "vpc" {
  # checkov:skip=CKV_TF_1:Registry module pinned to an exact release; a published registry release cannot be changed, and init verifies what it downloads against that version.
  source  = "terraform-aws-modules/vpc/aws"
  version = "6.5.1"

  name = local.name
  cidr = var.vpc_cidr
  azs  = local.azs

  private_subnets  = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets   = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 8, 48 + i)]
  database_subnets = [for i, _ in local.azs : cidrsubnet(var.vpc_cidr, 8, 64 + i)]

  create_database_subnet_group = true

  enable_nat_gateway     = true
  single_nat_gateway     = !var.one_nat_gateway_per_az
  one_nat_gateway_per_az = var.one_nat_gateway_per_az

  enable_dns_hostnames = true
  enable_dns_support   = true

  # IAM-1: AWS creates the VPC's default security group, network ACL and route table untagged,
  # and adopting them means tagging untagged resources, which no CI role may do. Nothing uses
  # them: every subnet has its own route table, every ENI its own security group.
  manage_default_security_group = false
  manage_default_network_acl    = false
  manage_default_route_table    = false

  public_subnet_tags = {
    "kubernetes.io/role/elb" = 1
  }

  private_subnet_tags = {
    "kubernetes.io/role/internal-elb" = 1
  }

  enable_flow_log                                 = var.vpc_flow_logs
  create_flow_log_cloudwatch_log_group            = var.vpc_flow_logs
  create_flow_log_cloudwatch_iam_role             = var.vpc_flow_logs
  flow_log_cloudwatch_log_group_retention_in_days = 30
  # IAM-1: the CI role reaches its log groups by name; the module's default suffix is the VPC ID.
  flow_log_cloudwatch_log_group_name_suffix = local.name
  vpc_flow_log_iam_role_name                = "${local.name}-vpc-flow-log"
  vpc_flow_log_iam_role_use_name_prefix     = false
  vpc_flow_log_iam_policy_name              = "${local.name}-vpc-flow-log"
  vpc_flow_log_iam_policy_use_name_prefix   = false
  vpc_flow_log_permissions_boundary         = local.permissions_boundary_arn
}
