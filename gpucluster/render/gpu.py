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


def pool_tolerations(plan: Plan) -> list[dict]:
    """Operand DaemonSets tolerate every taint a GPU pool carries."""
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
    """Helm values for the gpu-operator chart (every key exists in the chart's values.yaml)."""
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
        "dcgmExporter": {
            "enabled": True,
            "version": spec.components.dcgm_exporter,
            "config": {"name": DCGM_METRICS_CONFIG},
            "env": [{"name": "DCGM_EXPORTER_COLLECTORS", "value": DCGM_METRICS_PATH}],
            "serviceMonitor": {"enabled": spec.monitoring.enabled},
        },
        "mig": {"strategy": plan.mig_strategy if plan.uses_mig else "single"},
        "migManager": {
            "enabled": plan.uses_mig,
            "config": {"create": False, "name": MIG_PARTED_CONFIG if plan.uses_mig else "", "default": MIG_DISABLED},
        },
    }


def cluster_policy(values: dict, chart_version: str) -> dict:
    """The ClusterPolicy the chart's templates/clusterpolicy.yaml makes of our values (the parts we set).

    Rendered as a preview so it can be checked against the ClusterPolicy CRD; the chart creates it.
    """
    operands = {}
    for section in ("devicePlugin", "dcgmExporter", "migManager", "toolkit"):
        operands[section] = {k: v for k, v in values[section].items() if k != "config"}
        config = {k: v for k, v in values[section].get("config", {}).items() if k in ("name", "default") and v}
        if config:
            operands[section]["config"] = config
    spec = {
        "operator": {},
        "daemonsets": {"priorityClassName": "system-node-critical", **values["daemonsets"]},
        "validator": {"version": chart_version},
        "mig": values["mig"],
        "psa": {"enabled": False},
        "cdi": {"enabled": values["cdi"]["enabled"], "default": False},
        "driver": {
            "enabled": values["driver"]["enabled"],
            "version": values["driver"]["version"],
            "rdma": {
                "enabled": values["driver"]["rdma"]["enabled"],
                "useHostMofed": values["driver"]["rdma"].get("useHostMofed", False),
            },
        },
        **operands,
        "dcgm": {"enabled": False},
        "gfd": {"enabled": True},
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
        previews=(cluster_policy(values, version),),
    )
