import kubernetes_validate
import pytest
from netpol import Ip, Pod, egress_allowed

from gpucluster.plan import make_plan
from gpucluster.render.tenancy import (
    GPU_OPERATOR_POD_LABELS,
    NFD_MASTER_POD_LABELS,
    disruption_budgets,
    double_quantity,
    network_policies,
    tenant_objects,
)
from gpucluster.spec import (
    GPU_OPERATOR_NAMESPACE,
    INGRESS_NAMESPACE,
    MONITORING_NAMESPACE,
    ClusterSpec,
)
from stacks import STACKS, spec_of


def with_tenant(stack: str, **fields) -> ClusterSpec:
    """The stack with its first tenant changed."""
    tenants = spec_of(stack).model_dump()["tenants"]
    tenants[0].update(fields)
    return spec_of(stack, tenants=tenants)


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def policies_by_namespace(spec: ClusterSpec) -> dict[str, dict[str, dict]]:
    result: dict[str, dict[str, dict]] = {}
    for policy in network_policies(make_plan(spec)):
        result.setdefault(policy["metadata"]["namespace"], {})[policy["metadata"]["name"]] = policy
    return result


@pytest.mark.parametrize("stack", STACKS)
def test_objects_pass_the_strict_kubernetes_schema(stack):
    plan = make_plan(spec_of(stack))
    for obj in tenant_objects(plan) + network_policies(plan) + disruption_budgets(plan):
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


@pytest.mark.parametrize(
    ("quantity", "doubled"),
    [("40", "80"), ("1536", "3072"), ("1.5", "3"), ("0.25", "0.5"), ("500m", "1"), ("250m", "500m"), ("1500m", "3")],
)
def test_double_quantity(quantity, doubled):
    assert double_quantity(quantity) == doubled


@pytest.mark.parametrize(("cpu", "limit"), [("500m", "1"), ("1.5", "3"), ("96", "192")])
def test_quota_follows_the_tenant(cpu, limit):
    spec = with_tenant("eks-t4", gpus=3, cpu=cpu, memory="96Gi", default_cpu="250m")  # defaults fit the quota
    [quota] = by_kind(tenant_objects(make_plan(spec)), "ResourceQuota")
    assert quota["metadata"] == {
        "name": "gpu-quota",
        "namespace": "gpu-orchestrator",
        "labels": {"app.kubernetes.io/managed-by": "gpucluster"},
    }
    assert quota["spec"]["hard"] == {
        "requests.nvidia.com/gpu": "3",
        "requests.cpu": cpu,
        "limits.cpu": limit,
        "requests.memory": "96Gi",
        "limits.memory": "96Gi",
    }


@pytest.mark.parametrize("stack", STACKS)
def test_quota_covers_every_gpu_resource_the_cluster_advertises(stack):
    plan = make_plan(spec_of(stack))
    for quota in by_kind(tenant_objects(plan), "ResourceQuota"):
        quoted = {key.removeprefix("requests.") for key in quota["spec"]["hard"] if key.startswith("requests.")}
        assert set(plan.gpu_resources) <= quoted, quota["metadata"]["namespace"]


def test_mig_slices_are_quoted_zero_unless_granted():
    tenants = spec_of("eks-h100").model_dump()["tenants"]
    tenants[1]["resources"] = {"nvidia.com/mig-3g.20gb": 4, "nvidia.com/mig-1g.5gb": 8}
    quotas = {
        q["metadata"]["namespace"]: q["spec"]["hard"]
        for q in by_kind(tenant_objects(make_plan(spec_of("eks-h100", tenants=tenants))), "ResourceQuota")
    }
    assert quotas["llm-training"]["requests.nvidia.com/mig-1g.5gb"] == "0"
    assert quotas["llm-training"]["requests.nvidia.com/mig-3g.20gb"] == "0"
    assert quotas["research"]["requests.nvidia.com/mig-1g.5gb"] == "8"
    assert quotas["research"]["requests.nvidia.com/mig-3g.20gb"] == "4"
    assert quotas["research"]["requests.nvidia.com/gpu"] == "32"


def test_renamed_time_sliced_gpus_are_quoted():
    raw = spec_of("onprem-dgx").model_dump(mode="json")
    raw["node_pools"][2]["sharing"]["rename_by_default"] = True
    raw["tenants"][1]["resources"] = {"nvidia.com/gpu.shared": 6}
    raw["tenancy"] = {"mode": "quota"}  # Kueue borrowing would quote the cohort's total
    quotas = {
        q["metadata"]["namespace"]: q["spec"]["hard"]
        for q in by_kind(tenant_objects(make_plan(ClusterSpec.model_validate(raw))), "ResourceQuota")
    }
    assert quotas["ai-training"]["requests.nvidia.com/gpu.shared"] == "0"
    assert quotas["ai-inference"]["requests.nvidia.com/gpu.shared"] == "6"


def test_quota_has_no_limits_for_extended_resources():
    for quota in by_kind(tenant_objects(make_plan(spec_of("eks-h100"))), "ResourceQuota"):
        assert not [key for key in quota["spec"]["hard"] if key.startswith("limits.") and "/" in key]


def test_every_tenant_gets_its_objects_in_its_namespace():
    spec = spec_of("onprem-dgx")
    objects = tenant_objects(make_plan(spec))
    for tenant in spec.tenants:
        kinds = sorted(obj["kind"] for obj in objects if obj["metadata"]["namespace"] == tenant.ns)
        assert kinds == ["LimitRange", "ResourceQuota", "Role", "RoleBinding"]


def test_limit_range_defaults_follow_the_tenant():
    spec = with_tenant("eks-t4", default_cpu="2", default_memory="12Gi")
    [limit_range] = by_kind(tenant_objects(make_plan(spec)), "LimitRange")
    [container] = limit_range["spec"]["limits"]
    assert container["type"] == "Container"
    assert container["default"] == container["defaultRequest"] == {"cpu": "2", "memory": "12Gi"}


def test_role_binding_subjects_match_the_tenant():
    spec = with_tenant("onprem-dgx", groups=["data-scientists", "interns"], users=["alice"])
    bindings = by_kind(tenant_objects(make_plan(spec)), "RoleBinding")
    binding = next(b for b in bindings if b["metadata"]["namespace"] == "ai-training")
    assert binding["subjects"] == [
        {"kind": "Group", "name": "data-scientists", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "Group", "name": "interns", "apiGroup": "rbac.authorization.k8s.io"},
        {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
    ]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gpu-workloads"}


def test_role_is_least_privilege():
    [role] = by_kind(tenant_objects(make_plan(spec_of("eks-t4"))), "Role")
    granted = {
        (group, resource): rule["verbs"]
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert ("batch", "jobs") in granted and "create" in granted[("batch", "jobs")]
    assert ("", "pods/log") in granted
    for forbidden in ["secrets", "pods/exec", "pods/attach", "pods/portforward", "serviceaccounts", "rolebindings"]:
        assert not any(resource == forbidden for _, resource in granted), forbidden
    assert "*" not in {verb for verbs in granted.values() for verb in verbs}
    assert set(granted[("", "events")]) == {"get", "list", "watch"}


def test_role_manages_ingresses_routes_and_autoscalers():
    [role] = by_kind(tenant_objects(make_plan(spec_of("eks-t4"))), "Role")
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    manage = {"get", "list", "watch", "create", "update", "patch", "delete"}
    assert granted[("networking.k8s.io", "ingresses")] == manage
    assert granted[("gateway.networking.k8s.io", "httproutes")] == manage
    assert granted[("autoscaling", "horizontalpodautoscalers")] == manage


@pytest.mark.parametrize("stack", STACKS)
def test_default_deny_in_every_workload_namespace(stack):
    spec = spec_of(stack)
    policies = policies_by_namespace(spec)
    assert set(policies) == set(make_plan(spec).workload_namespaces)
    for namespace, named in policies.items():
        deny = named["default-deny"]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, namespace
        assert {"allow-dns", "allow-same-namespace"} <= set(named)


def test_without_tenants_the_default_namespace_is_isolated():
    policies = policies_by_namespace(spec_of("eks-t4", tenants=[], autoscaling={}))
    assert list(policies) == ["default"]
    assert "default-deny" in policies["default"]


def test_dns_egress_reaches_only_cluster_dns():
    rule = policies_by_namespace(spec_of("eks-h100"))["research"]["allow-dns"]["spec"]
    assert rule["policyTypes"] == ["Egress"]
    [egress] = rule["egress"]
    assert egress["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert sorted((p["protocol"], p["port"]) for p in egress["ports"]) == [("TCP", 53), ("UDP", 53)]


def test_pods_of_a_namespace_reach_each_other_both_ways():
    spec = policies_by_namespace(spec_of("onprem-dgx"))["ai-training"]["allow-same-namespace"]["spec"]
    assert spec["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert spec["egress"] == [{"to": [{"podSelector": {}}]}]


def test_ingress_controller_and_monitoring_allowed_only_when_present():
    with_nginx = policies_by_namespace(spec_of("eks-t4"))["gpu-orchestrator"]
    source = with_nginx["allow-ingress-controller"]["spec"]["ingress"][0]["from"][0]
    assert source == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": INGRESS_NAMESPACE}}}
    scraper = with_nginx["allow-monitoring"]["spec"]["ingress"][0]["from"][0]
    assert scraper == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}}}

    plain = policies_by_namespace(
        spec_of("eks-t4", ingress={"controller": "none"}, monitoring={"enabled": False}, autoscaling={})
    )
    assert "allow-ingress-controller" not in plain["gpu-orchestrator"]
    assert "allow-monitoring" not in plain["gpu-orchestrator"]


def test_disruption_budgets_never_block_a_drain():
    budgets = disruption_budgets(make_plan(spec_of("eks-t4")))
    selectors = {b["metadata"]["name"]: b["spec"]["selector"]["matchLabels"] for b in budgets}
    assert selectors == {"gpu-operator": GPU_OPERATOR_POD_LABELS, "nfd-master": NFD_MASTER_POD_LABELS}
    for budget in budgets:
        assert budget["metadata"]["namespace"] == GPU_OPERATOR_NAMESPACE
        assert budget["spec"]["maxUnavailable"] == 1
        assert "minAvailable" not in budget["spec"]


def test_no_second_budget_for_the_ingress_controller():
    # Its chart renders one (podDisruptionBudget.enabled); two budgets over the same pods make evictions fail.
    budgets = disruption_budgets(make_plan(spec_of("eks-t4")))
    assert not [b for b in budgets if b["metadata"]["namespace"] == INGRESS_NAMESPACE]


# --- egress ----------------------------------------------------------------------------------------------

S3 = Ip("52.216.8.1")
DNS = Pod("kube-system", {"k8s-app": "kube-dns"})


def egress_of(spec: ClusterSpec, namespace: str) -> list[dict]:
    return [p for p in network_policies(make_plan(spec)) if p["metadata"]["namespace"] == namespace]


def test_default_egress_reaches_https_dns_monitoring_and_the_api_server():
    policies = egress_of(spec_of("onprem-dgx"), "ai-training")
    assert egress_allowed(policies, S3, 443)
    assert not egress_allowed(policies, S3, 80)
    assert egress_allowed(policies, Ip("192.168.1.11"), 6443)  # kube-apiserver on a control-plane host
    assert egress_allowed(policies, DNS, 53, "UDP")
    assert egress_allowed(policies, Pod("monitoring", {"app": "pushgateway"}), 9091)
    assert egress_allowed(policies, Pod("ai-training"), 29500)
    assert not egress_allowed(policies, Pod("ai-inference"), 8000)
    assert not egress_allowed(policies, Ip("192.168.1.21"), 22)


def test_on_eks_the_api_server_is_reached_in_the_vpc():
    policies = egress_of(with_tenant("eks-t4", egress=["10.99.0.0/16"]), "gpu-orchestrator")
    assert egress_allowed(policies, Ip("10.20.3.7"), 443)  # vpc_cidr 10.20.0.0/16
    assert not egress_allowed(policies, S3, 443)


def test_cluster_only_reaches_every_pod_and_nothing_outside():
    policies = egress_of(with_tenant("onprem-dgx", egress="cluster-only"), "ai-training")
    assert egress_allowed(policies, Pod("ai-inference"), 8000)
    assert egress_allowed(policies, Pod("model-registry", {"app": "registry"}), 5000)
    assert egress_allowed(policies, Ip("192.168.1.12"), 6443)
    assert not egress_allowed(policies, S3, 443)


def test_internet_reaches_everything():
    policies = egress_of(with_tenant("onprem-dgx", egress="internet"), "ai-training")
    assert egress_allowed(policies, Ip("1.1.1.1"), 22)
    assert egress_allowed(policies, S3, 80)


def test_a_cidr_list_reaches_those_networks_on_every_port():
    policies = egress_of(with_tenant("onprem-dgx", egress=["10.50.0.0/16", "172.16.4.0/24"]), "ai-training")
    assert egress_allowed(policies, Ip("10.50.1.9"), 9000)
    assert egress_allowed(policies, Ip("172.16.4.200"), 2049, "UDP")
    assert not egress_allowed(policies, Ip("172.16.5.1"), 2049)
    assert not egress_allowed(policies, S3, 443)


def test_an_empty_cidr_list_adds_nothing():
    policies = egress_of(with_tenant("onprem-dgx", egress=[]), "ai-training")
    assert not egress_allowed(policies, S3, 443)
    assert not egress_allowed(policies, Ip("10.0.0.1"), 80)
    assert egress_allowed(policies, Ip("192.168.1.11"), 6443)


def test_without_tenants_the_default_namespace_gets_the_default_egress():
    policies = egress_of(spec_of("onprem-dgx", tenants=[], tenancy={"mode": "quota"}), "default")
    assert egress_allowed(policies, S3, 443)
    assert not egress_allowed(policies, S3, 8080)
