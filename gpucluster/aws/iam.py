"""IAM roles: for AWS services, and for Kubernetes service accounts (IRSA) trusted one service account at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
from pulumi_aws import iam

MANAGED_POLICY = "arn:aws:iam::aws:policy/"


@dataclass(frozen=True)
class Oidc:
    """The cluster's IAM OIDC identity provider: its ARN and issuer host (the trust-policy condition prefix)."""

    provider_arn: pulumi.Output[str]
    issuer_host: pulumi.Output[str]


def service_role(
    name: str, service: str, managed: list[str], opts: pulumi.ResourceOptions, role_name: str | None = None
) -> iam.Role:
    """A role ``service`` (e.g. ``ec2.amazonaws.com``) assumes, with AWS managed policies attached by name;
    ``role_name`` fixes its IAM name where something else refers to it by name."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    role = iam.Role(name, name=role_name, assume_role_policy=json.dumps(trust), opts=opts)
    for policy in managed:
        iam.RolePolicyAttachment(
            f"{name}-{policy.rsplit('/', 1)[-1]}",
            role=role.name,
            policy_arn=f"{MANAGED_POLICY}{policy}",
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=role)),
        )
    return role


def service_account_trust(oidc: Oidc, namespace: str, service_account: str) -> pulumi.Output[str]:
    """Trust policy letting exactly one service account (through its projected token) assume the role."""

    def document(args: list[str]) -> str:
        provider_arn, host = args
        condition = {
            f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{host}:aud": "sts.amazonaws.com",
        }
        statement = {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": condition},
        }
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    return pulumi.Output.all(oidc.provider_arn, oidc.issuer_host).apply(document)


def service_account_role(
    name: str,
    oidc: Oidc,
    service_account: tuple[str, str],
    opts: pulumi.ResourceOptions,
    policy: pulumi.Input[str] | None = None,
    managed: tuple[str, ...] = (),
) -> iam.Role:
    """An IRSA role for ``(namespace, name)`` with an inline ``policy`` document and/or AWS managed policies."""
    namespace, account = service_account
    role = iam.Role(name, assume_role_policy=service_account_trust(oidc, namespace, account), opts=opts)
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=role))
    if policy is not None:
        iam.RolePolicy(f"{name}-policy", role=role.id, policy=policy, opts=child)
    for arn in managed:
        iam.RolePolicyAttachment(
            f"{name}-{arn.rsplit('/', 1)[-1]}", role=role.name, policy_arn=f"{MANAGED_POLICY}{arn}", opts=child
        )
    return role


def policy_document(statements: list[dict]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})
