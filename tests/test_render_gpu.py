"""The GPU layer: device-plugin configs per pool, MIG configs, DCGM counters, GPU operator values."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from gpucluster.plan import DEVICE_PLUGIN_CONFIG_LABEL, MIG_CONFIG_LABEL, make_plan
from gpucluster.render import gpu, render
from gpucluster.spec import ClusterSpec
from stacks import REFERENCE, spec_of


def with_pool_changes(spec: ClusterSpec, index: int, **changes) -> ClusterSpec:
    raw = spec.model_dump(mode="json")
    raw["node_pools"][index].update(changes)
    return ClusterSpec.model_validate(raw)


def config_map_data(objects: list[dict], name: str) -> dict[str, str]:
    (found,) = [o for o in objects if o["metadata"]["name"] == name]
    return found["data"]


def test_time_slicing_config_follows_the_pool_in_upstream_format():
    plan = make_plan(spec_of("onprem-dgx"))
    data = config_map_data(gpu.config_maps(plan), gpu.DEVICE_PLUGIN_CONFIG)
    dev = yaml.safe_load(data["dgx-dev"])
    assert dev["version"] == "v1"
    slicing = dev["sharing"]["timeSlicing"]
    assert slicing["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert slicing["renameByDefault"] is False
    assert slicing["failRequestsGreaterThanOne"] is False
    assert "sharing" not in yaml.safe_load(data["dgx-train"])


def test_replicas_change_reaches_the_config():
    spec = spec_of("onprem-dgx")
    sharing = {"mode": "time-slicing", "replicas": 7, "rename_by_default": True}
    changed = make_plan(with_pool_changes(spec, 2, sharing=sharing))
    dev = yaml.safe_load(config_map_data(gpu.config_maps(changed), gpu.DEVICE_PLUGIN_CONFIG)["dgx-dev"])
    assert dev["sharing"]["timeSlicing"]["resources"][0]["replicas"] == 7
    assert dev["sharing"]["timeSlicing"]["renameByDefault"] is True


def test_every_pool_selects_its_own_config_by_node_label():
    plan = make_plan(spec_of("onprem-dgx"))
    keys = set(config_map_data(gpu.config_maps(plan), gpu.DEVICE_PLUGIN_CONFIG))
    for pool in plan.pools:
        assert pool.labels[DEVICE_PLUGIN_CONFIG_LABEL] in keys
    values = gpu.operator_values(plan)
    assert values["devicePlugin"]["config"]["default"] in keys


def test_mig_pools_get_their_layout_and_label():
    plan = make_plan(spec_of("eks-h100"))
    objects = gpu.config_maps(plan)
    parted = yaml.safe_load(config_map_data(objects, gpu.MIG_PARTED_CONFIG)["config.yaml"])
    (mig_pool,) = [p for p in plan.pools if p.spec.sharing.mode == "mig"]
    assert mig_pool.labels[MIG_CONFIG_LABEL] == mig_pool.name
    entry = parted["mig-configs"][mig_pool.name][0]
    assert entry["mig-enabled"] is True
    assert entry["mig-devices"] == {"3g.20gb": 1, "2g.10gb": 1, "1g.5gb": 2}
    assert parted["mig-configs"]["all-disabled"] == [{"devices": "all", "mig-enabled": False}]
    flags = yaml.safe_load(config_map_data(objects, gpu.DEVICE_PLUGIN_CONFIG)[mig_pool.name])["flags"]
    assert flags["migStrategy"] == "mixed"
    values = gpu.operator_values(plan)
    assert values["migManager"]["enabled"] is True


def test_mig_single_fills_the_gpu_with_the_profile():
    plan = make_plan(spec_of("onprem-dgx"))
    parted = yaml.safe_load(config_map_data(gpu.config_maps(plan), gpu.MIG_PARTED_CONFIG)["config.yaml"])
    assert parted["mig-configs"]["dgx-mig"][0]["mig-devices"] == {"1g.10gb": 7}


def test_no_mig_means_no_mig_manager_and_no_mig_config():
    plan = make_plan(spec_of("eks-t4"))
    names = [o["metadata"]["name"] for o in gpu.config_maps(plan)]
    assert gpu.MIG_PARTED_CONFIG not in names
    assert gpu.operator_values(plan)["migManager"]["enabled"] is False


@pytest.mark.parametrize(
    ("stack", "driver", "toolkit", "cdi"),
    [("eks-t4", False, False, False), ("onprem-k3s", False, False, True), ("hybrid-crio", False, False, True)],
)
def test_driver_and_toolkit_only_where_nodes_lack_them(stack, driver, toolkit, cdi):
    values = gpu.operator_values(make_plan(spec_of(stack)))
    assert values["driver"]["enabled"] is driver
    assert values["toolkit"]["enabled"] is toolkit
    assert values["cdi"]["enabled"] is cdi


def test_operator_managed_toolkit_on_k3s_points_at_k3s_containerd():
    raw = spec_of("onprem-k3s").model_dump(mode="json")
    raw["gpu_stack"] = {"driver": "operator", "toolkit": "operator", "driver_version": "575.64.03"}
    values = gpu.operator_values(make_plan(ClusterSpec.model_validate(raw)))
    assert values["driver"]["enabled"] is True
    assert values["driver"]["version"] == "575.64.03"
    env = {e["name"]: e["value"] for e in values["toolkit"]["env"]}
    assert env["CONTAINERD_SOCKET"] == "/run/k3s/containerd/containerd.sock"


def test_versions_are_pinned_from_the_spec():
    spec = spec_of("eks-t4")
    release = gpu.operator_release(make_plan(spec))
    assert release.version == spec.components.gpu_operator == "v26.7.0"
    assert release.values["devicePlugin"]["version"] == spec.components.device_plugin
    assert release.values["dcgmExporter"]["version"] == spec.components.dcgm_exporter
    assert "latest" not in yaml.safe_dump(release.values)


def preview_policy(spec: ClusterSpec) -> dict:
    """The ClusterPolicy as written to helm/previews/gpu-operator.yaml (next to the dcgm-exporter ServiceMonitor)."""
    previews = yaml.safe_load_all(render(spec).files()["helm/previews/gpu-operator.yaml"])
    (policy,) = [obj for obj in previews if obj["kind"] == "ClusterPolicy"]
    return policy


def test_device_plugin_override_pins_gpu_feature_discovery_too():
    spec = spec_of("eks-t4", components={"device_plugin": "v0.19.0"})
    values = gpu.operator_values(make_plan(spec))
    assert values["devicePlugin"]["version"] == values["gfd"]["version"] == "v0.19.0"
    policy = preview_policy(spec)["spec"]
    assert policy["devicePlugin"]["version"] == policy["gfd"]["version"] == "v0.19.0"


def test_rendered_pins_are_the_reference_charts_own():
    """Default operand versions equal the gpu-operator chart v26.7.0's pins, and so does the validator
    (the chart's appVersion): a stale default fails here."""
    reference = REFERENCE / "charts" / "gpu-operator.values.yaml"
    if not reference.is_file():
        pytest.skip(f"gpu-operator chart values not found at {reference}")
    upstream = yaml.safe_load(reference.read_text())
    spec = spec_of("eks-t4")
    values = gpu.operator_values(make_plan(spec))
    pinned = {section: body["version"] for section, body in values.items() if "version" in body}
    pinned.pop("driver")  # the driver branch is a gpu_stack choice, shared with the host-driver back end
    assert set(pinned) == {"devicePlugin", "gfd", "dcgmExporter"}
    for section, version in pinned.items():
        assert version == upstream[section]["version"], section
    assert preview_policy(spec)["spec"]["validator"]["version"] == spec.components.gpu_operator


def test_each_mig_pool_keeps_its_own_strategy():
    """A single and a mixed MIG pool in one cluster: the ClusterPolicy sets no strategy (the operator would
    put it in MIG_STRATEGY, overriding both pools' configs), and each pool's config names its own."""
    raw = spec_of("onprem-dgx").model_dump(mode="json")
    mixed = {"mode": "mig", "strategy": "mixed", "layout": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 1}}
    raw["node_pools"][2]["sharing"] = mixed
    spec = ClusterSpec.model_validate(raw)
    policy = preview_policy(spec)["spec"]
    assert not (policy.get("mig") or {}).get("strategy")
    data = config_map_data(gpu.config_maps(make_plan(spec)), gpu.DEVICE_PLUGIN_CONFIG)
    strategies = {pool: yaml.safe_load(data[pool])["flags"]["migStrategy"] for pool in ("dgx-mig", "dgx-dev")}
    assert strategies == {"dgx-mig": "single", "dgx-dev": "mixed"}
    assert yaml.safe_load(data["dgx-train"])["flags"]["migStrategy"] == "none"


def test_operands_tolerate_every_pool_taint():
    spec = with_pool_changes(
        spec_of("eks-t4"), 0, taints=[{"key": "dedicated", "value": "infer", "effect": "NoExecute"}]
    )
    tolerations = gpu.operator_values(make_plan(spec))["daemonsets"]["tolerations"]
    assert {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"} in tolerations
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations


def enabled_counters(text: str) -> set[str]:
    lines = (line.split(",")[0].strip() for line in text.splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def test_dcgm_counters_extend_the_upstream_defaults_with_profiling():
    ours = enabled_counters(gpu.dcgm_metrics_csv())
    for counter in (
        "DCGM_FI_PROF_SM_ACTIVE",
        "DCGM_FI_PROF_SM_OCCUPANCY",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "DCGM_FI_DEV_GPU_UTIL",
    ):
        assert counter in ours
    upstream = REFERENCE / "dcgm" / "default-counters.csv"
    if not upstream.is_file():
        pytest.skip(f"upstream counters not found at {upstream}")
    missing = enabled_counters(upstream.read_text()) - ours
    assert not missing, f"upstream default counters we dropped: {sorted(missing)}"


def test_dcgm_csv_rows_are_well_formed():
    for line in gpu.dcgm_metrics_csv().splitlines():
        if line.strip() and not line.startswith("#"):
            field, kind, help_text = (part.strip() for part in line.split(",", 2))
            assert field.startswith("DCGM_"), line
            assert kind in {"gauge", "counter", "label"}, line
            assert help_text, line


@pytest.mark.parametrize("stack", ["eks-t4", "eks-h100", "onprem-dgx", "onprem-k3s"])
def test_config_maps_pass_the_kubernetes_schema(stack):
    spec = spec_of(stack)
    for obj in gpu.config_maps(make_plan(spec)):
        kubernetes_validate.validate(obj, f"{spec.kubernetes.version}.0", strict=True)


def test_service_monitor_comes_with_the_release_that_installs_its_crd():
    """Without the prometheus-operator CRD the operator silently skips the ServiceMonitor (nothing scrapes, no
    one is told); kube-prometheus-stack installs it, so the ServiceMonitor is on exactly with monitoring."""
    plan = make_plan(spec_of("eks-t4"))
    assert plan.spec.monitoring.enabled and plan.installs_prometheus_operator
    assert gpu.operator_values(plan)["dcgmExporter"]["serviceMonitor"]["enabled"] is True
    plain = make_plan(
        spec_of("eks-t4", monitoring={"enabled": False}, autoscaling={"node_autoscaler": "cluster-autoscaler"})
    )
    assert not plain.installs_prometheus_operator
    assert gpu.operator_values(plain)["dcgmExporter"]["serviceMonitor"] == {"enabled": False}
