"""Velero's bucket and IAM role on EKS: the spec names the bucket, this creates it and the role.

The bucket is private (every public-access block on, ACLs disabled, TLS-only policy), versioned, encrypted
with the account's S3 KMS key, and cleans up after itself: incomplete multipart uploads and versions Velero
has deleted expire; current backups stay until Velero's own TTLs remove them. Velero's role trusts only its
service account (velero/velero) and may touch only this bucket, plus the EC2 snapshot calls the AWS plugin
makes for volume snapshots (those take no resource-level scope).
"""

from __future__ import annotations

import json

import pulumi
from pulumi_aws import iam, s3

from gpucluster.aws.autoscaling import IRSA_ANNOTATION
from gpucluster.aws.eks import Cluster
from gpucluster.aws.iam import policy_document, service_account_role
from gpucluster.plan import Plan
from gpucluster.spec import VELERO_NAMESPACE

VELERO_SERVICE_ACCOUNT = (VELERO_NAMESPACE, "velero")
NONCURRENT_DAYS = 30  # how long a version Velero deleted stays recoverable
ABORT_MULTIPART_DAYS = 7


def velero_policy(bucket_arn: str, snapshots: bool) -> str:
    """The permissions velero-plugin-for-aws documents, scoped to one bucket."""
    statements = [
        {
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:DeleteObject",
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": [f"{bucket_arn}/*"],
        },
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [bucket_arn]},
    ]
    if snapshots:
        statements.append(
            {
                "Effect": "Allow",
                "Action": [
                    "ec2:DescribeVolumes",
                    "ec2:DescribeSnapshots",
                    "ec2:CreateTags",
                    "ec2:CreateVolume",
                    "ec2:CreateSnapshot",
                    "ec2:DeleteSnapshot",
                ],
                "Resource": ["*"],
            }
        )
    return policy_document(statements)


def tls_only_policy(bucket_arn: str) -> str:
    statement = {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


class VeleroStorage(pulumi.ComponentResource):
    """The backup bucket and Velero's role for its service account."""

    def __init__(self, plan: Plan, cluster: Cluster, opts: pulumi.ResourceOptions):
        velero = plan.spec.backups.velero
        name = f"{plan.spec.name}-velero"
        super().__init__("gpucluster:aws:VeleroStorage", name, None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        self.bucket = s3.Bucket(name, bucket=velero.bucket, opts=child)
        bucket_id, bucket_arn = self.bucket.id, self.bucket.arn
        s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket_id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket_id, versioning_configuration={"status": "Enabled"}, opts=child
        )
        s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[
                {"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}, "bucket_key_enabled": True}
            ],
            opts=child,
        )
        s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=[
                {
                    "id": "expire-deleted-versions-and-abandoned-uploads",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {"noncurrent_days": NONCURRENT_DAYS},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": ABORT_MULTIPART_DAYS},
                }
            ],
            opts=child,
        )
        s3.BucketPolicy(f"{name}-tls-only", bucket=bucket_id, policy=bucket_arn.apply(tls_only_policy), opts=child)
        snapshots = velero.snapshot_volumes
        self.role: iam.Role = service_account_role(
            name,
            cluster.oidc,
            VELERO_SERVICE_ACCOUNT,
            child,
            bucket_arn.apply(lambda arn: velero_policy(arn, snapshots)),
        )
        self.register_outputs({"bucket": bucket_id, "role_arn": self.role.arn})


def velero_storage(plan: Plan, cluster: Cluster, opts: pulumi.ResourceOptions) -> dict:
    """The bucket and role when the spec enables Velero, and the values overlay naming the role."""
    if not plan.spec.backups.velero.enabled:
        return {}
    storage = VeleroStorage(plan, cluster, opts)
    pulumi.export("backup_bucket", storage.bucket.id)
    annotations = {IRSA_ANNOTATION: storage.role.arn}
    return {"velero": {"serviceAccount": {"server": {"annotations": annotations}}}}
