import copy

import kubernetes_validate
import pytest

from gpucluster.plan import NVIDIA_PEERMEM, POOL_LABEL, make_plan
from gpucluster.render import render
from gpucluster.render.gpu import operator_values
from gpucluster.render.nccl import (
    EFA_RESOURCE,
    efa_env_without_request,
    example_nodes,
    ib_env_without_request,
    multi_node_example,
    multi_node_job_name,
    nccl_config_maps,
    nccl_test_example,
)
from gpucluster.spec import ClusterSpec
from stacks import STACKS, spec_of


def env_of(spec: ClusterSpec) -> dict[tuple[str, str], dict[str, str]]:
    """(namespace, ConfigMap name) -> NCCL environment."""
    return {
        (cm["metadata"]["namespace"], cm["metadata"]["name"]): cm["data"] for cm in nccl_config_maps(make_plan(spec))
    }


def pool_env(spec: ClusterSpec, pool: str) -> dict[str, str]:
    """The one environment every namespace gets for a pool."""
    [env] = {tuple(sorted(e.items())) for (_, name), e in env_of(spec).items() if name == f"nccl-env-{pool}"}
    return dict(env)


def container_of(job: dict) -> dict:
    [container] = job["spec"]["template"]["spec"]["containers"]
    return container


def rendered(stack: str) -> tuple[list[dict], list[dict]]:
    plan = make_plan(spec_of(stack))
    return nccl_config_maps(plan), nccl_test_example(plan)


@pytest.mark.parametrize("stack", STACKS)
def test_objects_pass_the_strict_kubernetes_schema(stack):
    config_maps, example = rendered(stack)
    assert example, "every reference stack has a pool with whole GPUs"
    for obj in config_maps + example:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_one_config_map_per_workload_namespace_and_pool(stack):
    plan = make_plan(spec_of(stack))
    config_maps = nccl_config_maps(plan)
    expected = [
        (ns, f"nccl-env-{pool.name}") for ns in plan.workload_namespaces for pool in plan.pools_for_namespace(ns)
    ]
    assert [(cm["metadata"]["namespace"], cm["metadata"]["name"]) for cm in config_maps] == expected
    for cm in config_maps:
        assert all(isinstance(value, str) for value in cm["data"].values())
        assert cm["data"]["NCCL_DEBUG"] == "WARN"


def test_a_tenant_gets_the_config_maps_of_its_pools_only():
    names = {}
    for namespace, name in env_of(spec_of("onprem-dgx")):
        names.setdefault(namespace, []).append(name)
    assert names == {
        "ai-training": ["nccl-env-dgx-train", "nccl-env-dgx-mig", "nccl-env-dgx-dev"],
        "ai-inference": ["nccl-env-dgx-mig", "nccl-env-dgx-dev"],  # pools: [dgx-mig, dgx-dev]
    }


def test_example_runs_in_a_namespace_allowed_on_its_pool():
    raw = spec_of("onprem-dgx").model_dump(mode="json")
    raw["tenants"][0]["pools"] = ["dgx-mig"]
    raw["tenants"][1]["pools"] = None
    [job] = nccl_test_example(make_plan(ClusterSpec.model_validate(raw)))
    assert job["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL] == "dgx-train"
    assert job["metadata"]["namespace"] == "ai-inference"


def test_ethernet_uses_sockets():
    assert pool_env(spec_of("eks-t4"), "t4-inference") == {
        "NCCL_DEBUG": "WARN",
        "NCCL_IB_DISABLE": "1",
        "NCCL_SOCKET_IFNAME": "eth0",
    }


def test_infiniband_matches_the_listed_hcas_exactly_and_bootstraps_on_the_pod_interface():
    # Without the leading '=', NCCL_IB_HCA=mlx5_1 would also take mlx5_10; ib0 is a host interface a Calico
    # pod does not have ("no socket interface found").
    spec = spec_of("onprem-dgx")
    assert spec.network.socket_ifname == "ib0"
    for env in env_of(spec).values():
        assert env == {
            "NCCL_DEBUG": "WARN",
            "NCCL_IB_DISABLE": "0",
            "NCCL_IB_HCA": "=mlx5_0,mlx5_1,mlx5_2,mlx5_3",
            "NCCL_SOCKET_IFNAME": "eth0",
        }


def test_host_side_nccl_conf_uses_the_host_interface():
    plan = make_plan(spec_of("onprem-dgx"))
    assert plan.host_nccl_conf == {
        "NCCL_IB_DISABLE": "0",
        "NCCL_IB_HCA": "=mlx5_0,mlx5_1,mlx5_2,mlx5_3",
        "NCCL_SOCKET_IFNAME": "ib0",
    }
    assert make_plan(spec_of("eks-h100")).host_nccl_conf == {}


def test_infiniband_without_hcas_takes_every_mlx5_port():
    network = {**spec_of("onprem-dgx").network.model_dump(), "ib_hcas": []}
    for env in env_of(spec_of("onprem-dgx", network=network)).values():
        assert env["NCCL_IB_HCA"] == "mlx5"


@pytest.mark.parametrize("hca", ["=mlx5_0", "mlx5_0,mlx5_1", "^mlx5_2", ""])
def test_hca_names_are_plain_device_names(hca):
    network = {**spec_of("onprem-dgx").network.model_dump(), "ib_hcas": [hca]}
    with pytest.raises(ValueError, match="ib_hcas"):
        spec_of("onprem-dgx", network=network)


def test_efa_pool_selects_the_libfabric_provider_and_other_pools_do_not():
    # An EFA pool and a pool without EFA in the same namespaces: FI_PROVIDER=efa on the MIG pool (no EFA
    # devices) would break NCCL there.
    env = env_of(spec_of("eks-h100"))
    for namespace in ("llm-training", "research"):
        assert env[(namespace, "nccl-env-h100-efa")] == {
            "FI_EFA_USE_DEVICE_RDMA": "1",
            "FI_PROVIDER": "efa",
            "NCCL_DEBUG": "WARN",
            "NCCL_SOCKET_IFNAME": "eth0",
        }
        assert env[(namespace, "nccl-env-a100-mig")] == {
            "NCCL_DEBUG": "WARN",
            "NCCL_IB_DISABLE": "1",
            "NCCL_SOCKET_IFNAME": "eth0",
        }


def test_device_rdma_is_decided_per_pool():
    h100, a100 = spec_of("eks-h100").model_dump()["node_pools"]
    g5 = {**h100, "name": "g5-efa", "instance_types": ["g5.48xlarge"], "disk_gib": 200}
    spec = spec_of("eks-h100", node_pools=[h100, g5, a100])
    assert pool_env(spec, "g5-efa")["FI_PROVIDER"] == "efa"
    assert "FI_EFA_USE_DEVICE_RDMA" not in pool_env(spec, "g5-efa")
    assert pool_env(spec, "h100-efa")["FI_EFA_USE_DEVICE_RDMA"] == "1"


def test_gpudirect_rdma_with_the_host_driver_is_the_hosts_job():
    # driver.rdma does nothing when the operator's driver is off: the host must load nvidia-peermem.
    spec = spec_of("onprem-dgx")
    assert spec.gpu_stack.driver == "host"
    assert operator_values(make_plan(spec))["driver"]["rdma"] == {"enabled": False}
    assert make_plan(spec).host_modules == (NVIDIA_PEERMEM,)
    operator_driver = spec_of("onprem-dgx", gpu_stack={**spec.gpu_stack.model_dump(), "driver": "operator"})
    assert operator_values(make_plan(operator_driver))["driver"]["rdma"] == {"enabled": True, "useHostMofed": True}
    assert make_plan(operator_driver).host_modules == ()
    assert make_plan(spec_of("onprem-kubeadm")).host_modules == ()


@pytest.mark.parametrize(
    ("stack", "pool", "gpus", "efa"),
    [
        ("eks-h100", "h100-efa", "8", "32"),
        ("onprem-dgx", "dgx-train", "8", None),
        ("eks-t4", "t4-inference", "1", None),
    ],
)
def test_example_targets_the_biggest_whole_gpu_pool(stack, pool, gpus, efa):
    [job] = rendered(stack)[1]
    pod = job["spec"]["template"]["spec"]
    container = container_of(job)
    assert pod["nodeSelector"] == {POOL_LABEL: pool}
    assert container["command"] == ["all_reduce_perf", "-b", "8", "-e", "1G", "-f", "2", "-g", gpus]
    for section in ("requests", "limits"):
        assert container["resources"][section]["nvidia.com/gpu"] == gpus
        assert container["resources"][section].get(EFA_RESOURCE) == efa


@pytest.mark.parametrize("stack", STACKS)
def test_efa_requested_exactly_when_the_pool_has_efa(stack):
    plan = make_plan(spec_of(stack))
    [job] = nccl_test_example(plan)
    pool = next(p for p in plan.pools if p.name == job["spec"]["template"]["spec"]["nodeSelector"][POOL_LABEL])
    limits = container_of(job)["resources"]["limits"]
    assert (EFA_RESOURCE in limits) == (pool.efa_interfaces > 0)


def test_example_on_infiniband_requests_the_hcas():
    # Without the RDMA resource the pod has no HCA and NCCL_IB_DISABLE=0 silently falls back to sockets.
    config_maps, [job] = rendered("onprem-dgx")
    for section in ("requests", "limits"):
        assert container_of(job)["resources"][section]["rdma/ib"] == "1"
    assert ib_env_without_request([*config_maps, job]) == []
    network = {**spec_of("onprem-dgx").network.model_dump(), "rdma_resource": "rdma/hca_shared"}
    [job] = nccl_test_example(make_plan(spec_of("onprem-dgx", network=network)))
    assert container_of(job)["resources"]["limits"]["rdma/hca_shared"] == "1"


@pytest.mark.parametrize("stack", ["eks-t4", "eks-h100", "onprem-kubeadm"])
def test_example_off_infiniband_requests_no_hca(stack):
    [job] = rendered(stack)[1]
    assert not [r for r in container_of(job)["resources"]["limits"] if r.startswith("rdma/")]


def test_ib_guard_catches_an_example_without_the_hca_request():
    config_maps, [job] = rendered("onprem-dgx")
    mutated = copy.deepcopy(job)
    for section in container_of(mutated)["resources"].values():
        del section["rdma/ib"]
    assert ib_env_without_request([*config_maps, mutated]) == [
        "Job ai-training/nccl-allreduce-test container all-reduce"
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_example_is_wired_to_the_pool_and_locked_down(stack):
    plan = make_plan(spec_of(stack))
    [job] = nccl_test_example(plan)
    pod = job["spec"]["template"]["spec"]
    pool = next(p for p in plan.pools if p.name == pod["nodeSelector"][POOL_LABEL])
    container = container_of(job)
    assert pool in plan.pools_for_namespace(job["metadata"]["namespace"])
    assert {(t.key, t.effect) for t in pool.taints} <= {(t["key"], t["effect"]) for t in pod["tolerations"]}
    assert container["envFrom"] == [{"configMapRef": {"name": f"nccl-env-{pool.name}"}}]
    image, _, tag = container["image"].rpartition(":")
    assert image.startswith("nvcr.io/nvidia/") and tag and tag != "latest"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"], "baseline Pod Security refuses added capabilities"
    [shm] = [v for v in pod["volumes"] if v["name"] == "dshm"]
    assert shm["emptyDir"] == {"medium": "Memory"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_no_example_when_no_efa_pool_has_whole_gpus():
    # The H100 pool loses EFA and the only EFA pool is split with MIG: an example on the H100 pool would
    # set FI_PROVIDER=efa with no EFA device, so none is rendered.
    h100, a100 = spec_of("eks-h100").model_dump()["node_pools"]
    h100.update(efa=False)
    a100.update(efa=True, availability_zone="us-west-2b")
    assert nccl_test_example(make_plan(spec_of("eks-h100", node_pools=[h100, a100]))) == []


# --- the EFA guard ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_example_passes_the_fabric_guards(stack):
    config_maps, example = rendered(stack)
    assert efa_env_without_request(config_maps + example) == []
    assert ib_env_without_request(config_maps + example) == []


def test_guard_catches_an_example_without_the_efa_request():
    config_maps, [job] = rendered("eks-h100")
    mutated = copy.deepcopy(job)
    for section in container_of(mutated)["resources"].values():
        del section[EFA_RESOURCE]
    hits = efa_env_without_request([*config_maps, mutated])
    assert hits == ["Job llm-training/nccl-allreduce-test container all-reduce"]


def test_guard_needs_the_config_map_in_the_same_namespace():
    config_maps, [job] = rendered("eks-h100")
    mutated = copy.deepcopy(job)
    for section in container_of(mutated)["resources"].values():
        del section[EFA_RESOURCE]
    other_namespaces = [cm for cm in config_maps if cm["metadata"]["namespace"] != job["metadata"]["namespace"]]
    assert efa_env_without_request([*other_namespaces, mutated]) == []


def workload(kind: str, container: dict) -> dict:
    pod = {"containers": [container]}
    spec = {
        "Pod": pod,
        "Deployment": {"template": {"spec": pod}},
        "CronJob": {"jobTemplate": {"spec": {"template": {"spec": pod}}}},
    }[kind]
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w", "namespace": "team"}, "spec": spec}


@pytest.mark.parametrize("kind", ["Pod", "Deployment", "CronJob"])
def test_guard_reads_env_in_every_workload_kind(kind):
    container = {"name": "train", "env": [{"name": "FI_PROVIDER", "value": "efa"}]}
    assert efa_env_without_request([workload(kind, container)]) == [f"{kind} team/w container train"]
    container["resources"] = {"limits": {EFA_RESOURCE: "4"}}
    assert efa_env_without_request([workload(kind, container)]) == []


def test_guard_resolves_config_map_references():
    cm = {"kind": "ConfigMap", "metadata": {"name": "fabric", "namespace": "team"}, "data": {"FI_PROVIDER": "efa"}}
    key_ref = {"configMapKeyRef": {"name": "fabric", "key": "FI_PROVIDER"}}
    by_key = {"name": "a", "env": [{"name": "FI_PROVIDER", "valueFrom": key_ref}]}
    prefixed = {"name": "b", "envFrom": [{"configMapRef": {"name": "fabric"}, "prefix": "X_"}]}
    overridden = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "fabric"}}],
        "env": [{"name": "FI_PROVIDER", "value": "tcp"}],
    }
    objects = [cm] + [workload("Deployment", c) for c in (by_key, prefixed, overridden)]
    assert efa_env_without_request(objects) == ["Deployment team/w container a"]


# --- the multi-node all-reduce ---------------------------------------------------------------------------


def multi_node(stack: str, **sections) -> dict[tuple[str, str], dict]:
    """(kind, name) -> object of the multi-node example."""
    return {(o["kind"], o["metadata"]["name"]): o for o in multi_node_example(make_plan(spec_of(stack, **sections)))}


@pytest.mark.parametrize(
    ("stack", "pool", "nodes", "gpus", "devices"),
    [
        ("onprem-dgx", "dgx-train", 4, 8, {"rdma/ib": "1"}),
        ("eks-h100", "h100-efa", 2, 8, {EFA_RESOURCE: "32"}),
        ("onprem-kubeadm", "a30", 2, 1, {}),
        ("eks-t4", "t4-inference", 2, 1, {}),
    ],
)
def test_multi_node_example_is_an_indexed_job_across_the_pools_nodes(stack, pool, nodes, gpus, devices):
    objects = multi_node(stack)
    name = f"allreduce-{pool}"
    job, service, script = objects[("Job", name)], objects[("Service", name)], objects[("ConfigMap", "allreduce-bench")]
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", nodes, nodes)
    # Headless Service + subdomain: pod i is <job>-i.<service>; pod 0 hosts torchrun's rendezvous.
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert pod["subdomain"] == service["metadata"]["name"]
    [container] = pod["containers"]
    command = container["command"]
    assert command[0] == "torchrun"
    assert f"--nnodes={nodes}" in command and f"--nproc-per-node={gpus}" in command
    assert "--node-rank=$(JOB_COMPLETION_INDEX)" in command
    assert f"--master-addr={name}-0.{service['metadata']['name']}" in command
    # The script comes from the ConfigMap, mounted where the command runs it.
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "benchmark"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "benchmark"]
    assert volume["configMap"]["name"] == script["metadata"]["name"]
    [script_name] = script["data"]
    assert command[-1] == f"{mount['mountPath']}/{script_name}"
    assert "def bus_bandwidth" in script["data"][script_name]
    # Wired to the pool's fabric.
    assert pod["nodeSelector"] == {POOL_LABEL: pool}
    assert container["envFrom"] == [{"configMapRef": {"name": f"nccl-env-{pool}"}}]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": str(gpus), **devices}
    [pool_plan] = [p for p in make_plan(spec_of(stack)).pools if p.name == pool]
    assert {(t.key, t.effect) for t in pool_plan.taints} <= {(t["key"], t["effect"]) for t in pod["tolerations"]}
    assert job["metadata"]["namespace"] == script["metadata"]["namespace"] == service["metadata"]["namespace"]


@pytest.mark.parametrize("stack", STACKS)
def test_multi_node_example_passes_the_schema_and_the_fabric_guards(stack):
    plan = make_plan(spec_of(stack))
    objects = [*nccl_config_maps(plan), *multi_node_example(plan)]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
    assert efa_env_without_request(objects) == [] and ib_env_without_request(objects) == []


def test_single_node_mig_and_time_sliced_pools_get_no_multi_node_example():
    assert multi_node("onprem-k3s") == {}  # one machine
    assert "examples/nccl-multi-node.yaml" not in render(spec_of("onprem-k3s")).files(), "no empty example file"
    jobs = [name for kind, name in multi_node("onprem-dgx") if kind == "Job"]
    assert jobs == ["allreduce-dgx-train"]  # dgx-mig and dgx-dev are single hosts, and MIG / time-sliced
    h100, a100 = spec_of("eks-h100").model_dump()["node_pools"]
    assert [n for k, n in multi_node("eks-h100", node_pools=[a100, h100]) if k == "Job"] == ["allreduce-h100-efa"]


def test_multi_node_job_names_leave_room_for_the_pod_index():
    raw = spec_of("onprem-dgx").model_dump(mode="json")
    raw["node_pools"][0]["name"] = "p" * 60
    raw["tenants"][1]["pools"] = None
    [pool] = [p for p in make_plan(ClusterSpec.model_validate(raw)).pools if p.name == "p" * 60]
    name = multi_node_job_name(pool)
    assert len(f"{name}-{example_nodes(pool) - 1}") <= 63 and name.startswith("allreduce-ppp")


def test_multi_node_job_goes_through_the_tenants_kueue_queue():
    # Kueue admits all of an Indexed Job's pods at once: no node held while the others wait.
    assert spec_of("onprem-dgx").tenancy.mode == "kueue"
    job = multi_node("onprem-dgx")[("Job", "allreduce-dgx-train")]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "default"
    job = multi_node("eks-h100")[("Job", "allreduce-h100-efa")]
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]
