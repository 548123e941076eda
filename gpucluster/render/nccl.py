"""NCCL settings per node pool, a sample all-reduce Job, and the EFA request guard.

NCCL's settings depend on the pool a pod runs on, not on its namespace: a namespace whose workloads may use an
EFA pool and an Ethernet pool needs both, and ``FI_PROVIDER=efa`` on a pool without EFA breaks NCCL. So every
workload namespace gets one ConfigMap per pool it may use, ``nccl-env-<pool>``, and a workload takes the one of
the pool it selects: ``envFrom: [{configMapRef: {name: nccl-env-<pool>}}]``.

On EFA, setting ``FI_PROVIDER=efa`` is not enough: a container that does not also request
``vpc.amazonaws.com/efa`` has no EFA device, and NCCL silently falls back to TCP sockets.
``efa_env_without_request`` finds such containers.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from gpucluster.catalog import catalog
from gpucluster.plan import POOL_LABEL, Plan, PoolPlan, ib_settings
from gpucluster.render.fabric import IPOIB_POD_INTERFACE, ipoib_annotation
from gpucluster.render.k8s import config_map, k8s_object
from gpucluster.render.kueue import LOCAL_QUEUE
from gpucluster.spec import Taint

NCCL_ENV_PREFIX = "nccl-env"
NCCL_TEST_NAME = "nccl-allreduce-test"
MULTI_NODE_NAME = "nccl-allreduce-multi-node"
MULTI_NODE_PREFIX = "allreduce"
BENCHMARK_SCRIPT = "allreduce_bench.py"
BENCHMARK_CONFIG_MAP = "allreduce-bench"
BENCHMARK_MOUNT = "/opt/allreduce-bench"
RENDEZVOUS_PORT = 29500  # torchrun's default master port
QUEUE_NAME_LABEL = "kueue.x-k8s.io/queue-name"
# NVIDIA's PyTorch container ships the nccl-tests binaries (all_reduce_perf, ...) on its PATH. CUDA 12.9
# runs on driver branch 575 and newer, the oldest a reference stack pins.
NCCL_TEST_IMAGE = "nvcr.io/nvidia/pytorch:25.06-py3"
GPU_RESOURCE = "nvidia.com/gpu"
EFA_RESOURCE = "vpc.amazonaws.com/efa"
# The pod's own interface on every CNI gpucluster supports (aws-vpc-cni, calico, cilium, flannel). A host
# interface such as ib0 does not exist in the pod: NCCL would stop with "no socket interface found".
POD_SOCKET_IFNAME = "eth0"

# Where the pod spec sits in each workload kind.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def nccl_config_map_name(pool: PoolPlan) -> str:
    return f"{NCCL_ENV_PREFIX}-{pool.name}"


def nccl_env(plan: Plan, pool: PoolPlan) -> dict[str, str]:
    """Environment for NCCL in a pod on one pool, sorted by name.

    - ethernet: TCP sockets on the pod's interface, InfiniBand verbs off.
    - infiniband: verbs on the spec's HCAs, matched exactly; NCCL picks the GPUDirect RDMA level from the PCI
      topology itself. Bootstrap traffic goes over the pod's interface, or its IPoIB interface with
      ``network.ipoib`` (the pod must attach the network: ``pod_metadata``).
    - efa: libfabric's EFA provider through the aws-ofi-nccl plugin (the image must carry both; with
      ``NCCL_DEBUG=INFO`` the log shows ``NET/OFI`` rather than ``NET/Socket``). ``FI_EFA_USE_DEVICE_RDMA=1``
      only when the pool's instance types support RDMA to GPU memory (p4d, p5): forced on EFA instances
      without it (g5, g6) libfabric aborts.
    """
    env = {"NCCL_DEBUG": "WARN", "NCCL_SOCKET_IFNAME": _socket_ifname(plan, pool)}
    if pool.fabric == "efa":
        env["FI_PROVIDER"] = "efa"
        types = catalog().instance_types
        if all(types[t].efa_device_rdma for t in pool.spec.instance_types):
            env["FI_EFA_USE_DEVICE_RDMA"] = "1"
    else:
        env.update(ib_settings(plan.spec.network, pool.fabric))
    return dict(sorted(env.items()))


def _socket_ifname(plan: Plan, pool: PoolPlan) -> str:
    """The pod's IPoIB interface on InfiniBand pools with ``network.ipoib``, else the pod network's."""
    if pool.fabric == "infiniband" and plan.spec.network.ipoib is not None:
        return IPOIB_POD_INTERFACE
    return POD_SOCKET_IFNAME


def pod_metadata(plan: Plan, pool: PoolPlan, namespace: str, labels: dict[str, str]) -> dict:
    """A pod template's metadata; on InfiniBand pools with ``network.ipoib`` it attaches the IPoIB network,
    which the pool's NCCL_SOCKET_IFNAME names."""
    if _socket_ifname(plan, pool) == IPOIB_POD_INTERFACE:
        return {"labels": labels, "annotations": ipoib_annotation(namespace)}
    return {"labels": labels}


def nccl_config_maps(plan: Plan) -> list[dict]:
    """``nccl-env-<pool>`` in every workload namespace, for each pool its workloads may use."""
    return [
        config_map(nccl_config_map_name(pool), namespace, nccl_env(plan, pool))
        for namespace in plan.workload_namespaces
        for pool in plan.pools_for_namespace(namespace)
    ]


def _test_pool(plan: Plan) -> PoolPlan | None:
    """The pool with the most whole GPUs per node; on fabric efa, only pools with EFA qualify.

    MIG and time-sliced pools are skipped: their ``nvidia.com/gpu`` counts slices or replicas, not GPUs.
    """
    candidates = [pool for pool in plan.pools if pool.gpus_per_node > 0 and pool.spec.sharing.mode == "none"]
    if plan.spec.network.fabric == "efa":
        candidates = [pool for pool in candidates if pool.efa_interfaces > 0]
    return max(candidates, key=lambda pool: pool.gpus_per_node, default=None)


def pod_devices(plan: Plan, pool: PoolPlan) -> dict[str, str]:
    """What one pod using a whole node of the pool requests: its GPUs and its fabric's devices.

    Without the fabric request the container has no EFA device / HCA, and NCCL silently falls back to TCP.
    """
    devices = {GPU_RESOURCE: str(pool.gpus_per_node)}
    if pool.fabric == "efa":
        devices[EFA_RESOURCE] = str(pool.efa_interfaces)
    elif pool.fabric == "infiniband":
        devices[plan.spec.network.rdma_resource] = "1"
    return devices


def _namespace_for(plan: Plan, pool: PoolPlan) -> str | None:
    """The first workload namespace whose workloads may use the pool."""
    return next((ns for ns in plan.workload_namespaces if pool in plan.pools_for_namespace(ns)), None)


def _toleration(taint: Taint) -> dict:
    if taint.value:
        return {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect}
    return {"key": taint.key, "operator": "Exists", "effect": taint.effect}


def nccl_test_example(plan: Plan) -> list[dict]:
    """A Job running ``all_reduce_perf`` over every GPU of one node, in the first namespace that may use the pool.

    It checks that a pod on the pool gets its GPUs (and EFA devices) and the NCCL settings, and measures
    NVLink/PCIe bandwidth inside the node; traffic between nodes needs a multi-pod launcher (an MPIJob or
    torchrun across pods). CPU and memory come from the namespace's LimitRange. Empty when no pool
    offers whole GPUs (on fabric efa: whole GPUs with EFA).

    On InfiniBand the pod also requests the HCAs (``network.rdma_resource``, which the network operator's RDMA
    shared device plugin advertises): without them NCCL finds no InfiniBand device and silently uses sockets.
    """
    pool = _test_pool(plan)
    if pool is None:
        return []
    namespace = _namespace_for(plan, pool)
    if namespace is None:
        return []
    command = ["all_reduce_perf", "-b", "8", "-e", "1G", "-f", "2", "-g", str(pool.gpus_per_node)]
    labels = {"app.kubernetes.io/name": NCCL_TEST_NAME}
    pod_spec = _pool_pod_spec(plan, pool, _nccl_container(plan, pool, "all-reduce", command))
    spec = {"backoffLimit": 0, "template": {"metadata": pod_metadata(plan, pool, namespace, labels), "spec": pod_spec}}
    return [k8s_object("batch/v1", "Job", NCCL_TEST_NAME, namespace, labels, spec=spec)]


def _nccl_container(plan: Plan, pool: PoolPlan, name: str, command: list[str]) -> dict:
    """A container using a whole node of the pool: its GPUs, its fabric's devices and its NCCL settings."""
    devices = pod_devices(plan, pool)
    return {
        "name": name,
        "image": NCCL_TEST_IMAGE,
        "command": command,
        "envFrom": [{"configMapRef": {"name": nccl_config_map_name(pool)}}],
        "resources": {"requests": devices, "limits": dict(devices)},
        # No IPC_LOCK (Pod Security "baseline" refuses it): RDMA pins memory under the runtime's memlock
        # limit, which EKS GPU AMIs and gpucluster's node roles set to unlimited.
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }


def _pool_pod_spec(plan: Plan, pool: PoolPlan, container: dict) -> dict:
    return {
        "restartPolicy": "Never",
        "nodeSelector": {POOL_LABEL: pool.name},
        "tolerations": [_toleration(taint) for taint in pool.taints],
        "containers": [container],
        # NCCL's shared-memory transport needs more than the runtime's default 64 MiB /dev/shm.
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
    }


# --- the multi-node all-reduce ----------------------------------------------------------------------


def benchmark_script() -> str:
    return resources.files("gpucluster").joinpath(f"data/{BENCHMARK_SCRIPT}").read_text(encoding="utf-8")


def multi_node_pools(plan: Plan) -> list[PoolPlan]:
    """Pools of more than one node with whole GPUs (MIG slices and time-sliced replicas do not run NCCL jobs)."""
    return [
        pool for pool in plan.pools if pool.multi_node and pool.gpus_per_node > 0 and pool.spec.sharing.mode == "none"
    ]


def example_nodes(pool: PoolPlan) -> int:
    """Nodes the multi-node example spans: every host on-prem; on AWS the desired count, at least 2 (the
    autoscaler adds nodes up to the pool's maximum)."""
    if not pool.spec.instance_types:
        return pool.max_nodes
    return min(pool.max_nodes, max(2, pool.spec.scaling.desired))


def multi_node_job_name(pool: PoolPlan) -> str:
    """``allreduce-<pool>``, short enough that each pod's hostname ``<job>-<index>`` stays a DNS label."""
    room = 63 - 1 - len(str(example_nodes(pool) - 1))
    return f"{MULTI_NODE_PREFIX}-{pool.name}"[:room].rstrip("-")


def multi_node_example(plan: Plan) -> list[dict]:
    """A torchrun all-reduce across the nodes of each multi-node pool, needing no operator (no MPIJob, no
    PyTorchJob): an Indexed Job with one pod per node and a headless Service.

    The Service gives every pod a DNS name, ``<job>-<index>.<job>``; pod 0 is torchrun's rendezvous host and
    each pod's completion index is its node rank. The benchmark script (bus bandwidth per message size, see
    ``gpucluster/data/allreduce_bench.py``) comes from a ConfigMap. Each pod takes a whole node: its GPUs, its
    fabric's devices (EFA interfaces / the RDMA resource) and the pool's ``nccl-env-<pool>``. Pods in a tenant
    namespace reach each other under its default-deny policies (same-namespace traffic is allowed).
    """
    objects: list[dict] = []
    scripts: set[str] = set()
    for pool in multi_node_pools(plan):
        namespace = _namespace_for(plan, pool)
        if namespace is None:
            continue
        if namespace not in scripts:
            scripts.add(namespace)
            objects.append(config_map(BENCHMARK_CONFIG_MAP, namespace, {BENCHMARK_SCRIPT: benchmark_script()}))
        objects += _multi_node_job(plan, pool, namespace)
    return objects


def _multi_node_job(plan: Plan, pool: PoolPlan, namespace: str) -> list[dict]:
    name, nodes = multi_node_job_name(pool), example_nodes(pool)
    command = [
        "torchrun",
        f"--nnodes={nodes}",
        f"--nproc-per-node={pool.gpus_per_node}",
        "--node-rank=$(JOB_COMPLETION_INDEX)",  # set by the Job controller in every pod of an Indexed Job
        f"--master-addr={name}-0.{name}",
        f"--master-port={RENDEZVOUS_PORT}",
        f"{BENCHMARK_MOUNT}/{BENCHMARK_SCRIPT}",
    ]
    container = _nccl_container(plan, pool, "torchrun", command)
    container["ports"] = [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}]
    container["volumeMounts"].append({"name": "benchmark", "mountPath": BENCHMARK_MOUNT, "readOnly": True})
    pod_spec = {"subdomain": name, **_pool_pod_spec(plan, pool, container)}
    pod_spec["volumes"].append({"name": "benchmark", "configMap": {"name": BENCHMARK_CONFIG_MAP}})
    labels = {"app.kubernetes.io/name": MULTI_NODE_NAME, "app.kubernetes.io/instance": name}
    service = {
        "clusterIP": "None",
        "selector": {"app.kubernetes.io/instance": name},
        # Pod 0's name must resolve while the pods start, before any is ready.
        "publishNotReadyAddresses": True,
        "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT, "targetPort": RENDEZVOUS_PORT}],
    }
    job = {
        "completionMode": "Indexed",
        "completions": nodes,
        "parallelism": nodes,
        "backoffLimit": 0,
        "template": {"metadata": pod_metadata(plan, pool, namespace, labels), "spec": pod_spec},
    }
    return [
        k8s_object("v1", "Service", name, namespace, labels, spec=service),
        k8s_object("batch/v1", "Job", name, namespace, {**labels, **_queue_label(plan, namespace)}, spec=job),
    ]


def _queue_label(plan: Plan, namespace: str) -> dict[str, str]:
    """With Kueue, the tenant's LocalQueue: Kueue then admits the Job's pods together or not at all, so a
    multi-node run never holds some nodes while waiting for the rest."""
    if plan.spec.tenancy.mode == "kueue" and any(t.ns == namespace for t in plan.spec.tenants):
        return {QUEUE_NAME_LABEL: LOCAL_QUEUE}
    return {}


# --- the fabric request guards ----------------------------------------------------------------------


def efa_env_without_request(objects: list[dict]) -> list[str]:
    """Containers that set ``FI_PROVIDER=efa`` but request no ``vpc.amazonaws.com/efa``.

    The variable counts whether set in ``env`` (a value, or a ``configMapKeyRef``) or through ``envFrom``
    of a ConfigMap; ConfigMaps are looked up among ``objects``, in the workload's namespace. Each hit is
    named ``"<Kind> <namespace>/<name> container <container>"``.
    """
    return _env_without_request(objects, lambda env: env.get("FI_PROVIDER") == "efa", lambda name: name == EFA_RESOURCE)


def ib_env_without_request(objects: list[dict]) -> list[str]:
    """Containers that turn NCCL's InfiniBand transport on (``NCCL_IB_DISABLE=0``) but request no ``rdma/...``
    resource: they have no HCA and NCCL silently uses sockets. Found and named as ``efa_env_without_request``."""
    return _env_without_request(
        objects, lambda env: env.get("NCCL_IB_DISABLE") == "0", lambda name: name.startswith("rdma/")
    )


def _env_without_request(
    objects: list[dict], selects: Callable[[dict[str, str]], bool], is_device: Callable[[str], bool]
) -> list[str]:
    config_maps = {
        (_namespace(obj), obj["metadata"]["name"]): obj.get("data", {})
        for obj in objects
        if obj.get("kind") == "ConfigMap"
    }
    hits = []
    for obj in objects:
        pod_spec = _pod_spec(obj)
        if pod_spec is None:
            continue
        namespace = _namespace(obj)
        in_namespace = {name: data for (ns, name), data in config_maps.items() if ns == namespace}
        for container in [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]:
            if selects(_effective_env(container, in_namespace)) and not _requests(container, is_device):
                hits.append(f"{obj['kind']} {namespace}/{obj['metadata']['name']} container {container['name']}")
    return hits


def _namespace(obj: dict) -> str:
    return obj["metadata"].get("namespace", "default")


def _pod_spec(obj: dict) -> dict | None:
    path = POD_SPEC_PATHS.get(obj.get("kind", ""))
    if path is None:
        return None
    node = obj
    for key in path:
        node = node.get(key, {})
    return node


def _effective_env(container: dict, config_maps: dict[str, dict]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: ``envFrom`` first, ``env`` overriding."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            prefix = source.get("prefix", "")
            env.update(
                {prefix + key: value for key, value in config_maps.get(source["configMapRef"]["name"], {}).items()}
            )
    for variable in container.get("env", []):
        key_ref = variable.get("valueFrom", {}).get("configMapKeyRef")
        if key_ref:
            env[variable["name"]] = config_maps.get(key_ref["name"], {}).get(key_ref["key"], "")
        else:
            env[variable["name"]] = variable.get("value", "")
    return env


def _requests(container: dict, is_device: Callable[[str], bool]) -> bool:
    resources = container.get("resources", {})
    return any(
        is_device(name) and int(str(count)) > 0
        for section in ("limits", "requests")
        for name, count in resources.get(section, {}).items()
    )
