"""The tenants' admission policies, evaluated: their CEL runs (cel-python) on allowed and refused pods."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
from admission_cel import denials

from gpucluster.plan import CONTAINER_TOOLKIT_SETTINGS, make_plan
from gpucluster.render.admission import NO_DEVICE_REQUESTS, admission_policies
from gpucluster.render.gpu import operator_values
from gpucluster.spec import ClusterSpec
from stacks import STACKS, spec_of

POOL = "gpucluster.io/pool"


def objects_of(spec: ClusterSpec) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in admission_policies(make_plan(spec))}


@pytest.fixture(scope="module")
def dgx() -> dict[tuple[str, str], dict]:
    """onprem-dgx: ai-inference may use dgx-mig and dgx-dev; ai-training names no pools."""
    return objects_of(spec_of("onprem-dgx"))


@pytest.fixture(scope="module")
def pools_policy(dgx) -> dict:
    return dgx[("ValidatingAdmissionPolicy", "gpucluster-pools-ai-inference")]


@pytest.fixture(scope="module")
def device_policy(dgx) -> dict:
    return dgx[("ValidatingAdmissionPolicy", NO_DEVICE_REQUESTS)]


def pod(*, gpu: str | None = "nvidia.com/gpu", init_gpu: bool = False, **spec) -> dict:
    container: dict = {"name": "main", "image": "nvcr.io/nvidia/pytorch:25.01-py3"}
    if gpu and not init_gpu:
        container["resources"] = {"limits": {gpu: "1"}}
    body: dict = {"containers": [container], **spec}
    if init_gpu:
        body["initContainers"] = [{"name": "warmup", "image": "busybox", "resources": {"limits": {gpu: "1"}}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job", "namespace": "ai-inference"}, "spec": body}


def required_affinity(*terms: list[dict]) -> dict:
    node_terms = [{"matchExpressions": expressions} for expressions in terms]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": node_terms}}}


# --- pools -------------------------------------------------------------------------------------------


def test_gpu_pod_without_a_pool_selector_is_refused(pools_policy):
    [message] = denials(pools_policy, pod())
    assert "dgx-mig, dgx-dev" in message and POOL in message


def test_gpu_pod_selecting_an_allowed_pool_is_admitted(pools_policy):
    assert denials(pools_policy, pod(nodeSelector={POOL: "dgx-mig"})) == []
    assert denials(pools_policy, pod(nodeSelector={POOL: "dgx-dev", "workload": "development"})) == []


def test_gpu_pod_selecting_another_tenants_pool_is_refused(pools_policy):
    assert denials(pools_policy, pod(nodeSelector={POOL: "dgx-train"}))
    assert denials(pools_policy, pod(nodeSelector={"workload": "inference"}))


def test_init_container_requests_count_too(pools_policy):
    assert denials(pools_policy, pod(init_gpu=True))
    assert denials(pools_policy, pod(init_gpu=True, nodeSelector={POOL: "dgx-mig"})) == []


def test_gpu_in_requests_only_counts(pools_policy):
    refused = pod(gpu=None)
    refused["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": "1", "cpu": "2"}}
    assert denials(pools_policy, refused)


def test_pods_without_gpus_need_no_pool(pools_policy):
    assert denials(pools_policy, pod(gpu=None)) == []
    cpu_only = pod(gpu=None)
    cpu_only["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2", "memory": "4Gi"}}
    assert denials(pools_policy, cpu_only) == []


@pytest.mark.parametrize(
    ("terms", "admitted"),
    [
        ([[{"key": POOL, "operator": "In", "values": ["dgx-mig", "dgx-dev"]}]], True),
        ([[{"key": "workload", "operator": "Exists"}, {"key": POOL, "operator": "In", "values": ["dgx-dev"]}]], True),
        ([[{"key": POOL, "operator": "In", "values": ["dgx-mig", "dgx-train"]}]], False),
        ([[{"key": POOL, "operator": "NotIn", "values": ["dgx-train"]}]], False),
        (
            [[{"key": POOL, "operator": "In", "values": ["dgx-mig"]}], [{"key": "workload", "operator": "Exists"}]],
            False,
        ),
        ([], False),
    ],
    ids=["in-allowed", "and-other-expression", "one-foreign-pool", "not-in", "second-term-unconfined", "no-terms"],
)
def test_required_node_affinity_must_confine_every_term_to_allowed_pools(pools_policy, terms, admitted):
    found = denials(pools_policy, pod(affinity=required_affinity(*terms)))
    assert (found == []) is admitted, found


def test_preferred_affinity_does_not_count(pools_policy):
    preferred = [
        {"weight": 1, "preference": {"matchExpressions": [{"key": POOL, "operator": "In", "values": ["dgx-mig"]}]}}
    ]
    assert denials(
        pools_policy, pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}})
    )


def test_gated_pods_are_checked_when_their_last_gate_is_removed(pools_policy):
    gated = pod(schedulingGates=[{"name": "kueue.x-k8s.io/admission"}])
    assert denials(pools_policy, gated) is None  # Kueue sets the selector before it ungates
    ungated = pod()
    assert denials(pools_policy, ungated, operation="UPDATE", old=gated)
    selected = pod(nodeSelector={POOL: "dgx-mig"})
    assert denials(pools_policy, selected, operation="UPDATE", old=gated) == []


def test_other_updates_of_running_pods_pass(pools_policy):
    running = pod()
    relabelled = copy.deepcopy(running)
    relabelled["metadata"]["labels"] = {"done": "true"}
    assert denials(pools_policy, relabelled, operation="UPDATE", old=running) is None


def test_mig_and_shared_resources_are_gpu_requests_too():
    raw = spec_of("eks-h100").model_dump(mode="json")
    raw["tenants"][1]["pools"] = ["a100-mig"]
    raw["tenants"][1]["gpus"] = 0
    raw["tenants"][1]["resources"] = {"nvidia.com/mig-1g.5gb": 8}
    policy = objects_of(ClusterSpec.model_validate(raw))[("ValidatingAdmissionPolicy", "gpucluster-pools-research")]
    assert denials(policy, pod(gpu="nvidia.com/mig-1g.5gb"))
    assert denials(policy, pod(gpu="nvidia.com/mig-1g.5gb", nodeSelector={POOL: "a100-mig"})) == []
    assert denials(policy, pod(gpu="nvidia.com/gpu", nodeSelector={POOL: "h100-efa"}))


def test_pool_binding_selects_only_the_tenants_namespace(dgx):
    binding = dgx[("ValidatingAdmissionPolicyBinding", "gpucluster-pools-ai-inference")]
    assert binding["spec"]["policyName"] == "gpucluster-pools-ai-inference"
    assert binding["spec"]["validationActions"] == ["Deny"]
    [expression] = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert expression == {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ai-inference"]}
    assert ("ValidatingAdmissionPolicy", "gpucluster-pools-ai-training") not in dgx  # all pools: no policy


# --- device requests around the device plugin ------------------------------------------------------------


def with_env(body: dict, field: str = "containers", **env: str) -> dict:
    body = copy.deepcopy(body)
    body["spec"].setdefault(field, [{"name": "extra", "image": "busybox"}])
    body["spec"][field][0]["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return body


def test_setting_nvidia_visible_devices_is_refused(device_policy):
    assert denials(device_policy, pod(gpu=None)) == []
    assert denials(device_policy, with_env(pod(gpu=None), HOME="/tmp")) == []
    [message] = denials(device_policy, with_env(pod(gpu=None), NVIDIA_VISIBLE_DEVICES="all"))
    assert "NVIDIA_VISIBLE_DEVICES" in message
    assert denials(device_policy, with_env(pod(gpu=None), "initContainers", NVIDIA_VISIBLE_DEVICES="0,1"))


def test_ephemeral_containers_are_covered(device_policy):
    running = pod(gpu=None)
    debugged = with_env(running, "ephemeralContainers", NVIDIA_VISIBLE_DEVICES="all")
    assert denials(device_policy, debugged, operation="UPDATE", old=running, sub_resource="ephemeralcontainers")
    plain_debug = with_env(running, "ephemeralContainers", TERM="xterm")
    assert (
        denials(device_policy, plain_debug, operation="UPDATE", old=running, sub_resource="ephemeralcontainers") == []
    )


@pytest.mark.parametrize(
    ("mount_path", "refused"),
    [
        ("/var/run/nvidia-container-devices/all", True),
        ("/run/nvidia-container-devices", True),
        ("/var/run/secrets/data", False),
    ],
)
def test_device_list_mounts_are_refused(device_policy, mount_path, refused):
    body = pod(gpu=None, volumes=[{"name": "v", "emptyDir": {}}])
    body["spec"]["containers"][0]["volumeMounts"] = [{"name": "v", "mountPath": mount_path}]
    assert bool(denials(device_policy, body)) is refused


def test_cdi_annotations_are_refused(device_policy):
    body = pod(gpu=None)
    body["metadata"]["annotations"] = {"cdi.k8s.io/gpus": "nvidia.com/gpu=all"}
    assert denials(device_policy, body)
    body["metadata"]["annotations"] = {"prometheus.io/scrape": "true"}
    assert denials(device_policy, body) == []


def test_device_policy_binds_every_workload_namespace(dgx):
    binding = dgx[("ValidatingAdmissionPolicyBinding", NO_DEVICE_REQUESTS)]
    [expression] = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert expression["values"] == ["ai-training", "ai-inference"]


# --- Kubernetes versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.30.0", "1.33.0", "1.37.0"])
@pytest.mark.parametrize("stack", STACKS)
def test_policies_pass_the_strict_kubernetes_schema(stack, version):
    for obj in admission_policies(make_plan(spec_of(stack))):
        kubernetes_validate.validate(obj, version, strict=True)


def test_below_1_30_no_policies_are_rendered():
    raw = spec_of("eks-t4").model_dump(mode="json")
    raw["kubernetes"]["version"] = "1.29"
    assert admission_policies(make_plan(ClusterSpec.model_validate(raw))) == []


# --- the node side: the container toolkit ignores NVIDIA_VISIBLE_DEVICES from unprivileged containers ------


def operator_env(spec: ClusterSpec, section: str) -> dict[str, str]:
    values = operator_values(make_plan(spec))
    return {e["name"]: e["value"] for e in values[section].get("env", [])}


def test_operator_toolkit_refuses_the_variable_from_unprivileged_containers():
    raw = spec_of("onprem-dgx").model_dump(mode="json")
    raw["gpu_stack"]["toolkit"] = "operator"
    env = operator_env(ClusterSpec.model_validate(raw), "toolkit")
    assert env["ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED"] == "false"
    assert env["ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS"] == "true"
    # ... and the device plugin hands over its allocation the way the toolkit still accepts
    assert operator_env(ClusterSpec.model_validate(raw), "devicePlugin") == {"DEVICE_LIST_STRATEGY": "volume-mounts"}


def test_with_cdi_the_operator_keeps_its_cdi_device_list_strategy():
    assert "DEVICE_LIST_STRATEGY" not in operator_env(spec_of("onprem-k3s"), "devicePlugin")


def test_toolkit_settings_are_a_plan_fact_for_host_toolkits():
    assert CONTAINER_TOOLKIT_SETTINGS["accept-nvidia-visible-devices-envvar-when-unprivileged"] is False
    assert CONTAINER_TOOLKIT_SETTINGS["accept-nvidia-visible-devices-as-volume-mounts"] is True
    assert make_plan(spec_of("onprem-dgx")).host_container_toolkit_config == CONTAINER_TOOLKIT_SETTINGS
    raw = spec_of("onprem-dgx").model_dump(mode="json")
    raw["gpu_stack"]["toolkit"] = "operator"
    assert make_plan(ClusterSpec.model_validate(raw)).host_container_toolkit_config == {}
