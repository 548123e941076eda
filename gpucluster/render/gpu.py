"""The GPU software layer: device-plugin and MIG configs, DCGM counters, and the GPU operator release.

The GPU operator deploys the device plugin, GPU feature discovery, the MIG manager and dcgm-exporter.
gpucluster renders their configuration as ConfigMaps (checked against the Kubernetes schema) and
points the operator's Helm values at them. Each node selects its device-plugin and MIG config through
the ``nvidia.com/device-plugin.config`` and ``nvidia.com/mig.config`` labels its pool carries, as upstream
does; the plan puts those labels on the nodes.
"""

from __future__ import annotations

from importlib import resources

from gpucluster.plan import CONTAINER_TOOLKIT_SETTINGS, DEVICE_LIST_STRATEGY, MIG_DISABLED, Plan, PoolPlan
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.k8s import config_map, k8s_object, to_yaml
from gpucluster.render.monitoring import dcgm_service_monitor, dcgm_service_monitor_values
from gpucluster.spec import GPU_OPERATOR_NAMESPACE, RESERVED_POOL_NAME, ClusterSpec

DEVICE_PLUGIN_CONFIG = "gpucluster-device-plugin"
DEVICE_PLUGIN_FALLBACK = RESERVED_POOL_NAME
MIG_PARTED_CONFIG = "gpucluster-mig-parted"
DCGM_METRICS_CONFIG = "gpucluster-dcgm-metrics"
DCGM_METRICS_FILE = "dcgm-metrics.csv"
# The dcgm-exporter container mounts the metrics ConfigMap here (gpu-operator's dcgm-exporter assets).
DCGM_METRICS_PATH = f"/etc/dcgm-exporter/{DCGM_METRICS_FILE}"
GPU_OPERATOR_REPOSITORY = "https://helm.ngc.nvidia.com/nvidia"
K3S_CONTAINERD = {
    "CONTAINERD_CONFIG": "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
    "CONTAINERD_SOCKET": "/run/k3s/containerd/containerd.sock",
}


def dcgm_metrics_csv() -> str:
    return resources.files("gpucluster").joinpath(f"data/{DCGM_METRICS_FILE}").read_text(encoding="utf-8")


def device_plugin_config(pool: PoolPlan) -> dict:
    """One pool's device-plugin config in the upstream ``version: v1`` format."""
    sharing = pool.spec.sharing
    config: dict = {
        "version": "v1",
        "flags": {"migStrategy": sharing.strategy if sharing.mode == "mig" else "none", "failOnInitError": True},
    }
    if sharing.mode == "time-slicing":
        config["sharing"] = {
            "timeSlicing": {
                "renameByDefault": sharing.rename_by_default,
                "failRequestsGreaterThanOne": sharing.fail_requests_greater_than_one,
                "resources": [{"name": "nvidia.com/gpu", "replicas": sharing.replicas}],
            }
        }
    return config


def mig_parted_config(plan: Plan) -> dict:
    """mig-parted configs: ``all-disabled`` plus one per MIG pool, named after the pool."""
    configs: dict = {MIG_DISABLED: [{"devices": "all", "mig-enabled": False}]}
    for pool in plan.pools:
        for layout in pool.mig_layouts.values():
            configs[pool.name] = [{"devices": "all", "mig-enabled": True, "mig-devices": dict(layout)}]
    return {"version": "v1", "mig-configs": configs}


def config_maps(plan: Plan) -> list[dict]:
    device_plugin = {DEVICE_PLUGIN_FALLBACK: to_yaml({"version": "v1", "flags": {"migStrategy": "none"}})}
    device_plugin.update({pool.name: to_yaml(device_plugin_config(pool)) for pool in plan.pools})
    objects = [
        config_map(DEVICE_PLUGIN_CONFIG, GPU_OPERATOR_NAMESPACE, device_plugin),
        config_map(DCGM_METRICS_CONFIG, GPU_OPERATOR_NAMESPACE, {DCGM_METRICS_FILE: dcgm_metrics_csv()}),
    ]
    if plan.uses_mig:
        objects.append(
            config_map(MIG_PARTED_CONFIG, GPU_OPERATOR_NAMESPACE, {"config.yaml": to_yaml(mig_parted_config(plan))})
        )
    return objects


# The chart's default NFD worker toleration, kept when we set the list: NFD labels control-plane nodes too.
CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Equal",
    "value": "",
    "effect": "NoSchedule",
}


def pool_tolerations(plan: Plan) -> list[dict]:
    """Operand DaemonSets (and the NFD worker) tolerate every taint a GPU pool carries."""
    seen: dict[tuple, dict] = {}
    for pool in plan.pools:
        for taint in pool.taints:
            seen.setdefault((taint.key, taint.effect), {"key": taint.key, "operator": "Exists", "effect": taint.effect})
    return list(seen.values())


def _driver_rdma(spec: ClusterSpec) -> dict:
    """GPUDirect RDMA through the operator's driver container, which then loads nvidia-peermem.

    Only with the operator's driver on InfiniBand: with the host's driver the setting does nothing (the plan's
    ``host_modules`` hands the module to the bare-metal back end). The InfiniBand stack (MOFED/DOCA-OFED) is
    the host's: gpucluster's network operator policy deploys no driver container.
    """
    if spec.network.fabric == "infiniband" and spec.gpu_stack.driver == "operator":
        return {"enabled": True, "useHostMofed": True}
    return {"enabled": False}


def toolkit_env(plan: Plan) -> list[dict]:
    """Installer env of the operator-managed container toolkit: the plan's toolkit settings (the
    nvidia-ctk-installer reads each config.toml key from its upper-cased env name), and k3s's containerd."""
    env = [
        {"name": key.upper().replace("-", "_"), "value": str(value).lower()}
        for key, value in CONTAINER_TOOLKIT_SETTINGS.items()
    ]
    if plan.spec.kubernetes.distribution == "k3s":
        env += [{"name": k, "value": v} for k, v in K3S_CONTAINERD.items()]
    return env


def _device_list_strategy(plan: Plan) -> dict:
    """Device plugin env passing allocations the way the toolkit accepts them from unprivileged containers.

    With CDI the operator sets its own CDI strategies, which env given here would override.
    """
    if plan.spec.runtime.cdi:
        return {}
    return {"env": [{"name": "DEVICE_LIST_STRATEGY", "value": DEVICE_LIST_STRATEGY}]}


def operator_values(plan: Plan) -> dict:
    """Helm values for the gpu-operator chart (every key exists in the chart's values.yaml).

    ``mig.strategy`` is empty: the operator copies a non-empty strategy into ``MIG_STRATEGY`` of the device
    plugin and GPU feature discovery, which beats the ``flags.migStrategy`` of each pool's config, so one
    cluster-wide value would override a pool's own. Empty, the chart leaves the field out and every node's
    config decides. The device plugin and GPU feature discovery ship as one image and read the same config:
    ``components.device_plugin`` pins both.
    """
    spec = plan.spec
    toolkit: dict = {"enabled": spec.gpu_stack.toolkit == "operator"}
    if toolkit["enabled"]:
        toolkit["env"] = toolkit_env(plan)
    return {
        "cdi": {"enabled": spec.runtime.cdi},
        "daemonsets": {"tolerations": pool_tolerations(plan)},
        "driver": {
            "enabled": spec.gpu_stack.driver == "operator",
            "version": spec.gpu_stack.driver_version,
            "rdma": _driver_rdma(spec),
        },
        "toolkit": toolkit,
        "devicePlugin": {
            "enabled": True,
            "version": spec.components.device_plugin,
            **_device_list_strategy(plan),
            "config": {"create": False, "name": DEVICE_PLUGIN_CONFIG, "default": DEVICE_PLUGIN_FALLBACK},
        },
        "gfd": {"enabled": True, "version": spec.components.device_plugin},
        "dcgmExporter": {
            "enabled": True,
            "version": spec.components.dcgm_exporter,
            "config": {"name": DCGM_METRICS_CONFIG},
            # Kubernetes mode: per-GPU pod, namespace and container labels from the kubelet's pod-resources
            # API (the operator mounts /var/lib/kubelet/pod-resources), for per-pod dashboards and the HPA.
            "env": [
                {"name": "DCGM_EXPORTER_COLLECTORS", "value": DCGM_METRICS_PATH},
                {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
            ],
            "serviceMonitor": dcgm_service_monitor_values(plan),
        },
        "mig": {"strategy": ""},
        "migManager": {
            "enabled": plan.uses_mig,
            "config": {"create": False, "name": MIG_PARTED_CONFIG if plan.uses_mig else "", "default": MIG_DISABLED},
        },
        # NFD's worker labels every node (GPU feature discovery and the operator select on its labels): it
        # must land on every tainted pool, not only on nvidia.com/gpu ones.
        "node-feature-discovery": {"worker": {"tolerations": [CONTROL_PLANE_TOLERATION, *pool_tolerations(plan)]}},
    }


def _operand(values: dict, config: dict | None = None) -> dict:
    """One operand section as templates/clusterpolicy.yaml writes it: ``enabled`` always, other keys only when
    set (its ``{{- if }}`` guards); ``config`` as the template builds it for that operand, when it does."""
    operand = {k: v for k, v in values.items() if k != "config" and (v or k == "enabled")}
    if config:
        operand["config"] = config
    return operand


def cluster_policy(values: dict, chart_version: str) -> dict:
    """The ClusterPolicy the chart's templates/clusterpolicy.yaml (v26.7.0) makes of our values, for the keys
    we set; keys we leave to the chart's defaults are left out.

    Rendered as a preview so it can be checked against the ClusterPolicy CRD; the chart creates it. An empty
    ``mig.strategy`` leaves ``mig:`` with nothing under it, which YAML reads as null (the API server prunes it).
    """
    strategy = values["mig"]["strategy"]
    plugin, dcgm_config = values["devicePlugin"]["config"], values["dcgmExporter"]["config"].get("name")
    device_plugin_config = {"name": plugin["name"], "default": plugin["default"]} if plugin.get("name") else None
    mig = values["migManager"]["config"]
    mig_config = {**({"name": mig["name"]} if mig.get("name") else {}), "default": mig["default"]}
    spec = {
        "operator": {},
        "daemonsets": {
            "priorityClassName": "system-node-critical",
            **{k: v for k, v in values["daemonsets"].items() if v},
        },
        "validator": {"version": chart_version},
        "mig": {"strategy": strategy} if strategy else None,
        "psa": {"enabled": False},
        "cdi": {"enabled": values["cdi"]["enabled"]},
        "driver": {
            "enabled": values["driver"]["enabled"],
            "version": values["driver"]["version"],
            "rdma": {
                "enabled": values["driver"]["rdma"]["enabled"],
                "useHostMofed": values["driver"]["rdma"].get("useHostMofed", False),
            },
        },
        "toolkit": _operand(values["toolkit"]),
        "devicePlugin": _operand(values["devicePlugin"], device_plugin_config),
        "dcgm": {"enabled": False},
        "dcgmExporter": _operand(values["dcgmExporter"], {"name": dcgm_config} if dcgm_config else None),
        "gfd": _operand(values["gfd"]),
        "migManager": _operand(values["migManager"], mig_config),
        "nodeStatusExporter": {"enabled": False},
    }
    return k8s_object("nvidia.com/v1", "ClusterPolicy", "cluster-policy", spec=spec)


def operator_release(plan: Plan) -> HelmRelease:
    version = plan.spec.components.gpu_operator
    values = operator_values(plan)
    return HelmRelease(
        name="gpu-operator",
        chart="gpu-operator",
        repository=GPU_OPERATOR_REPOSITORY,
        version=version,
        namespace=GPU_OPERATOR_NAMESPACE,
        values=values,
        previews=(cluster_policy(values, version), *dcgm_service_monitor(plan)),
    )
