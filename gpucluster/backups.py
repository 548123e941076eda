"""What a stack's backups produce, and how to restore from them, as data.

``schedules`` lists every backup job with its next runs and retention (``gpucluster backup list``).
``restore_procedure`` is the bad-day runbook (``gpucluster backup restore``): ordered steps, each naming where
it runs and the exact shell commands. The etcd member restore is one function used both by the runbook and
by the tests, which run it against a real etcd.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import datetime

from gpucluster.render.backups import backup_prefix, bucket_region
from gpucluster.spec import ClusterSpec, Host, datastore

KUBEADM_ETCD_DATA_DIR = "/var/lib/etcd"
KUBEADM_MANIFESTS = "/etc/kubernetes/manifests"
STOPPED_MANIFESTS = "/etc/kubernetes/manifests.stopped"
K3S_SNAPSHOT_DIR = "/var/lib/rancher/k3s/server/db/snapshots"
ETCD_PEER_PORT = 2380


@dataclass(frozen=True)
class BackupJob:
    """One recurring backup: what it saves, when, how long it is kept and where it goes."""

    name: str
    kind: str  # "velero" | "etcd"
    schedule: str
    retention: str
    destination: str

    def next_runs(self, count: int, after: datetime) -> list[datetime]:
        """The next ``count`` run times after ``after`` (UTC, as CronJobs and Velero read schedules)."""
        from croniter import croniter

        runs = croniter(self.schedule, after)
        return [runs.get_next(datetime) for _ in range(count)]


@dataclass(frozen=True)
class RestoreStep:
    title: str
    where: str
    commands: tuple[str, ...]


def schedules(spec: ClusterSpec) -> list[BackupJob]:
    jobs = []
    velero = spec.backups.velero
    if velero.enabled:
        destination = f"s3://{velero.bucket}/{backup_prefix(spec)}"
        for tier in velero.tiers:
            retention = f"{tier.keep_days} days"
            jobs.append(BackupJob(f"velero-{tier.name}", "velero", tier.schedule, retention, destination))
    etcd = spec.backups.etcd
    if etcd.enabled:
        where = etcd.directory if spec.kubernetes.distribution == "kubeadm" else K3S_SNAPSHOT_DIR
        destination = f"{where} on the control-plane node"
        if etcd.upload:
            destination += f", s3://{velero.bucket}/{backup_prefix(spec)}/etcd/"
        jobs.append(BackupJob("etcd-snapshot", "etcd", etcd.schedule, f"newest {etcd.keep}", destination))
    return jobs


# --- etcd -------------------------------------------------------------------------------------------------------


def _control_plane_hosts(spec: ClusterSpec) -> list[Host]:
    """The control-plane machines; provisioned ones (hybrid) get placeholders for what Pulumi assigns."""
    control_plane = spec.kubernetes.control_plane
    if control_plane is None:
        return []
    if control_plane.hosts:
        return list(control_plane.hosts)
    count = control_plane.count if control_plane.instance_type else 0
    return [Host(name=f"{spec.name}-cp-{i}", address=f"{spec.name}-cp-{i}.internal") for i in range(1, count + 1)]


def initial_cluster(members: list[tuple[str, str]]) -> str:
    """etcd's ``--initial-cluster`` from (name, peer URL) pairs."""
    return ",".join(f"{name}={url}" for name, url in members)


def peer_url(address: str) -> str:
    return f"https://{address}:{ETCD_PEER_PORT}"


def etcd_member_restore_commands(
    snapshot: str, name: str, peer: str, cluster: str, data_dir: str = KUBEADM_ETCD_DATA_DIR
) -> tuple[str, ...]:
    """Restore one etcd member's data directory from a snapshot (``.db`` or ``.db.gz``).

    Every member restores the same snapshot with its own name and peer URL; the old data directory is kept
    beside the new one (``<data_dir>.before-restore``), never deleted.
    """
    q = shlex.quote
    restored, plain = f"{data_dir}.restored", f"{data_dir}.restore-snapshot.db"
    unpack = f"gunzip -c {q(snapshot)} > {q(plain)}" if snapshot.endswith(".gz") else f"cp {q(snapshot)} {q(plain)}"
    kept = q(data_dir + ".before-restore-") + '"$(date -u +%Y%m%dT%H%M%SZ)"'
    return (
        unpack,
        f"rm -rf {q(restored)}",
        f"etcdutl snapshot restore {q(plain)} --name {q(name)} --initial-cluster {q(cluster)}"
        f" --initial-advertise-peer-urls {q(peer)} --data-dir {q(restored)}",
        f"if [ -e {q(data_dir)} ]; then mv {q(data_dir)} {kept}; fi",
        f"mv {q(restored)} {q(data_dir)}",
        f"rm -f {q(plain)}",
    )


def _kubeadm_etcd_steps(spec: ClusterSpec) -> list[RestoreStep]:
    hosts = _control_plane_hosts(spec)
    cluster = initial_cluster([(host.name, peer_url(host.address)) for host in hosts])
    directory = spec.backups.etcd.directory
    snapshot = f"{directory}/restore-from.db.gz" if spec.backups.etcd.compress else f"{directory}/restore-from.db"
    steps = [
        RestoreStep(
            "Choose one snapshot (the newest on any control-plane node) and copy it to every member",
            "your workstation",
            (
                *(f"ssh {host.address} 'ls -1 {directory}/etcd-snapshot-*'" for host in hosts),
                *(f"scp CHOSEN-SNAPSHOT {host.address}:{snapshot}" for host in hosts),
            ),
        ),
        RestoreStep(
            "Stop the API server and etcd (kubelet stops static pods whose manifests leave its directory)",
            "every control-plane node",
            (
                f"mkdir -p {STOPPED_MANIFESTS}",
                f"mv {KUBEADM_MANIFESTS}/etcd.yaml {KUBEADM_MANIFESTS}/kube-apiserver.yaml {STOPPED_MANIFESTS}/",
            ),
        ),
    ]
    for host in hosts:
        commands = etcd_member_restore_commands(snapshot, host.name, peer_url(host.address), cluster)
        steps.append(RestoreStep(f"Restore etcd member {host.name}", f"{host.name} ({host.address})", commands))
    steps.append(
        RestoreStep(
            "Start etcd and the API server again, then check the cluster",
            "every control-plane node, then your workstation",
            (
                f"mv {STOPPED_MANIFESTS}/etcd.yaml {STOPPED_MANIFESTS}/kube-apiserver.yaml {KUBEADM_MANIFESTS}/",
                "kubectl get nodes",
            ),
        )
    )
    return steps


def _k3s_etcd_steps(spec: ClusterSpec) -> list[RestoreStep]:
    hosts = _control_plane_hosts(spec)
    first, others = hosts[0], hosts[1:]
    steps = [
        RestoreStep("Stop k3s on every server", "every server", ("systemctl stop k3s",)),
        RestoreStep(
            f"Reset the cluster to one member from the snapshot on {first.name}",
            f"{first.name} ({first.address})",
            (
                f"ls -1 {K3S_SNAPSHOT_DIR}",
                f"k3s server --cluster-reset --cluster-reset-restore-path={K3S_SNAPSHOT_DIR}/CHOSEN-SNAPSHOT",
                "systemctl start k3s",
            ),
        ),
    ]
    if others:
        steps.append(
            RestoreStep(
                "Rejoin the other servers with empty datastores (their old state is kept aside)",
                ", ".join(host.name for host in others),
                (
                    "mv /var/lib/rancher/k3s/server/db /var/lib/rancher/k3s/server/db.before-restore",
                    "systemctl start k3s",
                ),
            )
        )
    return steps


def _velero_steps(spec: ClusterSpec) -> list[RestoreStep]:
    tiers = spec.backups.velero.tiers
    return [
        RestoreStep(
            "Restore Kubernetes objects and volumes with Velero (after the control plane is up)",
            "your workstation (velero CLI, kubeconfig of the cluster)",
            (
                "velero backup get",
                f"velero restore create --from-schedule velero-{tiers[0].name} --wait",
                "velero restore describe --details $(velero restore get -o name | tail -n 1 | cut -d/ -f2)",
            ),
        )
    ]


def restore_procedure(spec: ClusterSpec) -> list[RestoreStep]:
    """The steps that bring the stack back: the control plane's state first, then objects and volumes."""
    steps: list[RestoreStep] = []
    if spec.backups.etcd.enabled and datastore(spec) == "etcd":
        is_kubeadm = spec.kubernetes.distribution == "kubeadm"
        steps += _kubeadm_etcd_steps(spec) if is_kubeadm else _k3s_etcd_steps(spec)
    if spec.backups.velero.enabled:
        steps += _velero_steps(spec)
    return steps


def k3s_server_config(spec: ClusterSpec) -> dict[str, object]:
    """The k3s server config.yaml settings for the datastore and its snapshots (applied by the k3s role).

    S3 credentials are not here: the k3s role puts AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in the k3s
    service environment from the operator's secret store.
    """
    if spec.kubernetes.distribution != "k3s" or datastore(spec) != "etcd":
        return {}
    config: dict[str, object] = {"cluster-init": True}
    etcd = spec.backups.etcd
    if not etcd.enabled:
        return config
    config.update(
        {
            "etcd-snapshot-schedule-cron": etcd.schedule,
            "etcd-snapshot-retention": etcd.keep,
            "etcd-snapshot-compress": etcd.compress,
        }
    )
    if etcd.upload:
        velero = spec.backups.velero
        config.update(
            {
                "etcd-s3": True,
                "etcd-s3-bucket": velero.bucket,
                "etcd-s3-folder": f"{backup_prefix(spec)}/etcd",
                "etcd-s3-region": bucket_region(spec),
            }
        )
        if velero.s3_url:
            scheme, _, rest = velero.s3_url.partition("://")
            config["etcd-s3-endpoint"] = rest.split("/", 1)[0]
            if scheme == "http":
                config["etcd-s3-insecure"] = True
    return config
