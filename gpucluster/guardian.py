"""The thermal guardian (seed 001): stop work on a GPU that runs too hot, before the hardware does.

Every interval it reads each GPU's temperature and the processes using it (NVML, through nvidia-ml-py).
Above the limit it acts on that GPU's work only:

- Kubernetes mode (a DaemonSet with ``hostPID``): it cordons the node, so nothing new lands there, and
  evicts the pods whose processes use the hot GPU, through the Eviction API, so PodDisruptionBudgets hold.
  A process belongs to the pod whose UID its cgroup path names (``/proc/<pid>/cgroup``).
- Host mode (a systemd service on machines without Kubernetes): it sends SIGTERM to those processes.

What it does is logged and exported as Prometheus metrics. The GPU reader and the Kubernetes API are
injected, so the loop is tested with a fake NVML and a fake API server; no GPU is needed.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("gpucluster.guardian")

DEFAULT_LIMIT_CELSIUS = 75
DEFAULT_INTERVAL_SECONDS = 30
METRICS_PORT = 9824
# The pod UID in a cgroup path: ".../kubepods-burstable-pod<uid with _>.slice/..." (systemd driver) or
# ".../kubepods/burstable/pod<uid>/<container>" (cgroupfs driver).
_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


@dataclass(frozen=True)
class GpuState:
    index: int
    uuid: str
    temperature: int  # °C
    pids: tuple[int, ...]  # processes using the GPU (compute and graphics)


class GpuReader(Protocol):
    def read(self) -> list[GpuState]: ...


class NvmlUnavailable(RuntimeError):
    """NVML cannot start here: no NVIDIA driver, or no GPU device in this container."""


class NvmlReader:
    """GPU temperatures and processes from NVML (the ``pynvml`` module of nvidia-ml-py)."""

    def __init__(self, nvml: Any = None):
        if nvml is None:
            import pynvml as nvml  # type: ignore[no-redef]
        self.nvml = nvml
        try:
            self.nvml.nvmlInit()
        except Exception as error:  # pynvml.NVMLError and its per-code subclasses
            raise NvmlUnavailable(f"NVML did not start ({error}): run on a GPU node with the NVIDIA driver") from None

    def read(self) -> list[GpuState]:
        nvml = self.nvml
        states = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = nvml.nvmlDeviceGetUUID(handle)
            temperature = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
            processes = [
                *nvml.nvmlDeviceGetComputeRunningProcesses(handle),
                *nvml.nvmlDeviceGetGraphicsRunningProcesses(handle),
            ]
            pids = tuple(sorted({process.pid for process in processes}))
            states.append(GpuState(index, uuid if isinstance(uuid, str) else uuid.decode(), int(temperature), pids))
        return states


class Metrics:
    """The guardian's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.temperature = Gauge(
            "gpucluster_guardian_gpu_temperature_celsius",
            "GPU temperature the guardian last read.",
            ["gpu", "uuid"],
            registry=self.registry,
        )
        self.limit = Gauge(
            "gpucluster_guardian_limit_celsius", "Temperature above which the guardian acts.", registry=self.registry
        )
        self.over_limit = Gauge(
            "gpucluster_guardian_gpu_over_limit",
            "1 while the GPU is above the limit.",
            ["gpu", "uuid"],
            registry=self.registry,
        )
        self.actions = Counter(
            "gpucluster_guardian_actions", "What the guardian did.", ["action"], registry=self.registry
        )
        self.errors = Counter("gpucluster_guardian_errors", "Actions that failed.", ["action"], registry=self.registry)

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


def pod_uid_of(pid: int, proc_root: Path = Path("/proc")) -> str | None:
    """The UID of the pod a process runs in, from its cgroup path; None for processes outside pods."""
    try:
        text = (proc_root / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    match = _POD_UID.search(text)
    return match.group(1).replace("_", "-") if match else None


class KubernetesActions:
    """Cordon this node and evict pods, with the official client, from inside the cluster."""

    def __init__(self, node: str, api: Any = None):
        if api is None:
            from kubernetes import client, config

            config.load_incluster_config()
            api = client.CoreV1Api()
        self.node, self.api = node, api

    def pods_on_node(self) -> dict[str, tuple[str, str]]:
        """Pod UID -> (namespace, name) for the pods on this node."""
        pods = self.api.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.node}").items
        return {pod.metadata.uid: (pod.metadata.namespace, pod.metadata.name) for pod in pods}

    def cordon(self) -> None:
        self.api.patch_node(self.node, {"spec": {"unschedulable": True}})

    def evict(self, namespace: str, name: str) -> None:
        from kubernetes import client

        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
        self.api.create_namespaced_pod_eviction(name, namespace, body)


@dataclass
class Guardian:
    """One check per call of ``check``; ``run`` repeats it every ``interval`` seconds."""

    reader: GpuReader
    limit: int = DEFAULT_LIMIT_CELSIUS
    kubernetes: KubernetesActions | None = None  # None: host mode
    metrics: Metrics = field(default_factory=Metrics)
    proc_root: Path = Path("/proc")
    kill: Callable[[int, int], None] = os.kill
    cordoned: bool = False

    def __post_init__(self) -> None:
        self.metrics.limit.set(self.limit)

    def check(self) -> list[str]:
        """Read every GPU once and act on the hot ones; returns what was done, one line per action."""
        hot = []
        for gpu in self.reader.read():
            labels = {"gpu": str(gpu.index), "uuid": gpu.uuid}
            self.metrics.temperature.labels(**labels).set(gpu.temperature)
            self.metrics.over_limit.labels(**labels).set(1 if gpu.temperature > self.limit else 0)
            if gpu.temperature > self.limit:
                log.warning("GPU %s (%s) at %s °C, above %s °C", gpu.index, gpu.uuid, gpu.temperature, self.limit)
                hot.append(gpu)
        if not hot:
            return []
        pids = sorted({pid for gpu in hot for pid in gpu.pids})
        if self.kubernetes is None:
            return self._stop_processes(pids)
        return self._evict_pods(pids)

    def _stop_processes(self, pids: Iterable[int]) -> list[str]:
        done = []
        for pid in pids:
            try:
                self.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue  # it ended on its own
            except OSError as error:
                self._failed("kill", f"SIGTERM to process {pid}: {error}")
                continue
            self.metrics.actions.labels(action="kill").inc()
            done.append(self._did(f"sent SIGTERM to process {pid}"))
        return done

    def _evict_pods(self, pids: Iterable[int]) -> list[str]:
        assert self.kubernetes is not None
        done = []
        if not self.cordoned:
            try:
                self.kubernetes.cordon()
                self.cordoned = True
                self.metrics.actions.labels(action="cordon").inc()
                done.append(self._did(f"cordoned node {self.kubernetes.node}"))
            except Exception as error:  # the API refused or is unreachable: say so, still try the evictions
                self._failed("cordon", f"cordon {self.kubernetes.node}: {error}")
        uids = {uid for uid in (pod_uid_of(pid, self.proc_root) for pid in pids) if uid}
        if not uids:
            return done
        try:
            pods = self.kubernetes.pods_on_node()
        except Exception as error:
            self._failed("evict", f"list pods on {self.kubernetes.node}: {error}")
            return done
        for uid in sorted(uids):
            if uid not in pods:
                continue
            namespace, name = pods[uid]
            try:
                self.kubernetes.evict(namespace, name)
            except Exception as error:  # e.g. 429: a PodDisruptionBudget holds it; tried again next interval
                self._failed("evict", f"evict {namespace}/{name}: {error}")
                continue
            self.metrics.actions.labels(action="evict").inc()
            done.append(self._did(f"evicted pod {namespace}/{name}"))
        return done

    def _did(self, what: str) -> str:
        log.warning("%s", what)
        return what

    def _failed(self, action: str, what: str) -> None:
        self.metrics.errors.labels(action=action).inc()
        log.error("failed: %s", what)

    def run(self, interval: float, stop: Callable[[], bool] = lambda: False) -> None:
        while not stop():
            started = time.monotonic()
            try:
                self.check()
            except Exception:  # a failed read must not stop the guardian; the next interval tries again
                self.metrics.errors.labels(action="read").inc()
                log.exception("check failed")
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
