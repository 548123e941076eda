"""Backups: Velero (objects and volumes, retention tiers) and etcd snapshots of a kubeadm control plane.

- Velero is a Helm release. Its BackupStorageLocation and one Schedule per retention tier are chart values;
  the objects the chart makes of them are rendered as previews, so ``validate`` checks them against the CRDs.
- etcd snapshots on kubeadm are a CronJob on the control-plane nodes running ``etcd-snapshot.sh`` (a
  ConfigMap key) with the etcd image's ``etcdctl``. k3s with embedded etcd snapshots itself: its server
  settings come from ``gpucluster.backups.k3s_snapshot_config`` and are applied by the k3s role.
"""

from __future__ import annotations

from importlib import resources

from gpucluster.plan import Plan
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.k8s import config_map, k8s_object
from gpucluster.spec import VELERO_NAMESPACE, ClusterSpec, datastore

VELERO_CHART = "velero"
VELERO_REPOSITORY = "https://vmware-tanzu.github.io/helm-charts"
VELERO_CHART_VERSION = "12.1.0"  # Velero v1.18.1
VELERO_APP_VERSION = "1.18.1"
# velero-plugin-for-aws v1.14 is the release paired with Velero v1.18 (the plugin's compatibility table).
VELERO_AWS_PLUGIN_IMAGE = "docker.io/velero/velero-plugin-for-aws:v1.14.0"
STORAGE_LOCATION = "default"
CREDENTIALS_KEY = "cloud"  # the key Velero reads its credentials file from

ETCD_SNAPSHOT_SCRIPT = "etcd-snapshot.sh"
ETCD_SNAPSHOT_NAME = "etcd-snapshot"
# The etcd images are distroless: busybox brings the shell and tools the script needs, and the etcd image
# (kubeadm's for Kubernetes 1.34) brings etcdctl and etcdutl, which speak to every etcd 3.5/3.6 member.
ETCD_IMAGE = "registry.k8s.io/etcd:3.6.4-0"
BUSYBOX_IMAGE = "docker.io/library/busybox:1.37.0-musl"
AWS_CLI_IMAGE = "docker.io/amazon/aws-cli:2.27.50"
KUBEADM_ETCD_PKI = "/etc/kubernetes/pki/etcd"
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"


def etcd_snapshot_script() -> str:
    return resources.files("gpucluster").joinpath(f"data/{ETCD_SNAPSHOT_SCRIPT}").read_text(encoding="utf-8")


def backup_prefix(spec: ClusterSpec) -> str:
    """The folder in the bucket: the spec's prefix, or the cluster name."""
    return spec.backups.velero.prefix or spec.name


def bucket_region(spec: ClusterSpec) -> str:
    velero = spec.backups.velero
    region = velero.region or (spec.aws.region if spec.aws else None)
    assert region is not None, "the spec requires a region for on-prem buckets"
    return region


# --- Velero -------------------------------------------------------------------------------------------------


def _schedule(spec: ClusterSpec, keep_days: int) -> dict:
    """The Backup template one tier's Schedule creates, with its TTL."""
    velero = spec.backups.velero
    template: dict = {
        "ttl": f"{keep_days * 24}h0m0s",
        "storageLocation": STORAGE_LOCATION,
        "includedNamespaces": list(velero.included_namespaces) or ["*"],
    }
    if velero.excluded_namespaces:
        template["excludedNamespaces"] = list(velero.excluded_namespaces)
    template["snapshotVolumes"] = velero.snapshot_volumes
    template["defaultVolumesToFsBackup"] = velero.file_system_backup
    return template


def _storage_location(spec: ClusterSpec) -> dict:
    velero = spec.backups.velero
    config = {"region": bucket_region(spec)}
    if velero.s3_url:
        config.update({"s3Url": velero.s3_url, "s3ForcePathStyle": "true"})
    location: dict = {
        "name": STORAGE_LOCATION,
        "provider": "aws",
        "bucket": velero.bucket,
        "prefix": backup_prefix(spec),
        "default": True,
        "accessMode": "ReadWrite",
        "config": config,
    }
    if velero.credentials_secret:
        location["credential"] = {"name": velero.credentials_secret, "key": CREDENTIALS_KEY}
    return location


def velero_values(spec: ClusterSpec) -> dict:
    """Chart values: the AWS plugin, one storage location, volume snapshots, the tiers as schedules.

    On EKS Velero authenticates with an IAM role for its service account (the Pulumi program adds the role's
    ARN as the ``eks.amazonaws.com/role-arn`` annotation); elsewhere with the Secret the spec names.
    """
    velero = spec.backups.velero
    on_aws = spec.platform == "aws"
    snapshots = velero.snapshot_volumes and on_aws  # EBS snapshots; on-prem volumes use the node agent
    configuration: dict = {
        "backupStorageLocation": [_storage_location(spec)],
        "volumeSnapshotLocation": (
            [{"name": STORAGE_LOCATION, "provider": "aws", "config": {"region": bucket_region(spec)}}]
            if snapshots
            else []
        ),
        "defaultVolumesToFsBackup": velero.file_system_backup,
    }
    credentials: dict = {"useSecret": velero.credentials_secret is not None}
    if velero.credentials_secret:
        credentials["existingSecret"] = velero.credentials_secret
    return {
        "initContainers": [
            {
                "name": "velero-plugin-for-aws",
                "image": VELERO_AWS_PLUGIN_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "volumeMounts": [{"mountPath": "/target", "name": "plugins"}],
            }
        ],
        "configuration": configuration,
        "credentials": credentials,
        "serviceAccount": {"server": {"name": "velero"}},
        "backupsEnabled": True,
        "snapshotsEnabled": snapshots,
        "deployNodeAgent": velero.file_system_backup,
        "schedules": {
            tier.name: {"schedule": tier.schedule, "template": _schedule(spec, tier.keep_days)} for tier in velero.tiers
        },
    }


def _chart_labels() -> dict[str, str]:
    """The labels the chart's templates put on the objects it creates (release and chart named velero)."""
    return {
        "app.kubernetes.io/name": "velero",
        "app.kubernetes.io/instance": "velero",
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/version": VELERO_APP_VERSION,
        "helm.sh/chart": f"velero-{VELERO_CHART_VERSION}",
    }


def velero_previews(values: dict) -> tuple[dict, ...]:
    """The BackupStorageLocation and Schedules the chart's templates make of ``values`` (backupstoragelocation.yaml,
    schedule.yaml at chart 12.1.0), for checking against the Velero CRDs."""
    previews = []
    for location in values["configuration"]["backupStorageLocation"]:
        spec: dict = {}
        if "credential" in location:
            spec["credential"] = location["credential"]
        spec.update({"provider": location["provider"], "accessMode": location["accessMode"]})
        if location.get("default"):
            spec["default"] = True
        spec["objectStorage"] = {"bucket": location["bucket"], "prefix": location["prefix"]}
        spec["config"] = location["config"]
        preview = {
            "apiVersion": "velero.io/v1",
            "kind": "BackupStorageLocation",
            "metadata": {"name": location["name"], "namespace": VELERO_NAMESPACE, "labels": _chart_labels()},
            "spec": spec,
        }
        previews.append(preview)
    for name, schedule in values["schedules"].items():
        previews.append(
            {
                "apiVersion": "velero.io/v1",
                "kind": "Schedule",
                "metadata": {"name": f"velero-{name}", "namespace": VELERO_NAMESPACE, "labels": _chart_labels()},
                "spec": {"schedule": schedule["schedule"], "template": schedule["template"]},
            }
        )
    return tuple(previews)


def velero_release(plan: Plan) -> list[HelmRelease]:
    if not plan.spec.backups.velero.enabled:
        return []
    values = velero_values(plan.spec)
    release = HelmRelease(
        name="velero",
        chart=VELERO_CHART,
        repository=VELERO_REPOSITORY,
        version=VELERO_CHART_VERSION,
        namespace=VELERO_NAMESPACE,
        values=values,
        previews=velero_previews(values),
    )
    return [release]


# --- etcd snapshots on kubeadm ------------------------------------------------------------------------------


def etcd_upload_url(spec: ClusterSpec) -> str | None:
    """Where uploaded snapshots go: the Velero bucket, under ``<prefix>/etcd/<node>/``."""
    if not spec.backups.etcd.upload:
        return None
    return f"s3://{spec.backups.velero.bucket}/{backup_prefix(spec)}/etcd/$(NODE_NAME)"


def _snapshot_env(spec: ClusterSpec) -> list[dict]:
    etcd = spec.backups.etcd
    env: list[dict] = [
        {"name": "ETCDCTL_ENDPOINTS", "value": "https://127.0.0.1:2379"},
        {"name": "ETCDCTL_CACERT", "value": f"{KUBEADM_ETCD_PKI}/ca.crt"},
        {"name": "ETCDCTL_CERT", "value": f"{KUBEADM_ETCD_PKI}/healthcheck-client.crt"},
        {"name": "ETCDCTL_KEY", "value": f"{KUBEADM_ETCD_PKI}/healthcheck-client.key"},
        {"name": "BACKUP_DIR", "value": "/backup"},
        {"name": "KEEP", "value": str(etcd.keep)},
        {"name": "COMPRESS", "value": "1" if etcd.compress else "0"},
        {"name": "PATH", "value": "/tools:/usr/local/bin:/usr/bin:/bin"},
    ]
    upload = etcd_upload_url(spec)
    if upload:
        env.insert(0, {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
        env.append({"name": "UPLOAD_URL", "value": upload})
        velero = spec.backups.velero
        if velero.s3_url:
            env.append({"name": "AWS_ENDPOINT_URL", "value": velero.s3_url})
        env.append({"name": "AWS_REGION", "value": bucket_region(spec)})
        if velero.credentials_secret:
            env.append({"name": "AWS_SHARED_CREDENTIALS_FILE", "value": f"/credentials/{CREDENTIALS_KEY}"})
    return env


def _snapshot_pod(spec: ClusterSpec) -> dict:
    """Host network to reach etcd on 127.0.0.1, the host's etcd client certificate read-only, and the
    snapshot directory on the host. The script runs as root because the keys are readable by root only."""
    etcd, velero = spec.backups.etcd, spec.backups.velero
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    tools_mount = {"name": "tools", "mountPath": "/tools"}
    init_containers = [
        {
            "name": "busybox",
            "image": BUSYBOX_IMAGE,
            "command": ["/bin/busybox", "sh", "-c", "cp /bin/busybox /tools/ && /tools/busybox --install -s /tools"],
            "securityContext": restricted,
            "volumeMounts": [tools_mount],
        },
        {
            "name": "etcdctl",
            "image": ETCD_IMAGE,
            "command": ["/tools/cp", "/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl", "/tools/"],
            "securityContext": restricted,
            "volumeMounts": [tools_mount],
        },
    ]
    mounts = [
        tools_mount,
        {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
        {"name": "etcd-pki", "mountPath": KUBEADM_ETCD_PKI, "readOnly": True},
        {"name": "backup", "mountPath": "/backup"},
    ]
    volumes = [
        {"name": "tools", "emptyDir": {}},
        {"name": "scripts", "configMap": {"name": ETCD_SNAPSHOT_NAME, "defaultMode": 0o555}},
        {"name": "etcd-pki", "hostPath": {"path": KUBEADM_ETCD_PKI, "type": "Directory"}},
        {"name": "backup", "hostPath": {"path": etcd.directory, "type": "DirectoryOrCreate"}},
    ]
    if etcd.upload and velero.credentials_secret:
        mounts.append({"name": "credentials", "mountPath": "/credentials", "readOnly": True})
        volumes.append({"name": "credentials", "secret": {"secretName": velero.credentials_secret}})
    container = {
        "name": "snapshot",
        # The aws CLI image brings `aws` for uploads; busybox's tools come first on PATH either way.
        "image": AWS_CLI_IMAGE if etcd.upload else BUSYBOX_IMAGE,
        "command": ["/tools/sh", f"/scripts/{ETCD_SNAPSHOT_SCRIPT}"],
        "env": _snapshot_env(spec),
        "securityContext": {**restricted, "runAsUser": 0},
        "volumeMounts": mounts,
    }
    return {
        "hostNetwork": True,
        "restartPolicy": "Never",
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": {CONTROL_PLANE_ROLE: ""},
        "tolerations": [{"key": CONTROL_PLANE_ROLE, "operator": "Exists", "effect": "NoSchedule"}],
        "initContainers": init_containers,
        "containers": [container],
        "volumes": volumes,
    }


def etcd_snapshot_objects(plan: Plan) -> list[dict]:
    """The snapshot script and its CronJob, on kubeadm control planes with etcd backups on.

    The CronJob runs on one control-plane node per schedule; a failed snapshot fails the Job (no retries that
    would hide it). Concurrent runs are forbidden so two snapshots never race for the same directory.
    """
    spec = plan.spec
    if not spec.backups.etcd.enabled or spec.kubernetes.distribution != "kubeadm" or datastore(spec) != "etcd":
        return []
    labels = {"app.kubernetes.io/name": ETCD_SNAPSHOT_NAME}
    job = {
        "backoffLimit": 0,
        "activeDeadlineSeconds": 1800,
        "template": {"metadata": {"labels": labels}, "spec": _snapshot_pod(spec)},
    }
    cron_job = {
        "schedule": spec.backups.etcd.schedule,
        "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid",
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {"spec": job},
    }
    return [
        config_map(ETCD_SNAPSHOT_NAME, "kube-system", {ETCD_SNAPSHOT_SCRIPT: etcd_snapshot_script()}, labels),
        k8s_object("batch/v1", "CronJob", ETCD_SNAPSHOT_NAME, "kube-system", labels, spec=cron_job),
    ]
