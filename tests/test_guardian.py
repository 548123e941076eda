"""The thermal guardian with an injected fake NVML and a fake Kubernetes API server on 127.0.0.1.

The Kubernetes side uses the real client against a small HTTP server that records every request, so the
test sees the exact cordon and eviction calls; host mode sends a real SIGTERM to a real process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from gpucluster.cli import app
from gpucluster.guardian import GpuState, Guardian, KubernetesActions, NvmlReader, pod_uid_of
from gpucluster.render import render
from gpucluster.stackfile import SpecError, format_path, parse_spec
from stacks import spec_of

HOT_POD_UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
COOL_POD_UID = "11111111-2222-3333-4444-555555555555"


class FakeReader:
    def __init__(self, *states: GpuState):
        self.states = list(states)

    def read(self) -> list[GpuState]:
        return self.states


class FakeApi(ThreadingHTTPServer):
    """Answers the three calls the guardian makes and records them."""

    def __init__(self, pods: list[dict], eviction_status: int = 201):
        self.pods, self.eviction_status, self.requests = pods, eviction_status, []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append((self.command, self.path, body))
        return body

    def do_GET(self) -> None:
        self._record()
        items = [{"metadata": {"name": n, "namespace": ns, "uid": uid}} for uid, ns, n in self.server.pods]
        self._reply(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    def do_PATCH(self) -> None:
        self._record()
        self._reply(200, {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "gpu-node-1"}})

    def do_POST(self) -> None:
        self._record()
        status = self.server.eviction_status
        self._reply(status, {"kind": "Status", "apiVersion": "v1", "status": "Success" if status < 300 else "Failure"})


@pytest.fixture
def proc_root(tmp_path) -> Path:
    """A /proc with two processes in pods (systemd and cgroupfs cgroup layouts) and one outside any pod."""
    systemd_uid = HOT_POD_UID.replace("-", "_")
    layouts = {
        101: f"0::/kubepods.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-abc.scope\n",
        202: f"0::/kubepods/besteffort/pod{COOL_POD_UID}/0123456789abcdef\n",
        303: "0::/system.slice/sshd.service\n",
    }
    for pid, text in layouts.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cgroup").write_text(text)
    return tmp_path


def _api(pods: list[tuple[str, str, str]], status: int = 201):
    server = FakeApi(pods, status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    return server, client.CoreV1Api(client.ApiClient(configuration))


def test_pod_uid_from_cgroup_paths(proc_root):
    assert pod_uid_of(101, proc_root) == HOT_POD_UID
    assert pod_uid_of(202, proc_root) == COOL_POD_UID
    assert pod_uid_of(303, proc_root) is None
    assert pod_uid_of(999, proc_root) is None


def test_hot_gpu_cordons_the_node_and_evicts_only_its_pods(proc_root):
    server, api = _api([(HOT_POD_UID, "ml", "trainer-0"), (COOL_POD_UID, "ml", "notebook")])
    try:
        reader = FakeReader(GpuState(0, "GPU-hot", 90, (101, 303)), GpuState(1, "GPU-cool", 60, (202,)))
        guardian = Guardian(reader, limit=75, kubernetes=KubernetesActions("gpu-node-1", api), proc_root=proc_root)
        done = guardian.check()
    finally:
        server.shutdown()
    assert done == ["cordoned node gpu-node-1", "evicted pod ml/trainer-0"]
    methods = [(method, path.split("?")[0]) for method, path, _ in server.requests]
    assert methods == [
        ("PATCH", "/api/v1/nodes/gpu-node-1"),
        ("GET", "/api/v1/pods"),
        ("POST", "/api/v1/namespaces/ml/pods/trainer-0/eviction"),
    ]
    assert server.requests[0][2] == {"spec": {"unschedulable": True}}
    assert "fieldSelector=spec.nodeName%3Dgpu-node-1" in server.requests[1][1]
    assert server.requests[2][2]["metadata"] == {"name": "trainer-0", "namespace": "ml"}
    metrics = guardian.metrics.text()
    assert 'gpucluster_guardian_actions_total{action="evict"} 1.0' in metrics
    assert 'gpucluster_guardian_gpu_over_limit{gpu="0",uuid="GPU-hot"} 1.0' in metrics
    assert 'gpucluster_guardian_gpu_temperature_celsius{gpu="1",uuid="GPU-cool"} 60.0' in metrics


def test_cool_gpus_leave_the_cluster_alone(proc_root):
    server, api = _api([(HOT_POD_UID, "ml", "trainer-0")])
    try:
        reader = FakeReader(GpuState(0, "GPU-a", 60, (101,)), GpuState(1, "GPU-b", 75, (202,)))  # at the limit is ok
        guardian = Guardian(reader, limit=75, kubernetes=KubernetesActions("gpu-node-1", api), proc_root=proc_root)
        assert guardian.check() == []
    finally:
        server.shutdown()
    assert server.requests == []


def test_refused_eviction_is_counted_and_cordon_happens_once(proc_root):
    server, api = _api([(HOT_POD_UID, "ml", "trainer-0")], status=429)  # a PodDisruptionBudget says no
    try:
        reader = FakeReader(GpuState(0, "GPU-hot", 88, (101,)))
        guardian = Guardian(reader, limit=75, kubernetes=KubernetesActions("gpu-node-1", api), proc_root=proc_root)
        assert guardian.check() == ["cordoned node gpu-node-1"]
        assert guardian.check() == []  # still hot: evictions are retried, the node is not patched again
    finally:
        server.shutdown()
    assert [m for m, _, _ in server.requests].count("PATCH") == 1
    assert [m for m, _, _ in server.requests].count("POST") == 2
    assert 'gpucluster_guardian_errors_total{action="evict"} 2.0' in guardian.metrics.text()


def test_host_mode_terminates_the_processes_on_the_hot_gpu():
    hot = subprocess.Popen(["sleep", "60"])
    cool = subprocess.Popen(["sleep", "60"])
    try:
        reader = FakeReader(GpuState(0, "GPU-hot", 80, (hot.pid,)), GpuState(1, "GPU-cool", 50, (cool.pid,)))
        done = Guardian(reader, limit=75).check()
        assert done == [f"sent SIGTERM to process {hot.pid}"]
        assert hot.wait(timeout=10) == -signal.SIGTERM
        assert cool.poll() is None
    finally:
        for process in (hot, cool):
            process.kill()
            process.wait()


def test_nvml_reader_maps_devices_temperatures_and_processes():
    """NvmlReader against a stand-in for the pynvml module: the calls and constants it uses."""
    temperatures, uuids = [55, 91], ["GPU-a", b"GPU-b"]
    compute = [[SimpleNamespace(pid=10)], [SimpleNamespace(pid=20), SimpleNamespace(pid=21)]]
    graphics = [[SimpleNamespace(pid=10)], []]
    nvml = SimpleNamespace(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: 2,
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetUUID=lambda handle: uuids[handle],
        nvmlDeviceGetTemperature=lambda handle, sensor: temperatures[handle] if sensor == 0 else -1,
        nvmlDeviceGetComputeRunningProcesses=lambda handle: compute[handle],
        nvmlDeviceGetGraphicsRunningProcesses=lambda handle: graphics[handle],
    )
    assert NvmlReader(nvml).read() == [GpuState(0, "GPU-a", 55, (10,)), GpuState(1, "GPU-b", 91, (20, 21))]


# --- rendered DaemonSet and its spec ---------------------------------------------------------------------------


def _guardian_objects(stack: str) -> dict[str, dict]:
    files = render(spec_of(stack)).files()
    return {d["kind"]: d for d in yaml.safe_load_all(files["manifests/80-guardian.yaml"]) if d}


def test_daemon_set_runs_on_every_gpu_pool_with_the_spec_limits():
    objects = _guardian_objects("onprem-k3s")
    pod = objects["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--limit=75" in container["args"] and "--interval=30" in container["args"]
    assert container["image"] == "registry.example.com/gpucluster-guardian:0.1.0"
    assert pod["hostPID"] is True
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["workstation"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_guardian_role_is_least_privilege():
    rules = _guardian_objects("onprem-k3s")["ClusterRole"]["rules"]
    granted = {(resource, verb) for rule in rules for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted == {("pods", "list"), ("pods/eviction", "create"), ("nodes", "get"), ("nodes", "patch")}


def test_no_guardian_unless_enabled():
    assert "manifests/80-guardian.yaml" not in render(spec_of("eks-t4")).files()


@pytest.mark.parametrize(
    "guardian,message",
    [
        ({"enabled": True}, "name the guardian image"),
        ({"enabled": True, "image": "guardian:latest"}, "pin a version"),
        ({"enabled": True, "image": "g:1", "limit_celsius": 130}, "less than or equal to 100"),
        ({"enabled": True, "image": "g:1", "interval_seconds": 0}, "greater than or equal to 5"),
    ],
)
def test_bad_guardian_settings_name_the_field(load_raw, guardian, message):
    raw = load_raw("onprem-k3s")
    raw["monitoring"]["guardian"] = guardian
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test")
    problems = {format_path(p.path): p.message for p in caught.value.problems}
    assert any(
        path.startswith("gpucluster:cluster.monitoring.guardian") and message in text for path, text in problems.items()
    )


def test_guardian_command_without_nvml_exits_2_with_the_reason():
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        pass
    else:
        pytest.skip("this machine has an NVIDIA driver; the command would really watch its GPUs")
    result = CliRunner().invoke(app, ["guardian", "--once"])
    assert result.exit_code == 2
    assert "NVML did not start" in result.output
