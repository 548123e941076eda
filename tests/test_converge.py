"""Converge real Debian 12 test hosts with ansible/site.yml, twice, and check what the roles did.

A test host is a debootstrapped bookworm root (built once, cached under /var/cache/gpucluster-test/ keyed
by its package list and mirror), converged through Ansible's chroot connection and then booted with
systemd-nspawn so that containerd really starts. Needs root, debootstrap and systemd-nspawn (the
Debian packages debootstrap and systemd-container); skips otherwise.

Not covered here (no GPU; NVIDIA's, Kubernetes' and GitHub's downloads unreachable; one machine): the
driver, toolkit and DCGM installs, the kubelet/kubeadm packages and k3s binary, cluster bring-up and joins,
InfiniBand. The kubeadm and k3s roles still converge (packages/binary assumed preinstalled) and their
rendered configs are checked; everything is linted and syntax-checked (test_ansible.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from testhost import AptCache, Booted, chroot_host, converge, new_host, recap

from gpucluster.plan import CONTAINER_TOOLKIT_SETTINGS
from gpucluster.render import render
from gpucluster.spec import ClusterSpec
from stacks import spec_of

FOREIGN_RUNTIME = """version = 2
# a runtime another tool added; gpucluster must leave it in place
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"
"""


def tainted_kubeadm_spec() -> ClusterSpec:
    """Seed 002 with its GPU pool tainted, so system pods run on the (now schedulable) control plane."""
    raw = spec_of("onprem-kubeadm").model_dump(mode="json")
    raw["node_pools"][0]["gpu_taint"] = True
    raw["kubernetes"]["control_plane"]["schedulable"] = True
    return ClusterSpec.model_validate(raw)


def host_inventory(root: Path, runtime: str, tmp: Path) -> Path:
    """The onprem-kubeadm stack's generated inventory, with its GPU worker jw2 being the test host.

    kubelet/kubeadm (pkgs.k8s.io) are not reachable here: the kubeadm role runs with preinstalled
    packages assumed, and brings no cluster up in a chroot, but writes its files.
    """
    inventory = yaml.safe_load(render(tainted_kubeadm_spec()).files()["ansible/inventory.yml"])
    inventory["all"]["vars"].update(
        container_runtime=runtime, container_registry_mirrors={"docker.io": ["https://mirror.example.com"]}
    )
    # NVIDIA's toolkit repository is unreachable here too: its settings and CDI unit are still written.
    inventory["all"]["hosts"]["jw2"].update(
        chroot_host(root), kubeadm_install_packages=False, nvidia_container_toolkit_install_packages=False
    )
    if runtime == "cri-o":  # not packaged for Debian 12 and its repository is unreachable here: config only
        inventory["all"]["hosts"]["jw2"]["crio_install"] = False
        inventory["all"]["vars"]["container_runtime_cdi"] = True  # seed 003: CRI-O with CDI
    path = tmp / f"inventory-{runtime}.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


LAYERS = "node_prep,runtime,toolkit,kubernetes"


@pytest.fixture(scope="module")
def containerd_host(bookworm_base: Path, tmp_path_factory) -> Iterator[tuple[Path, list, Path]]:
    tmp = tmp_path_factory.mktemp("containerd-host")
    root = new_host(bookworm_base, tmp / "root")
    (root / "etc/containerd").mkdir(parents=True)
    (root / "etc/containerd/config.toml").write_text(FOREIGN_RUNTIME)
    inventory = host_inventory(root, "containerd", tmp)
    with AptCache(root):
        runs = [converge(inventory, "--tags", LAYERS) for _ in range(2)]
    yield root, runs, inventory
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def crio_host(bookworm_base: Path, tmp_path_factory) -> Iterator[tuple[Path, list]]:
    tmp = tmp_path_factory.mktemp("crio-host")
    root = new_host(bookworm_base, tmp / "root")
    inventory = host_inventory(root, "cri-o", tmp)
    with AptCache(root):
        runs = [converge(inventory, "--tags", LAYERS) for _ in range(2)]
    yield root, runs
    shutil.rmtree(tmp, ignore_errors=True)


def test_containerd_host_converges_then_reconverges_with_no_change(containerd_host):
    _, (first, second), _ = containerd_host
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(first)["changed"] > 0
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second)["changed"] == 0, second.stdout[-4000:]


def chroot(root: Path, *command: str) -> str:
    return subprocess.run(["chroot", str(root), *command], capture_output=True, text=True, check=True).stdout


def test_containerd_config_dump_has_nvidia_runtime_systemd_cgroups_and_the_foreign_runtime(containerd_host):
    root, _, _ = containerd_host
    dump = tomllib.loads(chroot(root, "containerd", "config", "dump"))
    cri = dump["plugins"]["io.containerd.grpc.v1.cri"]
    runtimes = cri["containerd"]["runtimes"]
    assert runtimes["nvidia"]["runtime_type"] == "io.containerd.runc.v2"
    assert runtimes["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert runtimes["nvidia"]["options"]["SystemdCgroup"] is True
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    assert runtimes["kata"]["runtime_type"] == "io.containerd.kata.v2"  # survived the merge
    assert cri["containerd"]["default_runtime_name"] == "nvidia"
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    hosts = (root / "etc/containerd/certs.d/docker.io/hosts.toml").read_text()
    assert tomllib.loads(hosts)["host"]["https://mirror.example.com"]["capabilities"] == ["pull", "resolve"]
    assert "# a runtime another tool added" in (root / "etc/containerd/config.toml").read_text()  # comments kept


def test_node_files_modules_sysctls_and_kubelet_identity(containerd_host):
    root, _, _ = containerd_host
    modules = (root / "etc/modules-load.d/gpucluster.conf").read_text().split()
    assert {"overlay", "br_netfilter"} <= set(modules)
    sysctls = dict(
        line.split(" = ")
        for line in (root / "etc/sysctl.d/90-gpucluster.conf").read_text().splitlines()
        if " = " in line
    )
    assert sysctls["net.ipv4.ip_forward"] == "1"
    assert sysctls["net.bridge.bridge-nf-call-iptables"] == "1"
    assert (root / "etc/hostname").read_text() == "jw2\n"
    kubelet = (root / "etc/default/kubelet").read_text()
    assert "--node-labels=gpucluster.io/pool=a30,nvidia.com/device-plugin.config=a30" in kubelet
    assert "--register-with-taints=nvidia.com/gpu=present:NoSchedule" in kubelet
    for unit in ("containerd", "chrony"):
        assert chroot(root, "systemctl", "is-enabled", unit).strip() == "enabled"


def test_cdi_on_debians_containerd_is_refused_before_its_config_changes(containerd_host):
    root, _, inventory = containerd_host
    before = (root / "etc/containerd/config.toml").read_bytes()
    result = converge(inventory, "--tags", "runtime", "-e", "container_runtime_cdi=true")
    output = " ".join(result.stdout.split())
    assert result.returncode == 2
    assert (
        "CDI needs containerd >= 1.7; this host has 1.6.20 (containerd_source: docker installs a newer one)" in output
    )
    assert (root / "etc/containerd/config.toml").read_bytes() == before


def test_toolkit_settings_are_the_plans(containerd_host):
    root, _, _ = containerd_host
    config = tomllib.loads((root / "etc/nvidia-container-runtime/config.toml").read_text())
    assert config == CONTAINER_TOOLKIT_SETTINGS
    assert config["accept-nvidia-visible-devices-envvar-when-unprivileged"] is False


def test_kubeadm_config_enables_extended_resource_toleration(containerd_host):
    root, _, _ = containerd_host
    init, cluster, kubelet = yaml.safe_load_all((root / "etc/kubernetes/gpucluster/kubeadm-config.yaml").read_text())
    assert init["kind"] == "InitConfiguration"
    assert init["nodeRegistration"]["criSocket"] == "unix:///run/containerd/containerd.sock"
    assert cluster["controlPlaneEndpoint"] == "129.254.202.251:6443"  # the single control-plane host
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12"}
    assert init["nodeRegistration"]["taints"] == []  # plan.control_plane_schedulable
    plugins = {arg["name"]: arg["value"] for arg in cluster["apiServer"]["extraArgs"]}["enable-admission-plugins"]
    assert "ExtendedResourceToleration" in plugins.split(",")
    assert kubelet["cgroupDriver"] == "systemd"


def test_booted_host_runs_containerd_with_the_merged_config_and_unlimited_memlock(containerd_host):
    root, _, _ = containerd_host
    with Booted(root) as host:
        state = host.wait_active("containerd")
        assert state == "active", host.run("journalctl", "-u", "containerd", "--no-pager", "-n", "30").stdout
        version = host.run("ctr", "version")
        assert version.returncode == 0 and "Server:" in version.stdout, version.stderr  # the daemon answers
        limit = host.run("systemctl", "show", "containerd", "-p", "LimitMEMLOCK").stdout.strip()
        assert limit == "LimitMEMLOCK=infinity"
        dump = tomllib.loads(host.run("containerd", "config", "dump").stdout)
        assert "nvidia" in dump["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]


@pytest.fixture(scope="module")
def k3s_host(bookworm_base: Path, tmp_path_factory) -> Iterator[tuple[Path, list]]:
    """Seed 001's single k3s server; the k3s binary (GitHub) is not reachable here, so it is not installed."""
    tmp = tmp_path_factory.mktemp("k3s-host")
    root = new_host(bookworm_base, tmp / "root")
    inventory = yaml.safe_load(render(spec_of("onprem-k3s")).files()["ansible/inventory.yml"])
    inventory["all"]["hosts"]["gpu-server"].update(chroot_host(root), k3s_install_binary=False)
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    runs = [converge(path, "--tags", "kubernetes", host="gpu-server") for _ in range(2)]
    yield root, runs
    shutil.rmtree(tmp, ignore_errors=True)


def test_k3s_server_converges_twice_with_labels_runtime_and_snapshots(k3s_host):
    root, (first, second) = k3s_host
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(second, "gpu-server")["changed"] == 0, second.stdout[-4000:]
    config = yaml.safe_load((root / "etc/rancher/k3s/config.yaml").read_text())
    assert "enable-admission-plugins=NodeRestriction,ExtendedResourceToleration" in config["kube-apiserver-arg"]
    assert config["node-label"] == [
        "gpucluster.io/pool=workstation",
        "nvidia.com/device-plugin.config=workstation",
    ]
    assert "node-taint" not in config  # its only node also runs the system pods: the plan leaves it untainted
    assert config["default-runtime"] == "nvidia"
    assert config["cluster-init"] is True  # the stack takes etcd snapshots
    assert config["etcd-snapshot-schedule-cron"] == "0 */12 * * *"
    assert "server" not in config  # the first server starts the cluster
    token = (root / "etc/rancher/k3s/cluster-token").read_text().strip()
    assert len(token) == 48 and config["token-file"] == "/etc/rancher/k3s/cluster-token"
    assert token not in first.stdout + second.stdout  # no_log kept it out of the output
    assert chroot(root, "systemctl", "is-enabled", "k3s").strip() == "enabled"
    unit = (root / "etc/systemd/system/k3s.service.d/50-gpucluster.conf").read_text()
    assert "LimitMEMLOCK=infinity" in unit


def test_crio_host_converges_twice_and_its_drop_ins_parse(crio_host):
    root, (first, second) = crio_host
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert recap(second)["changed"] == 0, second.stdout[-4000:]
    # CRI-O is not packaged for Debian 12 (its repository is not reachable here), so crio itself cannot
    # read the drop-in; Python's TOML parser checks it parses and holds the settings CRI-O reads.
    drop_in = tomllib.loads((root / "etc/crio/crio.conf.d/99-gpucluster.conf").read_text())
    runtime = drop_in["crio"]["runtime"]
    assert runtime["cgroup_manager"] == "systemd"
    assert runtime["default_runtime"] == "nvidia"
    assert runtime["runtimes"]["nvidia"]["runtime_path"] == "/usr/bin/nvidia-container-runtime"
    mirrors = tomllib.loads((root / "etc/containers/registries.conf.d/50-gpucluster-mirrors.conf").read_text())
    assert mirrors["registry"][0]["mirror"][0]["location"] == "mirror.example.com"
    assert "LimitMEMLOCK=infinity" in (root / "etc/systemd/system/crio.service.d/50-gpucluster.conf").read_text()
    assert not (root / "etc/containerd/config.toml").exists()
    assert runtime["cdi_spec_dirs"] == ["/etc/cdi", "/var/run/cdi"]
    assert chroot(root, "systemctl", "is-enabled", "nvidia-cdi-generate").strip() == "enabled"
    unit = (root / "etc/systemd/system/nvidia-cdi-generate.service").read_text()
    assert "ExecStart=/usr/bin/nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml" in unit
