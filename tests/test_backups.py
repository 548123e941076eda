"""Backups: the spec's rules, the rendered Velero and etcd objects, and the ``backup`` commands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from typer.testing import CliRunner

from gpucluster.backups import k3s_server_config, restore_procedure, schedules
from gpucluster.cli import app
from gpucluster.render import render
from gpucluster.spec import DEFAULT_RETENTION_TIERS
from gpucluster.stackfile import SpecError, format_path, parse_spec
from stacks import ROOT, spec_of

runner = CliRunner()
MINIO = {
    "enabled": True,
    "bucket": "lab-backups",
    "s3_url": "http://minio.lab:9000",
    "region": "minio",
    "credentials_secret": "velero-s3",
}


def _problems(raw: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test")
    return {format_path(p.path): p.message for p in caught.value.problems}


def _documents(files: dict[str, bytes], path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(files[path]) if d]


# --- spec ---------------------------------------------------------------------------------------------------


def test_default_tiers_are_seed_000s_retention():
    assert [(t.name, t.keep_days) for t in DEFAULT_RETENTION_TIERS] == [
        ("daily", 30),
        ("weekly", 84),
        ("monthly", 365),
        ("yearly", 1825),
    ]


@pytest.mark.parametrize("schedule", ["every tuesday", "0 2 * *", "61 * * * *", "* * * * * *", "@fortnightly"])
def test_a_schedule_that_is_not_cron_is_refused_with_its_path(load_raw, schedule):
    raw = load_raw("onprem-kubeadm")
    raw["backups"]["etcd"]["schedule"] = schedule
    problems = _problems(raw)
    assert "is not a cron schedule" in problems["gpucluster:cluster.backups.etcd.schedule"]


@pytest.mark.parametrize("field,value", [("keep_days", 0), ("keep_days", -30)])
def test_retention_must_be_positive(load_raw, field, value):
    raw = load_raw("onprem-dgx")
    raw["backups"]["velero"]["tiers"] = [{"name": "daily", "schedule": "0 2 * * *", field: value}]
    assert "gpucluster:cluster.backups.velero.tiers[0].keep_days" in _problems(raw)


@pytest.mark.parametrize("keep", [0, -1])
def test_etcd_keep_must_be_positive(load_raw, keep):
    raw = load_raw("onprem-kubeadm")
    raw["backups"]["etcd"]["keep"] = keep
    assert "gpucluster:cluster.backups.etcd.keep" in _problems(raw)


@pytest.mark.parametrize(
    "bucket",
    ["ab", "Backups", "my_bucket", "a..b", "192.168.1.10", "xn--bucket", "sthree-x", "data-s3alias", "-lead", "x" * 64],
)
def test_bucket_names_aws_would_refuse_are_refused(load_raw, bucket):
    raw = load_raw("eks-t4")
    raw["backups"]["velero"]["bucket"] = bucket
    assert "is not an S3 bucket name" in _problems(raw)["gpucluster:cluster.backups.velero.bucket"]


def test_velero_on_prem_needs_endpoint_region_and_credentials(load_raw):
    raw = load_raw("onprem-kubeadm")
    raw["backups"]["velero"] = {"enabled": True, "bucket": "lab-backups"}
    assert set(_problems(raw)) == {
        "gpucluster:cluster.backups.velero.s3_url",
        "gpucluster:cluster.backups.velero.region",
        "gpucluster:cluster.backups.velero.credentials_secret",
    }


def test_etcd_backups_are_refused_where_there_is_no_etcd_to_snapshot(load_raw):
    eks = load_raw("eks-t4")
    eks["backups"]["etcd"] = {"enabled": True}
    assert "EKS runs and backs up its own etcd" in _problems(eks)["gpucluster:cluster.backups.etcd.enabled"]
    k3s = load_raw("onprem-k3s")
    del k3s["kubernetes"]["datastore"]
    assert "SQLite" in _problems(k3s)["gpucluster:cluster.backups.etcd.enabled"]


def test_datastore_choice_is_k3s_only_and_sqlite_serves_one_server(load_raw):
    kubeadm = load_raw("onprem-kubeadm")
    kubeadm["kubernetes"]["datastore"] = "etcd"
    assert "only k3s" in _problems(kubeadm)["gpucluster:cluster.kubernetes.datastore"]
    k3s = load_raw("onprem-k3s")
    k3s["kubernetes"]["datastore"] = "sqlite"
    k3s["kubernetes"]["control_plane"]["hosts"] += [
        {"name": "server2", "address": "192.168.10.21"},
        {"name": "server3", "address": "192.168.10.22"},
    ]
    k3s["kubernetes"]["control_plane"]["endpoint"] = "k3s.lab:6443"
    k3s["backups"] = {}
    assert "embedded etcd" in _problems(k3s)["gpucluster:cluster.kubernetes.datastore"]


def test_upload_needs_the_velero_bucket_and_tiers_need_unique_names(load_raw):
    raw = load_raw("onprem-kubeadm")
    raw["backups"]["etcd"]["upload"] = True
    raw["backups"]["velero"] = {**MINIO, "enabled": False}
    raw["backups"]["velero"]["tiers"] = [
        {"name": "daily", "schedule": "@daily", "keep_days": 7},
        {"name": "daily", "schedule": "0 3 * * *", "keep_days": 7},
    ]
    problems = _problems(raw)
    assert "gpucluster:cluster.backups.etcd.upload" in problems
    assert "unique" in problems["gpucluster:cluster.backups.velero.tiers"]


# --- rendered objects ------------------------------------------------------------------------------------------


def test_each_tier_becomes_a_schedule_with_its_ttl():
    files = render(spec_of("onprem-dgx")).files()
    previews = _documents(files, "helm/previews/velero.yaml")
    schedules_ = {d["metadata"]["name"]: d["spec"] for d in previews if d["kind"] == "Schedule"}
    assert {name: s["template"]["ttl"] for name, s in schedules_.items()} == {
        "velero-daily": "720h0m0s",
        "velero-weekly": "2016h0m0s",
        "velero-monthly": "8760h0m0s",
        "velero-yearly": "43800h0m0s",
    }
    assert schedules_["velero-weekly"]["schedule"] == "0 3 * * 0"
    values = yaml.safe_load(files["helm/velero.values.yaml"])
    assert {name: s["template"] for name, s in values["schedules"].items()} == {
        name.removeprefix("velero-"): s["template"] for name, s in schedules_.items()
    }, "the previews are what the chart makes of the values"


def test_on_prem_velero_uses_the_s3_compatible_store_and_the_named_secret():
    values = yaml.safe_load(render(spec_of("onprem-dgx")).files()["helm/velero.values.yaml"])
    (location,) = values["configuration"]["backupStorageLocation"]
    assert location["config"] == {
        "region": "minio",
        "s3Url": "https://minio.example.com:9000",
        "s3ForcePathStyle": "true",
    }
    assert location["credential"] == {"name": "velero-s3-credentials", "key": "cloud"}
    assert values["credentials"] == {"useSecret": True, "existingSecret": "velero-s3-credentials"}
    assert values["deployNodeAgent"] is True and values["snapshotsEnabled"] is False
    assert "secretContents" not in values["credentials"], "no credentials in the rendered output"


def test_eks_velero_uses_its_service_account_role_and_ebs_snapshots():
    files = render(spec_of("eks-t4")).files()
    values = yaml.safe_load(files["helm/velero.values.yaml"])
    assert values["credentials"] == {"useSecret": False}
    assert values["snapshotsEnabled"] is True
    assert values["configuration"]["volumeSnapshotLocation"] == [
        {"name": "default", "provider": "aws", "config": {"region": "us-east-1"}}
    ]
    namespaces = {d["metadata"]["name"]: d for d in _documents(files, "manifests/00-namespaces.yaml")}
    assert namespaces["velero"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_etcd_cron_job_runs_the_script_on_control_plane_nodes_and_fails_visibly():
    objects = _documents(render(spec_of("onprem-dgx")).files(), "manifests/70-backups.yaml")
    cron_job = next(o for o in objects if o["kind"] == "CronJob")
    assert cron_job["spec"]["schedule"] == "0 */6 * * *"
    assert cron_job["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron_job["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KEEP"] == "28" and env["BACKUP_DIR"] == "/backup"
    assert env["ETCDCTL_CERT"].startswith("/etc/kubernetes/pki/etcd/")
    assert env["UPLOAD_URL"] == "s3://dgx-cluster-backups/dgx/etcd/$(NODE_NAME)"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["backup"]["hostPath"] == {"path": "/var/backups/etcd", "type": "DirectoryOrCreate"}
    assert next(m for m in container["volumeMounts"] if m["name"] == "etcd-pki")["readOnly"] is True


def test_etcd_objects_only_for_kubeadm_and_k3s_settings_for_its_server_config():
    assert "manifests/70-backups.yaml" not in render(spec_of("onprem-k3s")).files()
    assert "manifests/70-backups.yaml" not in render(spec_of("eks-t4")).files()
    assert k3s_server_config(spec_of("onprem-k3s")) == {
        "cluster-init": True,
        "etcd-snapshot-schedule-cron": "0 */12 * * *",
        "etcd-snapshot-retention": 10,
        "etcd-snapshot-compress": True,
    }
    minio = spec_of("onprem-k3s", backups={"velero": MINIO, "etcd": {"enabled": True, "upload": True}})
    config = k3s_server_config(minio)
    assert config["etcd-s3-endpoint"] == "minio.lab:9000" and config["etcd-s3-insecure"] is True
    assert config["etcd-s3-folder"] == "gpu-server/etcd"


# --- what the backups produce and how to restore ---------------------------------------------------------------


def test_schedules_list_every_job_with_its_next_runs():
    jobs = {job.name: job for job in schedules(spec_of("onprem-dgx"))}
    assert set(jobs) == {"velero-daily", "velero-weekly", "velero-monthly", "velero-yearly", "etcd-snapshot"}
    start = datetime(2026, 11, 26, 7, 30, tzinfo=UTC)
    assert jobs["etcd-snapshot"].next_runs(2, start) == [
        datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 26, 18, 0, tzinfo=UTC),
    ]
    assert jobs["velero-yearly"].next_runs(1, start) == [datetime(2027, 1, 1, 5, 0, tzinfo=UTC)]


def test_restore_procedure_restores_every_member_then_velero():
    steps = restore_procedure(spec_of("onprem-dgx"))
    restores = [s for s in steps if s.title.startswith("Restore etcd member")]
    assert [s.title.rsplit(" ", 1)[1] for s in restores] == ["master1", "master2", "master3"]
    assert all("--initial-cluster master1=https://192.168.1.11:2380," in " ".join(s.commands) for s in restores)
    assert "velero restore create --from-schedule velero-daily --wait" in steps[-1].commands
    k3s = restore_procedure(spec_of("onprem-k3s"))
    assert any("--cluster-reset-restore-path=" in c for s in k3s for c in s.commands)


def test_backup_commands(tmp_path):
    listed = runner.invoke(app, ["backup", "list", "--stack", str(ROOT / "stacks/Pulumi.onprem-dgx.yaml")])
    assert listed.exit_code == 0, listed.output
    assert "velero-yearly" in listed.output and "1825 days" in listed.output
    restore = runner.invoke(app, ["backup", "restore", "--stack", str(ROOT / "stacks/Pulumi.onprem-kubeadm.yaml")])
    assert restore.exit_code == 0, restore.output
    assert "etcdutl snapshot restore" in restore.output


def test_bad_backup_section_exits_2_and_writes_nothing(tmp_path, load_raw):
    raw = load_raw("onprem-kubeadm")
    raw["backups"]["etcd"]["schedule"] = "every tuesday"
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump({"config": {"gpucluster:cluster": raw}}))
    out = tmp_path / "out"
    result = runner.invoke(app, ["render", "--stack", str(stack), "--out", str(out)])
    assert result.exit_code == 2
    assert "gpucluster:cluster.backups.etcd.schedule" in result.output
    assert not out.exists()
