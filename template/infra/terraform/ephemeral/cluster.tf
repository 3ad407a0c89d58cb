locals {
  ci_role_arn = data.terraform_remote_state.persistent.outputs.ci_role_arns[var.environment]
  # IAM-2: every role this stack creates lives under its environment's boundary.
  permissions_boundary_arn = data.terraform_remote_state.persistent.outputs.permissions_boundary_arns[var.environment]

  # Access entries replace the aws-auth ConfigMap: the environment's CI role deploys,
  # the listed admins debug. Keys are static so plans stay stable.
  cluster_admins = merge(
    { ci = local.ci_role_arn },
    { for i, arn in var.cluster_admin_arns : "admin-${i}" => arn },
  )

  # IAM-1: the read-only prod-plan role (drift schedule, automatic prod plan) refreshes the Helm
  # releases, whose records are Secrets in their namespaces: a view of those two namespaces only.
  plan_readers = var.environment == "prod" ? { plan = data.terraform_remote_state.persistent.outputs.ci_role_arns["prod-plan"] } : {}
}

module "eks" {
  # checkov:skip=CKV_TF_1:Registry module pinned to an exact release; a published registry release cannot be changed, and init verifies what it downloads against that version.
  source  = "terraform-aws-modules/eks/aws"
  version = "21.17.0"

  name               = local.name
  kubernetes_version = var.kubernetes_version

  vpc_id     = module.vpc.vpc_id
  subnet_ids = module.vpc.private_subnets

  # The public endpoint opens only to the networks listed (GitLab runners, admins); with none
  # listed it stays closed and the API is reached from inside the VPC.
  endpoint_public_access       = length(var.cluster_endpoint_public_cidrs) > 0
  endpoint_public_access_cidrs = var.cluster_endpoint_public_cidrs
  endpoint_private_access      = true

  # A prod cluster cannot be deleted until someone turns this off on purpose.
  deletion_protection = var.cluster_deletion_protection

  authentication_mode                      = "API"
  enable_cluster_creator_admin_permissions = false
  # Pods get AWS credentials through Pod Identity, so no IRSA OIDC provider is created.
  enable_irsa = false

  # A role name_prefix may be 38 characters (a name 64), which "<slug>-prod-cluster-" exceeds
  # from a 25-character slug on. A name that fits keeps its prefix: renaming the cluster role
  # would replace the cluster of a service generated before this check (tests/test_aws_names.py).
  iam_role_name                 = "${local.name}-cluster"
  iam_role_use_name_prefix      = length("${local.name}-cluster-") <= 38
  iam_role_permissions_boundary = local.permissions_boundary_arn

  # Launch templates copy these onto nodes and volumes, which default_tags never reach:
  # IAM-1 keeps the other environment's CI role away from them by this tag.
  tags = local.environment_tags

  access_entries = merge(
    {
      for key, arn in local.cluster_admins : key => {
        principal_arn = arn
        policy_associations = {
          admin = {
            policy_arn   = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
            access_scope = { type = "cluster" }
          }
        }
      }
    },
    {
      for key, arn in local.plan_readers : key => {
        principal_arn = arn
        policy_associations = {
          view = {
            policy_arn   = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminViewPolicy"
            access_scope = { type = "namespace", namespaces = ["kube-system", "external-secrets"] }
          }
        }
      }
    },
  )

  addons = {
    # NET-1 and IAM-1 (tags.tf): NetworkPolicy enforced, pod ENIs tagged for the environment.
    vpc-cni = {
      before_compute       = true
      configuration_values = local.vpc_cni_configuration
    }
    eks-pod-identity-agent = { before_compute = true }
    kube-proxy             = {}
    coredns                = {}
    # K8S-4: without metrics-server the HPA shows <unknown>.
    metrics-server = {}
  }

  eks_managed_node_groups = {
    default = {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = [var.node_instance_type]
      min_size       = var.node_count
      max_size       = var.node_count + 2
      desired_size   = var.node_count

      # The node role carries AmazonEC2ContainerRegistryReadOnly, so pods pull from ECR
      # without any pull secret (K8S-6).
      iam_role_name                 = "${local.name}-nodes"
      iam_role_use_name_prefix      = false
      iam_role_permissions_boundary = local.permissions_boundary_arn
    }
  }
}

# IAM-1: EKS tags the node group's Auto Scaling group with its own keys only (node group tags
# are not propagated to it): without the environment's tags the other environment's roles would
# not be kept off it. Propagated to the instances it launches as well.
resource "aws_autoscaling_group_tag" "nodes" {
  for_each = local.environment_tags

  autoscaling_group_name = module.eks.eks_managed_node_groups_autoscaling_group_names[0]

  tag {
    key                 = each.key
    value               = each.value
    propagate_at_launch = true
  }
}

# --- AWS Load Balancer Controller: turns Ingress (class alb) and Gateway objects into ALBs --

module "lb_controller_pod_identity" {
  # checkov:skip=CKV_TF_1:Registry module pinned to an exact release; a published registry release cannot be changed, and init verifies what it downloads against that version.
  source  = "terraform-aws-modules/eks-pod-identity/aws"
  version = "2.6.0"

  name               = "${local.name}-lb-controller"
  policy_name_prefix = "${local.name}-"
  use_name_prefix    = false

  permissions_boundary_arn = local.permissions_boundary_arn

  attach_aws_lb_controller_policy = true

  associations = {
    controller = {
      cluster_name    = module.eks.cluster_name
      namespace       = "kube-system"
      service_account = "aws-load-balancer-controller"
    }
  }
}

resource "helm_release" "lb_controller" {
  name       = "aws-load-balancer-controller"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = var.lb_controller_chart_version
  namespace  = "kube-system"

  values = [yamlencode({
    clusterName = module.eks.cluster_name
    region      = var.aws_region
    vpcId       = module.vpc.vpc_id
    serviceAccount = {
      name = "aws-load-balancer-controller"
    }
    # The chart creates IngressClass `alb`, which the Kubernetes manifests use.
    createIngressClassResource = true
    ingressClass               = "alb"
    # IAM-1: load balancers, target groups, listeners and security groups the controller
    # creates carry the environment's tags; its boundary lets it change nothing else.
    defaultTags = local.environment_tags
  })]

  depends_on = [module.eks, module.lb_controller_pod_identity]
}

# --- External Secrets Operator (K8S-5): syncs Secrets Manager into Kubernetes Secrets ----------

module "external_secrets_pod_identity" {
  # checkov:skip=CKV_TF_1:Registry module pinned to an exact release; a published registry release cannot be changed, and init verifies what it downloads against that version.
  source  = "terraform-aws-modules/eks-pod-identity/aws"
  version = "2.6.0"

  name               = "${local.name}-external-secrets"
  policy_name_prefix = "${local.name}-"
  use_name_prefix    = false

  permissions_boundary_arn = local.permissions_boundary_arn

  attach_external_secrets_policy = true
  external_secrets_secrets_manager_arns = [
    aws_secretsmanager_secret.database.arn,
    aws_secretsmanager_secret.app.arn,
    module.rds.db_instance_master_user_secret_arn,
    aws_secretsmanager_secret.database_role["migrator"].arn,
    aws_secretsmanager_secret.database_role["app"].arn,
  ]
  external_secrets_kms_key_arns       = [aws_kms_key.secrets.arn]
  external_secrets_ssm_parameter_arns = ["arn:aws:ssm:${var.aws_region}:${var.account_id}:parameter/${var.project_slug}/${var.environment}/*"]

  additional_policy_arns = var.enable_ecr_pull_secret ? { ecr_token = aws_iam_policy.ecr_token[0].arn } : {}

  associations = {
    operator = {
      cluster_name    = module.eks.cluster_name
      namespace       = "external-secrets"
      service_account = "external-secrets"
    }
  }
}

# K8S-6: only when an ecr-secret pull secret is wanted; ESO's ECRAuthorizationToken
# generator refreshes it every hour. The token carries this role's own ECR permissions, so
# the role must be able to pull the service's images, not only to ask for a token.
data "aws_iam_policy_document" "ecr_token" {
  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PullServiceImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [data.terraform_remote_state.persistent.outputs.ecr_repository_arn]
  }
}

resource "aws_iam_policy" "ecr_token" {
  count = var.enable_ecr_pull_secret ? 1 : 0

  name        = "${local.name}-ecr-token"
  description = "Lets External Secrets mint ECR pull tokens for ecr-secret"
  policy      = data.aws_iam_policy_document.ecr_token.json
}

resource "helm_release" "external_secrets" {
  name             = "external-secrets"
  repository       = "https://charts.external-secrets.io"
  chart            = "external-secrets"
  version          = var.external_secrets_chart_version
  namespace        = "external-secrets"
  create_namespace = true

  values = [yamlencode({
    installCRDs = true
    serviceAccount = {
      name = "external-secrets"
    }
  })]

  depends_on = [module.eks, module.external_secrets_pod_identity]
}
