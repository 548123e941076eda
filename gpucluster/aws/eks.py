"""The EKS control plane: cluster role, KMS-encrypted secrets, control-plane logs, endpoint access, admin access
entries, the OIDC provider for IAM roles for service accounts, and the core add-ons."""

from __future__ import annotations

import json
from typing import TypeVar

import pulumi
from pulumi_aws import cloudwatch, eks, iam, kms

from gpucluster.aws.iam import Oidc, service_account_role, service_role
from gpucluster.plan import Plan

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator"]
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
EBS_CSI_SA = ("kube-system", "ebs-csi-controller-sa")
LOG_RETENTION_DAYS = 90


T = TypeVar("T")


def present(value: T | None, what: str) -> T:
    """An output AWS always sets once the resource exists."""
    if value is None:
        raise ValueError(f"AWS returned no {what}")
    return value


class Cluster(pulumi.ComponentResource):
    """EKS cluster named after the spec, in the private subnets, authenticating through access entries only."""

    def __init__(self, plan: Plan, subnet_ids: list[pulumi.Output[str]], opts: pulumi.ResourceOptions):
        spec = plan.spec
        assert spec.aws is not None
        super().__init__("gpucluster:aws:Cluster", spec.name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.name = spec.name
        self.version = spec.kubernetes.version
        key = kms.Key(
            f"{spec.name}-secrets",
            description=f"EKS secrets encryption for {spec.name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            opts=child,
        )
        kms.Alias(f"{spec.name}-secrets", name=f"alias/eks/{spec.name}", target_key_id=key.key_id, opts=child)
        role = service_role(f"{spec.name}-cluster", "eks.amazonaws.com", ["AmazonEKSClusterPolicy"], child)
        # EKS writes to this group; created here so it has a retention instead of keeping logs forever.
        logs = cloudwatch.LogGroup(
            f"{spec.name}-control-plane",
            name=f"/aws/eks/{spec.name}/cluster",
            retention_in_days=LOG_RETENTION_DAYS,
            opts=child,
        )
        access = spec.aws.endpoint_access
        public_cidrs = [str(cidr) for cidr in spec.aws.public_access_cidrs or ()] or None
        vpc_config: eks.ClusterVpcConfigArgsDict = {
            "subnet_ids": subnet_ids,
            "endpoint_private_access": access != "public",
            "endpoint_public_access": access != "private",
        }
        if public_cidrs and access != "private":
            vpc_config["public_access_cidrs"] = public_cidrs
        self.cluster = eks.Cluster(
            spec.name,
            name=spec.name,
            version=spec.kubernetes.version,
            role_arn=role.arn,
            vpc_config=vpc_config,
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
            # Access entries only (no aws-auth ConfigMap). The identity running `pulumi up` stays admin: it
            # installs the GPU layer through the Kubernetes provider in the same run.
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
            kubernetes_network_config={"service_ipv4_cidr": str(spec.kubernetes.service_cidr)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]),
        )
        for index, principal in enumerate(spec.aws.admins):
            entry = eks.AccessEntry(
                f"{spec.name}-admin-{index}", cluster_name=self.cluster.name, principal_arn=principal, opts=child
            )
            eks.AccessPolicyAssociation(
                f"{spec.name}-admin-{index}",
                cluster_name=self.cluster.name,
                principal_arn=entry.principal_arn,
                policy_arn=CLUSTER_ADMIN_POLICY,
                access_scope={"type": "cluster"},
                opts=pulumi.ResourceOptions(parent=entry),
            )
        issuer = self.cluster.identities.apply(
            lambda ids: present(present(ids[0].oidcs, "OIDC identity")[0].issuer, "OIDC issuer")
        )
        provider = iam.OpenIdConnectProvider(
            f"{spec.name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], opts=child
        )
        self.oidc = Oidc(provider_arn=provider.arn, issuer_host=issuer.apply(lambda url: url.removeprefix("https://")))
        self.security_group_id: pulumi.Output[str] = self.cluster.vpc_config.apply(
            lambda config: present(config.cluster_security_group_id, "cluster security group")
        )
        self.endpoint: pulumi.Output[str] = self.cluster.endpoint
        self.certificate_authority: pulumi.Output[str] = self.cluster.certificate_authority.apply(
            lambda ca: present(ca.data, "certificate authority")
        )
        self.register_outputs({"name": self.cluster.name, "endpoint": self.endpoint})


def _addon_version(cluster: Cluster, addon: str, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The newest add-on release for the cluster's Kubernetes version."""
    result = eks.get_addon_version_output(
        addon_name=addon,
        kubernetes_version=cluster.version,
        most_recent=True,
        opts=pulumi.InvokeOutputOptions(parent=opts.parent),
    )
    return result.version


class Addons(pulumi.ComponentResource):
    """Core add-ons at versions matched to the Kubernetes version: the VPC CNI enforcing NetworkPolicies,
    CoreDNS, kube-proxy, the EBS CSI driver (with its IRSA role) and the Pod Identity agent.

    CoreDNS and the EBS CSI controller need nodes to become healthy, so they wait for ``nodes``.
    """

    def __init__(self, cluster: Cluster, nodes: list[pulumi.Resource], opts: pulumi.ResourceOptions):
        super().__init__("gpucluster:aws:Addons", f"{cluster.name}-addons", None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ebs_role = service_account_role(
            f"{cluster.name}-ebs-csi",
            cluster.oidc,
            EBS_CSI_SA,
            child,
            managed=("service-role/AmazonEBSCSIDriverPolicy",),
        )
        settings: dict[str, dict] = {
            "vpc-cni": {"configuration_values": json.dumps({"enableNetworkPolicy": "true"})},
            "kube-proxy": {},
            "eks-pod-identity-agent": {},
            "coredns": {},
            "aws-ebs-csi-driver": {"service_account_role_arn": ebs_role.arn},
        }
        after_nodes = {"coredns", "aws-ebs-csi-driver"}
        self.addons = {}
        for name, extra in settings.items():
            self.addons[name] = eks.Addon(
                f"{cluster.name}-{name}",
                cluster_name=cluster.cluster.name,
                addon_name=name,
                addon_version=_addon_version(cluster, name, child),
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                **extra,
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=nodes if name in after_nodes else [])
                ),
            )
        self.register_outputs({})
