"""The fabric's device plugins: the EFA device plugin release and the network operator with its NicClusterPolicy."""

from __future__ import annotations

import json

import pytest
import yaml

from gpucluster.plan import POOL_LABEL, make_plan
from gpucluster.render import render
from gpucluster.render.fabric import (
    EFA_PLUGIN_VERSION,
    NETWORK_OPERATOR_VERSION,
    efa_device_plugin_release,
    ipoib_networks,
    network_operator_release,
    nic_cluster_policy,
)
from gpucluster.render.nccl import multi_node_example, nccl_config_maps, nccl_test_example
from gpucluster.spec import NETWORK_OPERATOR_NAMESPACE
from gpucluster.stackfile import SpecError, parse_spec
from gpucluster.validate import validate_output
from stacks import REFERENCE, STACKS, spec_of

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "charts").is_dir(), reason=f"upstream reference data not found at {REFERENCE}"
)


def releases_of(stack: str, **sections) -> dict:
    return {release.name: release for release in render(spec_of(stack, **sections)).releases}


# --- EFA -------------------------------------------------------------------------------------------------


def test_efa_pools_get_the_efa_device_plugin_on_exactly_those_pools():
    # Without the plugin vpc.amazonaws.com/efa is never advertised and the EFA example stays Pending.
    [release] = efa_device_plugin_release(make_plan(spec_of("eks-h100")))
    assert (release.chart, release.repository, release.version) == (
        "aws-efa-k8s-device-plugin",
        "https://aws.github.io/eks-charts",
        "v0.5.30",
    )
    assert release.namespace == "kube-system"
    assert release.values["supportedInstanceLabels"] == {"keys": [POOL_LABEL], "values": ["h100-efa"]}
    assert release.values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_efa_plugin_tolerates_every_taint_of_every_efa_pool():
    h100, a100 = spec_of("eks-h100").model_dump()["node_pools"]
    h100["taints"] = [{"key": "dedicated", "value": "training", "effect": "NoExecute"}]
    second = {**h100, "name": "h100-efa-b", "taints": [{"key": "team", "value": "llm", "effect": "NoSchedule"}]}
    [release] = efa_device_plugin_release(make_plan(spec_of("eks-h100", node_pools=[h100, second, a100])))
    assert release.values["supportedInstanceLabels"]["values"] == ["h100-efa", "h100-efa-b"]
    assert {(t["key"], t["effect"]) for t in release.values["tolerations"]} == {
        ("nvidia.com/gpu", "NoSchedule"),
        ("dedicated", "NoExecute"),
        ("team", "NoSchedule"),
    }


@pytest.mark.parametrize("stack", ["eks-t4", "onprem-dgx", "onprem-kubeadm", "hybrid-crio", "onprem-k3s"])
def test_no_efa_plugin_without_efa_pools(stack):
    assert "aws-efa-k8s-device-plugin" not in releases_of(stack)


@needs_reference
def test_efa_plugin_pin_matches_the_reference():
    readme = (REFERENCE / "README.md").read_text()
    assert f"aws-efa-k8s-device-plugin: chart {EFA_PLUGIN_VERSION}," in readme


# --- InfiniBand --------------------------------------------------------------------------------------------


def test_infiniband_gets_the_network_operator_with_the_gpu_operators_nfd():
    [release] = network_operator_release(make_plan(spec_of("onprem-dgx")))
    assert (release.chart, release.repository, release.version) == (
        "network-operator",
        "https://helm.ngc.nvidia.com/nvidia",
        "26.7.0-rc.1",
    )
    assert release.namespace == NETWORK_OPERATOR_NAMESPACE
    assert release.values == {"nfd": {"enabled": False, "deployNodeFeatureRules": True}}
    namespaces = {ns["metadata"]["name"]: ns for ns in render(spec_of("onprem-dgx")).manifests["00-namespaces"]}
    assert namespaces[NETWORK_OPERATOR_NAMESPACE]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "privileged"
    )


@needs_reference
def test_network_operator_pin_matches_the_reference():
    values = (REFERENCE / "charts" / "network-operator.values.yaml").read_text()
    readme = (REFERENCE / "README.md").read_text()
    assert f"network-operator: chart {NETWORK_OPERATOR_VERSION}," in readme
    assert f"network-operator-v{NETWORK_OPERATOR_VERSION}" in values
    [policy] = nic_cluster_policy(make_plan(spec_of("onprem-dgx")))
    plugin = policy["spec"]["rdmaSharedDevicePlugin"]
    assert f"{plugin['repository']}/" in values, "the policy's images come from the chart's registry"
    assert plugin["version"] == f"network-operator-v{NETWORK_OPERATOR_VERSION}"


def test_nic_cluster_policy_exposes_the_rdma_resource_on_the_infiniband_pools():
    plan = make_plan(spec_of("onprem-dgx"))
    [policy] = nic_cluster_policy(plan)
    spec = policy["spec"]
    [term] = spec["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {
        "matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": ["dgx-train", "dgx-mig", "dgx-dev"]}]
    }
    assert {(t["key"], t["effect"]) for t in spec["tolerations"]} == {("nvidia.com/gpu", "NoSchedule")}
    [resource] = json.loads(spec["rdmaSharedDevicePlugin"]["config"])["configList"]
    assert resource["resourceName"] == "ib"  # advertised as rdma/ib, the resource the examples request
    assert resource["selectors"] == {"vendors": ["15b3"], "linkTypes": ["infiniband"]}
    assert "ofedDriver" not in spec, "the InfiniBand stack is the host's"


def test_rdma_resource_name_follows_the_spec():
    network = {**spec_of("onprem-dgx").network.model_dump(), "rdma_resource": "rdma/hca_shared"}
    [policy] = nic_cluster_policy(make_plan(spec_of("onprem-dgx", network=network)))
    [resource] = json.loads(policy["spec"]["rdmaSharedDevicePlugin"]["config"])["configList"]
    assert resource["resourceName"] == "hca_shared"


@pytest.mark.parametrize("stack", [s for s in STACKS if s != "onprem-dgx"])
def test_no_network_operator_off_infiniband(stack):
    plan = make_plan(spec_of(stack))
    assert network_operator_release(plan) == [] and nic_cluster_policy(plan) == []
    assert "custom-resources/10-network-operator.yaml" not in render(spec_of(stack)).files()


def test_nic_cluster_policy_is_applied_after_the_releases():
    files = render(spec_of("onprem-dgx")).files()
    [policy] = yaml.safe_load_all(files["custom-resources/10-network-operator.yaml"])
    assert policy["kind"] == "NicClusterPolicy"
    assert not any("NicClusterPolicy" in content.decode() for path, content in files.items() if "manifests/" in path)


def test_infiniband_on_kubernetes_older_than_the_operator_allows_is_refused(load_raw):
    raw = load_raw("onprem-dgx")
    raw["kubernetes"]["version"] = "1.31"
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test.yaml")
    assert [p.path for p in caught.value.problems] == [("kubernetes", "version")]
    assert "1.32" in caught.value.problems[0].message


@needs_reference
def test_fabric_objects_pass_their_crds_and_chart_values(tmp_path):
    from gpucluster.output import write_tree

    for stack in ("onprem-dgx", "eks-h100"):
        out = tmp_path / stack
        write_tree(render(spec_of(stack)).files(), out)
        report = validate_output(out, "1.33", REFERENCE / "crds", REFERENCE / "charts")
        fabric = [
            c
            for c in report.checks
            if c.subject in ("network-operator", "aws-efa-k8s-device-plugin") or "NicClusterPolicy" in c.subject
        ]
        assert fabric and all(c.status == "ok" for c in fabric), fabric


# --- the IPoIB secondary network ---------------------------------------------------------------------------

IPOIB = {"master": "ib0", "subnet": "10.200.0.0/16", "per_node_block_size": 32}


def with_ipoib(**ipoib):
    network = {**spec_of("onprem-dgx").network.model_dump(mode="json"), "ipoib": {**IPOIB, **ipoib}}
    return spec_of("onprem-dgx", network=network)


def test_ipoib_network_reaches_pods_on_infiniband_pools():
    spec = with_ipoib()
    plan = make_plan(spec)
    [policy] = nic_cluster_policy(plan)
    assert set(policy["spec"]["secondaryNetwork"]) == {"cniPlugins", "multus", "ipoib"}
    assert policy["spec"]["nvIpam"]["enableWebhook"] is False
    objects = {(o["kind"], o["metadata"]["name"]): o for o in ipoib_networks(plan)}
    pool = objects[("IPPool", "ipoib")]
    assert pool["metadata"]["namespace"] == NETWORK_OPERATOR_NAMESPACE
    assert (pool["spec"]["subnet"], pool["spec"]["perNodeBlockSize"]) == ("10.200.0.0/16", 32)
    assert (
        pool["spec"]["nodeSelector"] == policy["spec"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    )
    for namespace in ("ai-training", "ai-inference"):
        network = objects[("IPoIBNetwork", f"ipoib-{namespace}")]["spec"]
        assert network["networkNamespace"] == namespace and network["master"] == "ib0"
        assert json.loads(network["ipam"]) == {"type": "nv-ipam", "poolName": "ipoib"}
    # NCCL bootstraps on the pod's IPoIB interface, which the examples attach under that name.
    for cm in nccl_config_maps(plan):
        assert cm["data"]["NCCL_SOCKET_IFNAME"] == "net1"
    for job in [o for o in [*nccl_test_example(plan), *multi_node_example(plan)] if o["kind"] == "Job"]:
        namespace = job["metadata"]["namespace"]
        annotation = job["spec"]["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
        assert json.loads(annotation) == [{"name": f"ipoib-{namespace}", "interface": "net1"}]


def test_without_ipoib_pods_attach_no_network():
    plan = make_plan(spec_of("onprem-dgx"))
    assert ipoib_networks(plan) == []
    assert "secondaryNetwork" not in nic_cluster_policy(plan)[0]["spec"]
    for job in [o for o in [*nccl_test_example(plan), *multi_node_example(plan)] if o["kind"] == "Job"]:
        assert "annotations" not in job["spec"]["template"]["metadata"]


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"fabric": "ethernet", "ib_hcas": []}, ("network", "ipoib"), "infiniband"),
        ({"ipoib": {**IPOIB, "subnet": "10.244.128.0/17"}}, ("network", "ipoib", "subnet"), "pod_cidr"),
        ({"ipoib": {**IPOIB, "subnet": "10.200.0.0/26"}}, ("network", "ipoib", "subnet"), "too small"),
    ],
)
def test_ipoib_rules(load_raw, change, path, words):
    raw = load_raw("onprem-dgx")
    raw["network"] = {**raw["network"], "ipoib": IPOIB, **change}
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test.yaml")
    assert [p.path for p in caught.value.problems] == [path]
    assert words in caught.value.problems[0].message


@needs_reference
def test_ipoib_objects_pass_their_crds_and_only_the_ip_pool_is_unchecked(tmp_path):
    from gpucluster.output import write_tree

    write_tree(render(with_ipoib()).files(), tmp_path)
    report = validate_output(tmp_path, "1.33", REFERENCE / "crds", REFERENCE / "charts")
    assert not report.failed, [c for c in report.checks if c.status == "fail"]
    [unchecked] = report.unchecked
    assert unchecked.subject == f"IPPool {NETWORK_OPERATOR_NAMESPACE}/ipoib", "nv-ipam's CRD is not in the reference"
    checked = {c.subject: c.status for c in report.checks}
    assert checked["IPoIBNetwork ipoib-ai-training"] == checked["NicClusterPolicy nic-cluster-policy"] == "ok"
