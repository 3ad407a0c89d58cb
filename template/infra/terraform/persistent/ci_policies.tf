# What each GitLab CI role may do (CI-1, IAM-1, IAM-2). Pure expressions over variables and ARNs
# built from the names docs/CONTRACTS.md fixes, so tests/test_iam.py renders them with Terraform
# and evaluates them with an IAM policy simulator, case by case.
#
# IAM-1: a role any branch can assume (build, dev) cannot read, change or delete a prod resource,
# a prod state object or the state key; the persistent stack is changed by the prod role alone.
# IAM-2: no role is created or changed without the boundary of its environment, which no CI role
# can remove or rewrite; no iam:*, kms:* or secretsmanager:* on "*".

locals {
  state_bucket      = "${var.project_slug}-tfstate-${var.account_id}"
  oidc_host         = trimprefix(var.gitlab_url, "https://")
  project_sub       = "project_path:${var.gitlab_project_path}"
  oidc_provider_arn = "arn:aws:iam::${var.account_id}:oidc-provider/${local.oidc_host}"

  environments = ["dev", "prod"]

  # Which pipelines may assume each role, as GitLab writes the token's `sub` claim. prod-plan is
  # the read-only twin of prod (IAM-1): the drift schedule and the automatic prod plan, which no
  # person starts, run on the default branch with it and never with prod. promote writes the
  # deployable tags, so it trusts the default branch alone (IAM-1, CI-4); STS matches only the
  # aud and sub claims of a GitLab token, not `ref_protected`, so the protection of that branch
  # is a GitLab setting (infra/terraform/gitlab).
  ci_roles = {
    build       = { test = "StringLike", sub = "${local.project_sub}:ref_type:*:ref:*" }
    dev         = { test = "StringLike", sub = "${local.project_sub}:ref_type:branch:ref:*" }
    promote     = { test = "StringEquals", sub = "${local.project_sub}:ref_type:branch:ref:${var.default_branch}" }
    prod        = { test = "StringEquals", sub = "${local.project_sub}:ref_type:branch:ref:${var.default_branch}" }
    "prod-plan" = { test = "StringEquals", sub = "${local.project_sub}:ref_type:branch:ref:${var.default_branch}" }
  }

  # CI-1: a GitLab ID token of this project (sub) issued for AWS STS (aud), nothing else.
  trust_policies = {
    for name, role in local.ci_roles : name => jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect    = "Allow"
        Action    = "sts:AssumeRoleWithWebIdentity"
        Principal = { Federated = local.oidc_provider_arn }
        # The audience is always matched exactly; the sub claim with the role's operator.
        Condition = {
          for operator in distinct(["StringEquals", role.test]) : operator => merge(
            operator == "StringEquals" ? { "${local.oidc_host}:aud" = "sts.amazonaws.com" } : {},
            operator == role.test ? { "${local.oidc_host}:sub" = role.sub } : {},
          )
        }
      }]
    })
  }

  arn = {
    region_prefix = "${var.aws_region}:${var.account_id}"
    iam_role      = "arn:aws:iam::${var.account_id}:role"
    iam_policy    = "arn:aws:iam::${var.account_id}:policy"
  }

  ecr_repository_arns = {
    service    = "arn:aws:ecr:${local.arn.region_prefix}:repository/${var.project_slug}"
    candidates = "arn:aws:ecr:${local.arn.region_prefix}:repository/${var.project_slug}-candidates"
    cache      = "arn:aws:ecr:${local.arn.region_prefix}:repository/${var.project_slug}/cache"
  }

  boundary_names = {
    ci   = "${var.project_slug}-boundary-ci"
    dev  = "${var.project_slug}-boundary-dev"
    prod = "${var.project_slug}-boundary-prod"
  }
  boundary_arns = { for key, name in local.boundary_names : key => "${local.arn.iam_policy}/${name}" }

  # The state key is named by its alias (bootstrap stack); its ID is not known here.
  state_key_condition = {
    "ForAnyValue:StringEquals" = { "kms:ResourceAliases" = ["alias/${local.state_bucket}"] }
  }
  # The bootstrap stack tags what every environment shares (state bucket and key) with this
  # Environment value: no environment's "own tag" rule can ever match it.
  shared_environment = "shared"

  # IAM-1: the state key is used by every CI role (state objects) and managed by none: tagging,
  # policy, deletion, grants stay with the account administrator who applies bootstrap/.
  deny_state_key_management = {
    Sid       = "StateKeyIsUsedNeverManaged"
    Effect    = "Deny"
    NotAction = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*"]
    Resource  = "arn:aws:kms:${local.arn.region_prefix}:key/*"
    Condition = local.state_key_condition
  }

  in_region = { StringEquals = { "aws:RequestedRegion" = [var.aws_region] } }

  # IAM-1: whatever an allow below says, a resource tagged for the other environment is out of reach.
  # Every resource of the ephemeral stack carries Environment through the provider's default_tags.
  deny_other_environment = {
    for env in local.environments : env => {
      Sid      = "NeverTouchTheOtherEnvironment"
      Effect   = "Deny"
      Action   = "*"
      Resource = "*"
      Condition = {
        StringNotEquals = { "aws:ResourceTag/Environment" = [env, local.shared_environment] }
        Null            = { "aws:ResourceTag/Environment" = "false" }
      }
    }
  }

  # Several services may share the account (docs/infrastructure.md): nor another service's resources.
  deny_other_service = {
    Sid      = "NeverTouchAnotherService"
    Effect   = "Deny"
    Action   = "*"
    Resource = "*"
    Condition = {
      StringNotEquals = { "aws:ResourceTag/Project" = [var.project_slug] }
      Null            = { "aws:ResourceTag/Project" = "false" }
    }
  }

  # IAM-2: no CI role may write a boundary, detach one, or create a role or user outside them.
  deny_boundary_changes = {
    Sid    = "BoundariesAreChangedByAnAdministratorOnly"
    Effect = "Deny"
    Action = [
      "iam:CreatePolicyVersion",
      "iam:DeletePolicy",
      "iam:DeletePolicyVersion",
      "iam:SetDefaultPolicyVersion",
      "iam:TagPolicy",
      "iam:UntagPolicy",
    ]
    Resource = values(local.boundary_arns)
  }
  deny_boundary_removal = {
    Sid      = "BoundariesStay"
    Effect   = "Deny"
    Action   = ["iam:DeleteRolePermissionsBoundary", "iam:DeleteUserPermissionsBoundary"]
    Resource = "*"
  }
  deny_long_lived_identities = {
    Sid      = "NoUsersNoKeys"
    Effect   = "Deny"
    Action   = ["iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile"]
    Resource = "*"
  }

  # IAM-1: EC2 and CloudWatch Logs settings of the whole account and region, which carry no tag
  # to scope by: the other environment and every other service of the account depend on them
  # (a logs account policy can, for one, subscribe every log group to a destination).
  deny_account_settings = {
    Sid    = "NoAccountWideSettings"
    Effect = "Deny"
    Action = [
      "logs:DeleteAccountPolicy",
      "logs:DeleteResourcePolicy",
      "logs:PutAccountPolicy",
      "logs:PutResourcePolicy",
      "ec2:DisableEbsEncryptionByDefault",
      "ec2:DisableImageBlockPublicAccess",
      "ec2:DisableSerialConsoleAccess",
      "ec2:DisableSnapshotBlockPublicAccess",
      "ec2:EnableEbsEncryptionByDefault",
      "ec2:EnableImageBlockPublicAccess",
      "ec2:EnableSerialConsoleAccess",
      "ec2:EnableSnapshotBlockPublicAccess",
      "ec2:ModifyEbsDefaultKmsKeyId",
      "ec2:ModifyInstanceMetadataDefaults",
      "ec2:ResetEbsDefaultKmsKeyId",
    ]
    Resource = "*"
  }

  # What the ephemeral stack creates in EC2 (VPC module, EKS module, database.tf), each call with
  # the provider's default tags in the request (tag on create).
  network_creates = [
    "ec2:AllocateAddress",
    "ec2:CreateFlowLogs",
    "ec2:CreateInternetGateway",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateNatGateway",
    "ec2:CreateRouteTable",
    "ec2:CreateSecurityGroup",
    "ec2:CreateSubnet",
    "ec2:CreateTags",
    "ec2:CreateVpc",
  ]

  # The roles AWS itself acts through in an environment: the EKS cluster role (cluster ENIs and
  # security group, tagged by EKS with its own keys) and the node role (VPC CNI ENIs). Their
  # names can be claimed by a branch between two applies (docs/infrastructure.md), so what they
  # get beyond the tag rules stays narrow: network interfaces.
  aws_operated_roles = {
    for env in local.environments : env => [
      "${local.arn.iam_role}/${var.project_slug}-${env}-cluster*",
      "${local.arn.iam_role}/${var.project_slug}-${env}-nodes",
    ]
  }

  # IAM-2: exactly the roles the ephemeral stack creates (cluster.tf, network.tf). IAM has no
  # condition key on a trust policy's content, so the names bound which roles a CI role can make
  # trust someone (docs/infrastructure.md). The cluster role keeps a name prefix when it fits 38
  # characters (cluster.tf); Terraform then appends 26 characters of timestamp and counter.
  ephemeral_role_arns = {
    for env in local.environments : env => concat(
      [for role in ["nodes", "lb-controller", "external-secrets", "vpc-flow-log"] : "${local.arn.iam_role}/${var.project_slug}-${env}-${role}"],
      [
        length("${var.project_slug}-${env}-cluster-") <= 38
        ? "${local.arn.iam_role}/${var.project_slug}-${env}-cluster-${join("", [for i in range(26) : "?"])}"
        : "${local.arn.iam_role}/${var.project_slug}-${env}-cluster"
      ],
    )
  }

  # --- Boundaries (IAM-2) ------------------------------------------------------------------

  # The IAM writes the iam:PermissionsBoundary condition key describes (Service Authorization
  # Reference, IAM): the new boundary of CreateRole/PutRolePermissionsBoundary, the role's
  # boundary for the others. A role without a boundary has none, which StringNotEquals denies.
  role_writes = [
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
  ]
  # Each name prefix of this service and the boundary its roles carry (keys of boundary_arns).
  service_role_arns   = { for key in keys(local.boundary_names) : key => "${local.arn.iam_role}/${var.project_slug}-${key == "ci" ? "gitlab" : key}-*" }
  service_policy_arns = { for key in keys(local.boundary_names) : key => "${local.arn.iam_policy}/${var.project_slug}-${key == "ci" ? "gitlab" : key}-*" }
  eks_managed_policy_arns = [
    for name in ["AmazonEKSClusterPolicy", "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"] :
    "arn:aws:iam::aws:policy/${name}"
  ]

  boundary_policies = merge(
    {
      # The CI roles: at most the services the stacks and jobs use, never another service's
      # resources, never a way around the boundaries. Even the prod role, which applies its own
      # policies, cannot grow past this.
      ci = jsonencode({
        Version = "2012-10-17"
        Statement = concat([
          {
            Sid    = "ServicesTheStacksUse"
            Effect = "Allow"
            Action = [
              "acm:*",
              "autoscaling:*",
              "budgets:*",
              "ec2:*",
              "ecr:*",
              "eks:*",
              "elasticloadbalancing:*",
              "iam:*",
              "kms:*",
              "logs:*",
              "rds:*",
              "route53:*",
              "s3:*",
              "secretsmanager:*",
              "sns:*",
              "ssm:*",
            ]
            Resource = "*"
          },
          local.deny_other_service,
          local.deny_state_key_management,
          local.deny_account_settings,
          local.deny_boundary_changes,
          local.deny_boundary_removal,
          local.deny_long_lived_identities,
          # IAM-2: a ceiling even for a role that rewrote its own policies. Roles and policies
          # are written only under this service's names, each role under its prefix's boundary;
          # no other role of the account (an administrator's, OrganizationAccountAccessRole) is
          # attached to, trusted into, passed or rewritten.
          {
            Sid         = "OnlyThisServicesRoles"
            Effect      = "Deny"
            Action      = concat(local.role_writes, ["iam:PassRole", "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy"])
            NotResource = values(local.service_role_arns)
          },
          {
            Sid         = "OnlyThisServicesPolicies"
            Effect      = "Deny"
            Action      = ["iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicy", "iam:DeletePolicyVersion", "iam:SetDefaultPolicyVersion"]
            NotResource = values(local.service_policy_arns)
          },
          {
            Sid      = "NoUserOrGroupRights"
            Effect   = "Deny"
            Action   = ["iam:AddUserToGroup", "iam:AttachGroupPolicy", "iam:AttachUserPolicy", "iam:PutGroupPolicy", "iam:PutUserPolicy", "iam:PutUserPermissionsBoundary"]
            Resource = "*"
          },
          {
            # AWS managed policies: only those the EKS module attaches to the cluster and node roles.
            Sid      = "AttachOnlyThisServicesPolicies"
            Effect   = "Deny"
            Action   = "iam:AttachRolePolicy"
            Resource = "*"
            Condition = {
              ArnNotLike = { "iam:PolicyARN" = concat(values(local.service_policy_arns), local.eks_managed_policy_arns) }
            }
          },
          ],
          [
            for key, arn in local.service_role_arns : {
              Sid      = "${title(key)}RolesKeepThe${title(key)}Boundary"
              Effect   = "Deny"
              Action   = local.role_writes
              Resource = arn
              Condition = {
                StringNotEquals = { "iam:PermissionsBoundary" = [local.boundary_arns[key]] }
              }
            }
          ],
        )
      })
    },
    {
      # Roles the ephemeral stack creates: cluster, nodes, load balancer controller, External
      # Secrets, flow logs. Enough for their AWS managed policies, nothing of the other environment.
      for env in local.environments : env => jsonencode({
        Version = "2012-10-17"
        Statement = [
          {
            Sid    = "WorkloadServices"
            Effect = "Allow"
            Action = [
              "acm:Describe*",
              "acm:List*",
              "autoscaling:Describe*",
              "cognito-idp:DescribeUserPoolClient",
              "ec2:Describe*",
              "ec2:Get*",
              "ecr:BatchCheckLayerAvailability",
              "ecr:BatchGetImage",
              "ecr:DescribeImages",
              "ecr:GetAuthorizationToken",
              "ecr:GetDownloadUrlForLayer",
              "eks:Describe*",
              "eks-auth:AssumeRoleForPodIdentity",
              "elasticloadbalancing:Describe*",
              "iam:CreateServiceLinkedRole",
              "iam:GetServerCertificate",
              "iam:ListServerCertificates",
              "kms:CreateGrant",
              "kms:Decrypt",
              # The EKS module's ClusterEncryption policy (cluster role): envelope encryption of secrets.
              "kms:ListGrants",
              "kms:DescribeKey",
              "kms:Encrypt",
              "kms:GenerateDataKey*",
              "logs:*",
              "shield:*",
              "ssm:DescribeParameters",
              "tag:GetResources",
              "tag:TagResources",
              "waf-regional:*",
              "wafv2:*",
            ]
            Resource = "*"
          },
          {
            Sid    = "OwnParameters"
            Effect = "Allow"
            Action = "ssm:GetParameter*"
            Resource = [
              "arn:aws:ssm:${local.arn.region_prefix}:parameter/${var.project_slug}/${env}/*",
              "arn:aws:ssm:${var.aws_region}:*:parameter/aws/service/*",
            ]
          },
          {
            Sid      = "OwnSecrets"
            Effect   = "Allow"
            Action   = ["secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy", "secretsmanager:GetSecretValue", "secretsmanager:ListSecretVersionIds"]
            Resource = "arn:aws:secretsmanager:${local.arn.region_prefix}:secret:${var.project_slug}/${env}/*"
          },
          {
            Sid      = "OwnDatabaseMasterSecret"
            Effect   = "Allow"
            Action   = ["secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy", "secretsmanager:GetSecretValue"]
            Resource = "arn:aws:secretsmanager:${local.arn.region_prefix}:secret:rds!db-*"
            Condition = {
              StringEquals = {
                "aws:ResourceTag/aws:rds:primaryDBInstanceArn" = ["arn:aws:rds:${local.arn.region_prefix}:db:${var.project_slug}-${env}"]
              }
            }
          },
          # BatchGetSecretValue still needs GetSecretValue on each secret it returns.
          { Sid = "FindSecrets", Effect = "Allow", Action = ["secretsmanager:ListSecrets", "secretsmanager:BatchGetSecretValue"], Resource = "*" },
          {
            # EKS acts through the cluster and node roles on network interfaces it creates
            # without our tags (control plane ENIs, the VPC CNI's ENIs before ADDITIONAL_ENI_TAGS
            # applies): AmazonEKSClusterPolicy and AmazonEKS_CNI_Policy, ENIs only.
            Sid    = "ClusterAndNodeNetworkInterfaces"
            Effect = "Allow"
            Action = [
              "ec2:AssignPrivateIpAddresses",
              "ec2:AttachNetworkInterface",
              "ec2:CreateNetworkInterface",
              "ec2:CreateNetworkInterfacePermission",
              "ec2:CreateSecurityGroup",
              "ec2:CreateTags",
              "ec2:DeleteNetworkInterface",
              "ec2:DeleteNetworkInterfacePermission",
              "ec2:DetachNetworkInterface",
              "ec2:ModifyNetworkInterfaceAttribute",
              "ec2:UnassignPrivateIpAddresses",
            ]
            Resource = [
              "arn:aws:ec2:${local.arn.region_prefix}:network-interface/*",
              "arn:aws:ec2:${local.arn.region_prefix}:security-group/*",
              "arn:aws:ec2:${local.arn.region_prefix}:subnet/*",
              "arn:aws:ec2:${local.arn.region_prefix}:instance/*",
              "arn:aws:ec2:${local.arn.region_prefix}:vpc/*",
            ]
            Condition = { ArnLike = { "aws:PrincipalArn" = local.aws_operated_roles[env] } }
          },
          {
            # The cluster security group EKS creates carries aws:eks:cluster-name (reserved prefix).
            Sid       = "ClusterSecurityGroup"
            Effect    = "Allow"
            Action    = "ec2:*"
            Resource  = "arn:aws:ec2:${local.arn.region_prefix}:security-group/*"
            Condition = { StringEquals = { "aws:ResourceTag/aws:eks:cluster-name" = ["${var.project_slug}-${env}"] } }
          },
          {
            # IAM-1: every other role (the load balancer controller) creates what it tags for this
            # environment (chart defaultTags, ephemeral/cluster.tf) ...
            Sid       = "CreateTaggedLoadBalancing"
            Effect    = "Allow"
            Action    = ["ec2:CreateSecurityGroup", "ec2:CreateTags", "elasticloadbalancing:AddTags", "elasticloadbalancing:Create*"]
            Resource  = "*"
            Condition = { StringEquals = { "aws:RequestTag/Environment" = [env], "aws:RequestTag/Project" = [var.project_slug] } }
          },
          {
            # ... and changes only what carries this environment's tag: never an untagged resource.
            Sid       = "ChangeOwnLoadBalancing"
            Effect    = "Allow"
            Action    = ["ec2:*", "elasticloadbalancing:*"]
            Resource  = "*"
            Condition = { StringEquals = { "aws:ResourceTag/Environment" = [env], "aws:ResourceTag/Project" = [var.project_slug] } }
          },
          {
            # What the controller of this cluster created before it tagged with defaultTags
            # carries its own ownership tag (set at creation, like every tag here): it keeps
            # managing it, and adds this environment's tags on its next reconcile.
            Sid       = "ChangeOwnControllerResources"
            Effect    = "Allow"
            Action    = ["ec2:*", "elasticloadbalancing:*"]
            Resource  = "*"
            Condition = { StringEquals = { "aws:ResourceTag/elbv2.k8s.aws/cluster" = ["${var.project_slug}-${env}"] } }
          },
          {
            # Tagging an untagged resource for this environment would bring it into reach.
            Sid         = "NeverTagIntoThisEnvironment"
            Effect      = "Deny"
            Action      = ["ec2:CreateTags", "elasticloadbalancing:AddTags"]
            NotResource = "arn:aws:ec2:${local.arn.region_prefix}:network-interface/*"
            Condition = {
              StringNotEquals = {
                "aws:ResourceTag/Environment"           = [env]
                "aws:ResourceTag/elbv2.k8s.aws/cluster" = ["${var.project_slug}-${env}"]
              }
              Null = { "ec2:CreateAction" = "true", "elasticloadbalancing:CreateAction" = "true" }
            }
          },
          {
            # The VPC CNI (node role) tags the ENIs it manages; nobody else tags an untagged ENI.
            Sid      = "OnlyTheCniTagsNetworkInterfaces"
            Effect   = "Deny"
            Action   = "ec2:CreateTags"
            Resource = "arn:aws:ec2:${local.arn.region_prefix}:network-interface/*"
            Condition = {
              StringNotEquals = { "aws:ResourceTag/Environment" = [env] }
              Null            = { "ec2:CreateAction" = "true" }
              ArnNotLike      = { "aws:PrincipalArn" = local.aws_operated_roles[env] }
            }
          },
          local.deny_account_settings,
          local.deny_other_environment[env],
          local.deny_other_service,
          local.deny_boundary_changes,
          local.deny_boundary_removal,
          local.deny_long_lived_identities,
        ]
      })
    },
  )

  # --- build: push candidates (CI-4) ------------------------------------------------------------
  #
  # IAM-1: the build role trusts every ref, and ECR has no condition key on the image tag, so
  # whatever it may write to a repository it may write under any tag. It writes candidates and
  # the Kaniko cache only, and reads the service repository for the nightly rescan (SEC-1).
  ecr_pull_actions = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"]
  ecr_push_actions = ["ecr:CompleteLayerUpload", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"]

  build_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },
      {
        Sid      = "PushCandidatesAndCache"
        Effect   = "Allow"
        Action   = concat(local.ecr_pull_actions, local.ecr_push_actions, ["ecr:DescribeImageScanFindings"])
        Resource = [local.ecr_repository_arns.candidates, local.ecr_repository_arns.cache]
      },
      {
        Sid      = "ReadDeployableImages"
        Effect   = "Allow"
        Action   = local.ecr_pull_actions
        Resource = local.ecr_repository_arns.service
      },
    ]
  })

  # --- promote: the only writer of deployable tags (IAM-1, CI-4) -------------------------------
  #
  # Assumed by the promote job of the protected default branch alone. It reads the candidate the
  # same pipeline built and scanned, copies its layers into the service repository (PutImage
  # needs them there: ECR answers LayersNotFoundException otherwise) and tags it.
  promote_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      { Sid = "RegistryLogin", Effect = "Allow", Action = "ecr:GetAuthorizationToken", Resource = "*" },
      {
        Sid      = "ReadCandidates"
        Effect   = "Allow"
        Action   = local.ecr_pull_actions
        Resource = local.ecr_repository_arns.candidates
      },
      {
        Sid      = "WriteDeployableImages"
        Effect   = "Allow"
        Action   = concat(local.ecr_pull_actions, local.ecr_push_actions)
        Resource = local.ecr_repository_arns.service
      },
    ]
  })

  # --- dev and prod: Terraform of the ephemeral stack, deploy, plan of the persistent stack ---

  terraform_policies = {
    for env in local.environments : env => jsonencode({
      Version = "2012-10-17"
      Statement = [
        {
          Sid      = "ListStateBucket"
          Effect   = "Allow"
          Action   = "s3:ListBucket"
          Resource = "arn:aws:s3:::${local.state_bucket}"
        },
        {
          # TF-2: the ephemeral stack reads the persistent outputs; the merge-request plan of the
          # persistent stack runs with the dev role (-lock=false) and reads them too.
          Sid    = "ReadPersistentAndOwnState"
          Effect = "Allow"
          Action = "s3:GetObject"
          Resource = [
            "arn:aws:s3:::${local.state_bucket}/persistent/*",
            "arn:aws:s3:::${local.state_bucket}/ephemeral/${env}/*",
          ]
        },
        {
          # The lock is the object <key>.tflock (TF-1): writing and deleting it is how a run locks.
          Sid      = "WriteOwnStateAndLock"
          Effect   = "Allow"
          Action   = ["s3:PutObject", "s3:DeleteObject"]
          Resource = "arn:aws:s3:::${local.state_bucket}/ephemeral/${env}/*"
        },
        {
          Sid       = "UseStateKey"
          Effect    = "Allow"
          Action    = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
          Resource  = "arn:aws:kms:${local.arn.region_prefix}:key/*"
          Condition = local.state_key_condition
        },
        {
          Sid       = "ReadNetwork"
          Effect    = "Allow"
          Action    = ["ec2:Describe*", "ec2:Get*", "autoscaling:Describe*", "elasticloadbalancing:Describe*"]
          Resource  = "*"
          Condition = local.in_region
        },
        {
          # IAM-1: EC2 has no name to scope by, so the tags are the scope: what this environment
          # creates carries its tags from the request on (provider default_tags) ...
          Sid      = "CreateOwnNetwork"
          Effect   = "Allow"
          Action   = local.network_creates
          Resource = "*"
          Condition = {
            StringEquals = {
              "aws:RequestTag/Environment" = [env]
              "aws:RequestTag/Project"     = [var.project_slug]
              "aws:RequestedRegion"        = [var.aws_region]
            }
          }
        },
        {
          # ... a rule is a new object inside a security group, which must be ours (next statement);
          # aws_security_group_rule (EKS module) sends no tags for it, so none are required here ...
          Sid      = "CreateRulesInOwnSecurityGroups"
          Effect   = "Allow"
          Action   = ["ec2:AuthorizeSecurityGroupEgress", "ec2:AuthorizeSecurityGroupIngress"]
          Resource = "arn:aws:ec2:${local.arn.region_prefix}:security-group-rule/*"
        },
        {
          # ... and only what carries them is changed or deleted: never an untagged resource,
          # whoever created it (an ALB, an ENI, another team's instance).
          Sid      = "ChangeOwnNetwork"
          Effect   = "Allow"
          Action   = "ec2:*"
          Resource = "*"
          Condition = {
            StringEquals = {
              "aws:ResourceTag/Environment" = [env]
              "aws:ResourceTag/Project"     = [var.project_slug]
              "aws:RequestedRegion"         = [var.aws_region]
            }
          }
        },
        {
          # EKS tags the cluster security group it creates with aws:eks:cluster-name only (a
          # reserved prefix nobody else can write); the EKS module adds this environment's tags.
          Sid       = "TagOwnClusterSecurityGroup"
          Effect    = "Allow"
          Action    = ["ec2:CreateTags", "ec2:DeleteTags"]
          Resource  = "arn:aws:ec2:${local.arn.region_prefix}:security-group/*"
          Condition = { StringEquals = { "aws:ResourceTag/aws:eks:cluster-name" = ["${var.project_slug}-${env}"] } }
        },
        {
          # EKS gives the node group's Auto Scaling group its own tags only (eks:cluster-name);
          # cluster.tf adds this environment's, which the denies below then protect.
          Sid       = "TagOwnNodeGroupAutoScalingGroup"
          Effect    = "Allow"
          Action    = ["autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"]
          Resource  = "arn:aws:autoscaling:${local.arn.region_prefix}:autoScalingGroup:*:autoScalingGroupName/*"
          Condition = { StringEquals = { "autoscaling:ResourceTag/eks:cluster-name" = ["${var.project_slug}-${env}"] } }
        },
        {
          # IAM-1: tag-then-act. Tagging an untagged resource for this environment would bring it
          # into reach of ChangeOwnNetwork: only at creation (ec2:CreateAction) or on what is ours.
          Sid      = "NeverTagIntoThisEnvironment"
          Effect   = "Deny"
          Action   = "ec2:CreateTags"
          Resource = "*"
          Condition = {
            StringNotEquals = {
              "aws:ResourceTag/Environment"          = [env]
              "aws:ResourceTag/aws:eks:cluster-name" = ["${var.project_slug}-${env}"]
            }
            Null = { "ec2:CreateAction" = "true" }
          }
        },
        {
          Sid    = "OwnCluster"
          Effect = "Allow"
          Action = "eks:*"
          Resource = [
            "arn:aws:eks:${local.arn.region_prefix}:cluster/${var.project_slug}-${env}",
            "arn:aws:eks:${local.arn.region_prefix}:*/${var.project_slug}-${env}/*",
          ]
        },
        {
          # CreateCluster has no resource-level scope: the request's tags are what bounds it.
          Sid       = "CreateOwnCluster"
          Effect    = "Allow"
          Action    = "eks:CreateCluster"
          Resource  = "*"
          Condition = { StringEquals = { "aws:RequestTag/Environment" = [env], "aws:RequestTag/Project" = [var.project_slug] } }
        },
        {
          Sid      = "ClusterCatalog"
          Effect   = "Allow"
          Action   = ["eks:DescribeAddonVersions", "eks:DescribeAddonConfiguration", "eks:ListClusters", "eks:DescribeClusterVersions"]
          Resource = "*"
        },
        {
          Sid    = "OwnDatabase"
          Effect = "Allow"
          Action = "rds:*"
          Resource = [
            "arn:aws:rds:${local.arn.region_prefix}:db:${var.project_slug}-${env}",
            "arn:aws:rds:${local.arn.region_prefix}:pg:${var.project_slug}-${env}*",
            "arn:aws:rds:${local.arn.region_prefix}:og:${var.project_slug}-${env}*",
            "arn:aws:rds:${local.arn.region_prefix}:subgrp:${var.project_slug}-${env}*",
            "arn:aws:rds:${local.arn.region_prefix}:snapshot:${var.project_slug}-${env}*",
          ]
        },
        {
          Sid      = "DatabaseCatalog"
          Effect   = "Allow"
          Action   = ["rds:DescribeDBEngineVersions", "rds:DescribeOrderableDBInstanceOptions", "rds:DescribeEngineDefaultParameters"]
          Resource = "*"
        },
        {
          # TF-7: RDS creates the master secret with the caller's rights; reading it stays with the workload.
          Sid      = "DatabaseMasterSecretCreatedByRds"
          Effect   = "Allow"
          Action   = ["secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DescribeSecret"]
          Resource = "arn:aws:secretsmanager:${local.arn.region_prefix}:secret:rds!db-*"
        },
        {
          # Deleting or modifying the database changes its master secret: this database's only.
          Sid      = "OwnDatabaseMasterSecret"
          Effect   = "Allow"
          Action   = ["secretsmanager:DeleteSecret", "secretsmanager:RotateSecret", "secretsmanager:UpdateSecret"]
          Resource = "arn:aws:secretsmanager:${local.arn.region_prefix}:secret:rds!db-*"
          Condition = {
            StringEquals = {
              "aws:ResourceTag/aws:rds:primaryDBInstanceArn" = ["arn:aws:rds:${local.arn.region_prefix}:db:${var.project_slug}-${env}"]
            }
          }
        },
        {
          Sid      = "OwnSecrets"
          Effect   = "Allow"
          Action   = "secretsmanager:*"
          Resource = "arn:aws:secretsmanager:${local.arn.region_prefix}:secret:${var.project_slug}/${env}/*"
        },
        {
          Sid      = "ListSecrets"
          Effect   = "Allow"
          Action   = "secretsmanager:ListSecrets"
          Resource = "*"
        },
        {
          # Keys of this environment only: created with its tags, managed while they carry them.
          Sid       = "CreateOwnKeys"
          Effect    = "Allow"
          Action    = "kms:CreateKey"
          Resource  = "*"
          Condition = { StringEquals = { "aws:RequestTag/Environment" = [env], "aws:RequestTag/Project" = [var.project_slug] } }
        },
        {
          # CreateKey's Tags are authorized as kms:TagResource on "*", not on a key (KMS developer
          # guide, "Controlling access to tags"); the deny below keeps this off existing keys.
          Sid       = "TagNewOwnKeys"
          Effect    = "Allow"
          Action    = "kms:TagResource"
          Resource  = "*"
          Condition = { StringEquals = { "aws:RequestTag/Environment" = [env], "aws:RequestTag/Project" = [var.project_slug] } }
        },
        {
          # IAM-1: tagging a key is how a role would make it its own (tag, then kms:* below): only
          # keys already tagged for this environment are retagged, never an untagged or shared one.
          Sid       = "NeverTagAKeyIntoThisEnvironment"
          Effect    = "Deny"
          Action    = ["kms:TagResource", "kms:UntagResource"]
          Resource  = "arn:aws:kms:${local.arn.region_prefix}:key/*"
          Condition = { StringNotEquals = { "aws:ResourceTag/Environment" = [env] } }
        },
        {
          Sid       = "NeverTagAnythingOutOfThisEnvironment"
          Effect    = "Deny"
          Action    = ["autoscaling:CreateOrUpdateTags", "ec2:CreateTags", "elasticloadbalancing:AddTags", "kms:TagResource"]
          Resource  = "*"
          Condition = { StringNotEquals = { "aws:RequestTag/Environment" = [env] }, Null = { "aws:RequestTag/Environment" = "false" } }
        },
        {
          Sid       = "ManageOwnKeys"
          Effect    = "Allow"
          Action    = "kms:*"
          Resource  = "arn:aws:kms:${local.arn.region_prefix}:key/*"
          Condition = { StringEquals = { "aws:ResourceTag/Environment" = [env], "aws:ResourceTag/Project" = [var.project_slug] } }
        },
        {
          Sid    = "OwnKeyAliases"
          Effect = "Allow"
          Action = ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"]
          Resource = [
            "arn:aws:kms:${local.arn.region_prefix}:alias/eks/${var.project_slug}-${env}",
            "arn:aws:kms:${local.arn.region_prefix}:alias/${var.project_slug}-${env}*",
          ]
        },
        {
          Sid      = "KeyCatalog"
          Effect   = "Allow"
          Action   = ["kms:ListAliases", "kms:ListKeys"]
          Resource = "*"
        },
        {
          # IAM-1: the log groups of this environment, by the names the modules give them (EKS
          # control plane, RDS exports, VPC flow logs): never another log group of the account.
          Sid    = "OwnLogGroups"
          Effect = "Allow"
          Action = "logs:*"
          Resource = [
            "arn:aws:logs:${local.arn.region_prefix}:log-group:/aws/eks/${var.project_slug}-${env}/*",
            "arn:aws:logs:${local.arn.region_prefix}:log-group:/aws/rds/instance/${var.project_slug}-${env}/*",
            "arn:aws:logs:${local.arn.region_prefix}:log-group:/aws/vpc-flow-log/${var.project_slug}-${env}*",
          ]
        },
        {
          Sid       = "FindLogGroups"
          Effect    = "Allow"
          Action    = "logs:DescribeLogGroups"
          Resource  = "*"
          Condition = local.in_region
        },
        {
          Sid      = "ReadEksAmiParameters"
          Effect   = "Allow"
          Action   = ["ssm:GetParameter", "ssm:GetParameters"]
          Resource = "arn:aws:ssm:${var.aws_region}:*:parameter/aws/service/eks/*"
        },
        {
          # IAM-2: the roles the ephemeral stack creates, under the environment's boundary, and
          # no other name (a role of one's own could trust another account and outlive the destroy).
          Sid       = "CreateTheStacksRolesUnderBoundary"
          Effect    = "Allow"
          Action    = "iam:CreateRole"
          Resource  = local.ephemeral_role_arns[env]
          Condition = { StringEquals = { "iam:PermissionsBoundary" = [local.boundary_arns[env]] } }
        },
        {
          Sid       = "ChangeTheStacksRolesTrust"
          Effect    = "Allow"
          Action    = "iam:UpdateAssumeRolePolicy"
          Resource  = local.ephemeral_role_arns[env]
          Condition = { StringEquals = { "aws:ResourceTag/Environment" = [env], "aws:ResourceTag/Project" = [var.project_slug] } }
        },
        {
          # IAM-2: roles of this environment exist only under its boundary.
          Sid    = "OwnRolesUnderBoundary"
          Effect = "Allow"
          Action = [
            "iam:AttachRolePolicy",
            "iam:DeleteRolePolicy",
            "iam:DetachRolePolicy",
            "iam:PutRolePermissionsBoundary",
            "iam:PutRolePolicy",
          ]
          Resource  = "${local.arn.iam_role}/${var.project_slug}-${env}-*"
          Condition = { StringEquals = { "iam:PermissionsBoundary" = [local.boundary_arns[env]] } }
        },
        {
          Sid    = "OwnRolesTagged"
          Effect = "Allow"
          Action = [
            "iam:DeleteRole",
            "iam:TagRole",
            "iam:UntagRole",
            "iam:UpdateRole",
            "iam:UpdateRoleDescription",
          ]
          Resource  = "${local.arn.iam_role}/${var.project_slug}-${env}-*"
          Condition = { StringEquals = { "aws:ResourceTag/Environment" = [env], "aws:ResourceTag/Project" = [var.project_slug] } }
        },
        {
          Sid      = "PassOwnRoles"
          Effect   = "Allow"
          Action   = "iam:PassRole"
          Resource = "${local.arn.iam_role}/${var.project_slug}-${env}-*"
          Condition = {
            StringEquals = {
              "iam:PassedToService" = ["eks.amazonaws.com", "ec2.amazonaws.com", "pods.eks.amazonaws.com", "vpc-flow-logs.amazonaws.com"]
            }
          }
        },
        {
          Sid    = "OwnPolicies"
          Effect = "Allow"
          Action = [
            "iam:CreatePolicy",
            "iam:CreatePolicyVersion",
            "iam:DeletePolicy",
            "iam:DeletePolicyVersion",
            "iam:TagPolicy",
            "iam:UntagPolicy",
          ]
          Resource = "${local.arn.iam_policy}/${var.project_slug}-${env}-*"
        },
        {
          Sid      = "ReadIam"
          Effect   = "Allow"
          Action   = ["iam:Get*", "iam:List*"]
          Resource = "*"
        },
        {
          Sid       = "ServiceLinkedRoles"
          Effect    = "Allow"
          Action    = "iam:CreateServiceLinkedRole"
          Resource  = "${local.arn.iam_role}/aws-service-role/*"
          Condition = { StringLike = { "iam:AWSServiceName" = ["eks.amazonaws.com", "eks-nodegroup.amazonaws.com", "rds.amazonaws.com", "autoscaling.amazonaws.com", "elasticloadbalancing.amazonaws.com"] } }
        },
        {
          # The deploy job resolves <sha> to its digest; the persistent plan refreshes the repositories.
          Sid      = "ReadRepositories"
          Effect   = "Allow"
          Action   = ["ecr:DescribeImages", "ecr:DescribeRepositories", "ecr:GetLifecyclePolicy", "ecr:ListTagsForResource"]
          Resource = values(local.ecr_repository_arns)
        },
        {
          # The persistent plan refreshes the zone (data.aws_route53_zone reads its tags too) and the certificate.
          Sid      = "ReadZone"
          Effect   = "Allow"
          Action   = ["route53:GetHostedZone", "route53:ListResourceRecordSets", "route53:ListTagsForResource"]
          Resource = local.hosted_zone_arn
        },
        {
          # Route 53 is global: its requests name the partition's home region, not this one, so no region condition.
          Sid      = "ListZones"
          Effect   = "Allow"
          Action   = ["route53:ListHostedZones", "route53:GetChange"]
          Resource = "*"
        },
        {
          Sid       = "ReadCertificates"
          Effect    = "Allow"
          Action    = ["acm:DescribeCertificate", "acm:ListCertificates", "acm:ListTagsForCertificate"]
          Resource  = "*"
          Condition = local.in_region
        },
        {
          # TF-6: the environment's own cost budget.
          Sid      = "OwnBudget"
          Effect   = "Allow"
          Action   = ["budgets:ModifyBudget", "budgets:ViewBudget", "budgets:ListTagsForResource", "budgets:TagResource", "budgets:UntagResource"]
          Resource = "arn:aws:budgets::${var.account_id}:budget/${var.project_slug}-${env}"
        },
        {
          Sid      = "OwnBudgetTopic"
          Effect   = "Allow"
          Action   = "sns:*"
          Resource = "arn:aws:sns:${local.arn.region_prefix}:${var.project_slug}-${env}-*"
        },
        local.deny_other_environment[env],
        local.deny_other_service,
        local.deny_state_key_management,
        local.deny_boundary_changes,
        local.deny_boundary_removal,
        local.deny_long_lived_identities,
      ]
    })
  }

  # --- prod-plan: read-only plan of the prod ephemeral stack and of this stack (IAM-1, TF-3) -----
  #
  # What `terraform plan` (refresh) of both reads, and nothing it could write with: the jobs that
  # use it run with -lock=false, so not even the S3 lock object (<key>.tflock) is written. A plan
  # made without the lock is safe to apply later: Terraform refuses a saved plan whose state has
  # changed since ("Saved plan is stale").
  prod_plan_read_actions = [
    "acm:Describe*",
    "acm:List*",
    "autoscaling:Describe*",
    "budgets:ListTagsForResource",
    "budgets:ViewBudget",
    "ec2:Describe*",
    "ecr:Describe*",
    "ecr:GetLifecyclePolicy",
    "ecr:ListTagsForResource",
    "eks:Describe*",
    "eks:List*",
    "elasticloadbalancing:Describe*",
    "iam:Get*",
    "iam:List*",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListResourceTags",
    "logs:DescribeLogGroups",
    "logs:ListTagsForResource",
    "logs:ListTagsLogGroup",
    "rds:Describe*",
    "rds:ListTagsForResource",
    "route53:GetChange",
    "route53:GetHostedZone",
    "route53:ListHostedZones",
    "route53:ListResourceRecordSets",
    "route53:ListTagsForResource",
    "s3:GetObject",
    "s3:ListBucket",
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:GetSecretValue",
    "sns:GetTopicAttributes",
    "sns:ListTagsForResource",
    "ssm:GetParameter",
    "ssm:GetParameters",
  ]

  prod_plan_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # IAM-1: whatever an allow below or a later edit says, this role only reads.
        Sid       = "ReadOnly"
        Effect    = "Deny"
        NotAction = local.prod_plan_read_actions
        Resource  = "*"
      },
      {
        Sid      = "ListStateBucket"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = "arn:aws:s3:::${local.state_bucket}"
      },
      {
        # The two states it plans; never dev's. No PutObject: the jobs plan with -lock=false.
        Sid    = "ReadPersistentAndProdState"
        Effect = "Allow"
        Action = "s3:GetObject"
        Resource = [
          "arn:aws:s3:::${local.state_bucket}/persistent/*",
          "arn:aws:s3:::${local.state_bucket}/ephemeral/prod/*",
        ]
      },
      {
        Sid       = "DecryptState"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:DescribeKey"]
        Resource  = "arn:aws:kms:${local.arn.region_prefix}:key/*"
        Condition = local.state_key_condition
      },
      {
        Sid       = "ReadNetwork"
        Effect    = "Allow"
        Action    = ["ec2:Describe*", "autoscaling:Describe*", "elasticloadbalancing:Describe*"]
        Resource  = "*"
        Condition = local.in_region
      },
      {
        Sid    = "ReadProdCluster"
        Effect = "Allow"
        Action = ["eks:Describe*", "eks:List*"]
        Resource = [
          "arn:aws:eks:${local.arn.region_prefix}:cluster/${var.project_slug}-prod",
          "arn:aws:eks:${local.arn.region_prefix}:*/${var.project_slug}-prod/*",
        ]
      },
      {
        Sid      = "ClusterCatalog"
        Effect   = "Allow"
        Action   = ["eks:DescribeAddonVersions", "eks:DescribeAddonConfiguration", "eks:DescribeClusterVersions", "eks:ListClusters"]
        Resource = "*"
      },
      {
        Sid    = "ReadProdDatabase"
        Effect = "Allow"
        Action = ["rds:Describe*", "rds:ListTagsForResource"]
        Resource = [
          "arn:aws:rds:${local.arn.region_prefix}:db:${var.project_slug}-prod",
          "arn:aws:rds:${local.arn.region_prefix}:pg:${var.project_slug}-prod*",
          "arn:aws:rds:${local.arn.region_prefix}:og:${var.project_slug}-prod*",
          "arn:aws:rds:${local.arn.region_prefix}:subgrp:${var.project_slug}-prod*",
        ]
      },
      {
        Sid      = "DatabaseCatalog"
        Effect   = "Allow"
        Action   = ["rds:DescribeDBEngineVersions", "rds:DescribeOrderableDBInstanceOptions", "rds:DescribeEngineDefaultParameters"]
        Resource = "*"
      },
      {
        # Metadata of the environment's secrets. Never the RDS-managed master secret (rds!db-*):
        # the stack does not hold its value, so its plan never reads it.
        Sid      = "DescribeProdSecrets"
        Effect   = "Allow"
        Action   = ["secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy"]
        Resource = "arn:aws:secretsmanager:${local.arn.region_prefix}:secret:${var.project_slug}/prod/*"
      },
      {
        # The refresh of an aws_secretsmanager_secret_version is a GetSecretValue (the provider's
        # only read of a version, write-only value or not): the two versions database.tf holds,
        # by name, and no other secret (docs/infrastructure.md).
        Sid    = "RefreshTheStacksSecretVersions"
        Effect = "Allow"
        Action = "secretsmanager:GetSecretValue"
        Resource = [
          "arn:aws:secretsmanager:${local.arn.region_prefix}:secret:${var.project_slug}/prod/database-??????",
          "arn:aws:secretsmanager:${local.arn.region_prefix}:secret:${var.project_slug}/prod/app-??????",
        ]
      },
      {
        # Those secrets are encrypted with the environment's key: Decrypt through Secrets Manager only.
        Sid       = "DecryptProdSecretsThroughSecretsManager"
        Effect    = "Allow"
        Action    = "kms:Decrypt"
        Resource  = "arn:aws:kms:${local.arn.region_prefix}:key/*"
        Condition = { StringEquals = { "aws:ResourceTag/Environment" = ["prod"], "aws:ResourceTag/Project" = [var.project_slug], "kms:ViaService" = ["secretsmanager.${var.aws_region}.amazonaws.com"] } }
      },
      {
        Sid       = "ReadProdKeys"
        Effect    = "Allow"
        Action    = ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"]
        Resource  = "arn:aws:kms:${local.arn.region_prefix}:key/*"
        Condition = { StringEquals = { "aws:ResourceTag/Environment" = ["prod"], "aws:ResourceTag/Project" = [var.project_slug] } }
      },
      {
        Sid      = "KeyAliases"
        Effect   = "Allow"
        Action   = "kms:ListAliases"
        Resource = "*"
      },
      {
        Sid    = "ReadProdLogGroups"
        Effect = "Allow"
        Action = ["logs:ListTagsForResource", "logs:ListTagsLogGroup"]
        Resource = [
          "arn:aws:logs:${local.arn.region_prefix}:log-group:/aws/eks/${var.project_slug}-prod/*",
          "arn:aws:logs:${local.arn.region_prefix}:log-group:/aws/rds/instance/${var.project_slug}-prod/*",
          "arn:aws:logs:${local.arn.region_prefix}:log-group:/aws/vpc-flow-log/${var.project_slug}-prod*",
        ]
      },
      {
        Sid       = "FindLogGroups"
        Effect    = "Allow"
        Action    = "logs:DescribeLogGroups"
        Resource  = "*"
        Condition = local.in_region
      },
      {
        Sid      = "ReadEksAmiParameters"
        Effect   = "Allow"
        Action   = ["ssm:GetParameter", "ssm:GetParameters"]
        Resource = "arn:aws:ssm:${var.aws_region}:*:parameter/aws/service/eks/*"
      },
      {
        # Roles, policies and the OIDC provider of both stacks; the EKS module's
        # aws_iam_session_context reads the caller's own role.
        Sid      = "ReadIam"
        Effect   = "Allow"
        Action   = ["iam:Get*", "iam:List*"]
        Resource = "*"
      },
      {
        Sid      = "ReadRepositories"
        Effect   = "Allow"
        Action   = ["ecr:DescribeRepositories", "ecr:GetLifecyclePolicy", "ecr:ListTagsForResource"]
        Resource = values(local.ecr_repository_arns)
      },
      {
        Sid      = "ReadZone"
        Effect   = "Allow"
        Action   = ["route53:GetHostedZone", "route53:ListResourceRecordSets", "route53:ListTagsForResource"]
        Resource = local.hosted_zone_arn
      },
      {
        # Route 53 is global: its requests name the partition's home region, not this one.
        Sid      = "ListZones"
        Effect   = "Allow"
        Action   = ["route53:ListHostedZones", "route53:GetChange"]
        Resource = "*"
      },
      {
        Sid       = "ReadCertificates"
        Effect    = "Allow"
        Action    = ["acm:DescribeCertificate", "acm:ListCertificates", "acm:ListTagsForCertificate"]
        Resource  = "*"
        Condition = local.in_region
      },
      {
        Sid      = "ReadProdBudget"
        Effect   = "Allow"
        Action   = ["budgets:ViewBudget", "budgets:ListTagsForResource"]
        Resource = "arn:aws:budgets::${var.account_id}:budget/${var.project_slug}-prod"
      },
      {
        Sid      = "ReadProdBudgetTopic"
        Effect   = "Allow"
        Action   = ["sns:GetTopicAttributes", "sns:ListTagsForResource"]
        Resource = "arn:aws:sns:${local.arn.region_prefix}:${var.project_slug}-prod-*"
      },
      local.deny_other_environment["prod"],
      local.deny_other_service,
      local.deny_state_key_management,
    ]
  })

  # --- prod only: apply of this (persistent) stack --------------------------------------------

  persistent_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "WritePersistentStateAndLock"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:DeleteObject"]
        Resource = "arn:aws:s3:::${local.state_bucket}/persistent/*"
      },
      {
        Sid      = "ApplyRepositories"
        Effect   = "Allow"
        Action   = "ecr:*"
        Resource = values(local.ecr_repository_arns)
      },
      {
        Sid      = "ApplyOidcProvider"
        Effect   = "Allow"
        Action   = "iam:*OpenIDConnectProvider*"
        Resource = local.oidc_provider_arn
      },
      {
        # IAM-2: the CI roles are rewritten only with the CI boundary in place.
        Sid    = "ApplyCiRolesUnderBoundary"
        Effect = "Allow"
        Action = [
          "iam:AttachRolePolicy",
          "iam:CreateRole",
          "iam:DeleteRolePolicy",
          "iam:DetachRolePolicy",
          "iam:PutRolePermissionsBoundary",
          "iam:PutRolePolicy",
        ]
        Resource  = "${local.arn.iam_role}/${var.project_slug}-gitlab-*"
        Condition = { StringEquals = { "iam:PermissionsBoundary" = [local.boundary_arns.ci] } }
      },
      {
        Sid    = "ApplyCiRoles"
        Effect = "Allow"
        Action = [
          "iam:DeleteRole",
          "iam:TagRole",
          "iam:UntagRole",
          "iam:UpdateAssumeRolePolicy",
          "iam:UpdateRole",
          "iam:UpdateRoleDescription",
        ]
        Resource = "${local.arn.iam_role}/${var.project_slug}-gitlab-*"
      },
      {
        Sid    = "ApplyCiPolicies"
        Effect = "Allow"
        Action = [
          "iam:CreatePolicy",
          "iam:CreatePolicyVersion",
          "iam:DeletePolicy",
          "iam:DeletePolicyVersion",
          "iam:TagPolicy",
          "iam:UntagPolicy",
        ]
        Resource = "${local.arn.iam_policy}/${var.project_slug}-gitlab-*"
      },
      {
        Sid       = "ApplyCertificate"
        Effect    = "Allow"
        Action    = ["acm:RequestCertificate", "acm:DeleteCertificate", "acm:AddTagsToCertificate", "acm:RemoveTagsFromCertificate"]
        Resource  = "*"
        Condition = local.in_region
      },
      {
        # Only the validation records of this service's two hostnames.
        Sid      = "ApplyValidationRecords"
        Effect   = "Allow"
        Action   = "route53:ChangeResourceRecordSets"
        Resource = local.hosted_zone_arn
        Condition = {
          "ForAllValues:StringLike" = {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames" = ["*.${var.project_slug}.${var.base_domain}"]
          }
        }
      },
      local.deny_boundary_changes,
      local.deny_boundary_removal,
      local.deny_long_lived_identities,
    ]
  })
}
