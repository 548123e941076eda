"""What keeps tenants apart: quotas, container defaults, RBAC, network isolation, and disruption budgets.

Tenant namespaces themselves come from ``gpucluster.render.namespaces``; this module fills them.
NetworkPolicies are enforced only by a CNI that implements them: Calico, Cilium, k3s (its embedded
policy controller), and the AWS VPC CNI once its network-policy agent is enabled. Plain flannel on
kubeadm ignores them.
"""

from __future__ import annotations

import re
from decimal import Decimal

from gpucluster.plan import Plan
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import GPU_OPERATOR_NAMESPACE, INGRESS_NAMESPACE, MONITORING_NAMESPACE, Tenant

RBAC_API_GROUP = "rbac.authorization.k8s.io"
WORKLOAD_ROLE = "gpu-workloads"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_EGRESS = Tenant.model_fields["egress"].default  # for ``default`` when there are no tenants
ANYWHERE = "0.0.0.0/0"
API_SERVER_PORT = 6443  # kube-apiserver --secure-port on kubeadm and k3s

_READ = ["get", "list", "watch"]
_MANAGE = [*_READ, "create", "update", "patch", "delete"]
# Least privilege for running GPU jobs. Missing on purpose: pods/exec and pods/attach (a shell in a pod
# has that pod's service account and mounts), secrets (tenants receive them from an administrator),
# and anything cluster-scoped.
_WORKLOAD_RULES = (
    ("", ["pods"], ["get", "list", "watch", "create", "delete"]),
    ("", ["pods/log"], ["get"]),
    ("", ["configmaps", "persistentvolumeclaims", "services"], _MANAGE),
    ("", ["events"], _READ),
    ("apps", ["deployments", "statefulsets"], _MANAGE),
    ("batch", ["cronjobs", "jobs"], _MANAGE),
    # Serving behind the ingress controller or a Gateway, scaled on GPU utilisation (seed 004).
    ("networking.k8s.io", ["ingresses"], _MANAGE),
    ("gateway.networking.k8s.io", ["httproutes"], _MANAGE),
    ("autoscaling", ["horizontalpodautoscalers"], _MANAGE),
)

_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>[A-Za-z]*)$")


def double_quantity(quantity: str) -> str:
    """Double a quantity, keeping its unit: '40' -> '80', '1.5' -> '3', '250m' -> '500m', '500m' -> '1'."""
    match = _QUANTITY.match(quantity)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {quantity!r}")
    value, suffix = Decimal(match["number"]) * 2, match["suffix"]
    if suffix == "m" and value % 1000 == 0:
        value, suffix = value / 1000, ""
    return f"{value.normalize():f}{suffix}"


# --- per tenant -------------------------------------------------------------------------------------


def tenant_objects(plan: Plan) -> list[dict]:
    """Per tenant, in its namespace: ResourceQuota, LimitRange, Role and RoleBinding."""
    objects: list[dict] = []
    for tenant in plan.spec.tenants:
        objects += [_quota(plan, tenant), _limit_range(tenant), _role(tenant), _role_binding(tenant)]
    return objects


def _quota(plan: Plan, tenant: Tenant) -> dict:
    """GPUs, CPU and memory the namespace may request; CPU may burst to twice its requests.

    Every GPU resource the cluster advertises gets a line (MIG slices ``nvidia.com/mig-<profile>`` and
    renamed time-sliced GPUs ``nvidia.com/gpu.shared`` are resources of their own, unlimited when
    unquoted), 0 where the tenant is granted none. Extended resources can only be quoted with the
    ``requests.`` prefix. With Kueue borrowing, GPU lines hold the cohort's total (Kueue keeps the shares).
    """
    grants = plan.tenant_grants(tenant)
    if plan.spec.tenancy.borrowing:
        # GPUs a Kueue cohort lends run in the borrower's namespace: the backstop is what the cohort holds.
        grants = {name: sum(plan.tenant_grants(other)[name] for other in plan.spec.tenants) for name in grants}
    hard = {f"requests.{name}": str(count) for name, count in grants.items()}
    hard |= {
        "requests.cpu": tenant.cpu,
        "limits.cpu": double_quantity(tenant.cpu),
        "requests.memory": tenant.memory,
        "limits.memory": tenant.memory,
    }
    return k8s_object("v1", "ResourceQuota", "gpu-quota", tenant.ns, spec={"hard": hard})


def _limit_range(tenant: Tenant) -> dict:
    """Defaults for containers that set no CPU/memory (a quota on them refuses such pods otherwise).

    Requests default to the limits, so such a container is never overcommitted: it gets Guaranteed
    QoS and is the last to be evicted under memory pressure on an expensive GPU node.
    """
    defaults = {"cpu": tenant.default_cpu, "memory": tenant.default_memory}
    limits = [{"type": "Container", "default": defaults, "defaultRequest": dict(defaults)}]
    return k8s_object("v1", "LimitRange", "defaults", tenant.ns, spec={"limits": limits})


def _role(tenant: Tenant) -> dict:
    rules = [
        {"apiGroups": [group], "resources": resources, "verbs": verbs} for group, resources, verbs in _WORKLOAD_RULES
    ]
    return k8s_object(f"{RBAC_API_GROUP}/v1", "Role", WORKLOAD_ROLE, tenant.ns, rules=rules)


def _role_binding(tenant: Tenant) -> dict:
    subjects = [{"kind": "Group", "name": group, "apiGroup": RBAC_API_GROUP} for group in tenant.groups]
    subjects += [{"kind": "User", "name": user, "apiGroup": RBAC_API_GROUP} for user in tenant.users]
    return k8s_object(
        f"{RBAC_API_GROUP}/v1",
        "RoleBinding",
        WORKLOAD_ROLE,
        tenant.ns,
        subjects=subjects,
        roleRef={"apiGroup": RBAC_API_GROUP, "kind": "Role", "name": WORKLOAD_ROLE},
    )


# --- network isolation ------------------------------------------------------------------------------


def network_policies(plan: Plan) -> list[dict]:
    """Deny by default in every workload namespace, then allow DNS, the namespace's own pods (NCCL
    between the workers of a job), Prometheus when monitoring is on, the ingress controller when there
    is one, and the egress the tenant chose (``allow-egress``, see ``_egress_rules``).
    """
    objects: list[dict] = []
    egress = {tenant.ns: tenant.egress for tenant in plan.spec.tenants}
    # System namespaces (gpu-operator, kube-system, ...) are never isolated: the spec refuses tenants there.
    for namespace in plan.workload_namespaces:
        objects += [
            _policy("default-deny", namespace, ["Ingress", "Egress"]),
            _policy("allow-dns", namespace, ["Egress"], egress=[_dns_rule()]),
            _policy(
                "allow-same-namespace",
                namespace,
                ["Ingress", "Egress"],
                ingress=[{"from": [{"podSelector": {}}]}],
                egress=[{"to": [{"podSelector": {}}]}],
            ),
        ]
        if plan.spec.monitoring.enabled:
            objects.append(_allow_from_namespace("allow-monitoring", namespace, MONITORING_NAMESPACE))
        if plan.spec.ingress.controller == "nginx":
            objects.append(_allow_from_namespace("allow-ingress-controller", namespace, INGRESS_NAMESPACE))
        rules = _egress_rules(plan, egress.get(namespace, DEFAULT_EGRESS))
        objects.append(_policy("allow-egress", namespace, ["Egress"], egress=rules))
    return objects


def _egress_rules(plan: Plan, choice: str | list) -> list[dict]:
    """The API server and the monitoring namespace (Pushgateway, OTLP), then the tenant's choice:
    ``https`` TCP 443 anywhere, ``cluster-only`` every pod, ``internet`` everything, or the CIDRs listed."""
    rules = [_api_server_rule(plan)]
    if plan.spec.monitoring.enabled:
        rules.append({"to": [_namespace_peer(MONITORING_NAMESPACE)]})
    if choice == "https":
        rules.append({"to": [{"ipBlock": {"cidr": ANYWHERE}}], "ports": [{"protocol": "TCP", "port": 443}]})
    elif choice == "cluster-only":
        rules.append({"to": [{"namespaceSelector": {}}]})
    elif choice == "internet":
        rules.append({})
    elif choice:  # an empty list adds nothing: a rule with no peers would allow every destination
        rules.append({"to": [{"ipBlock": {"cidr": str(cidr)}} for cidr in choice]})
    return rules


def _api_server_rule(plan: Plan) -> dict:
    """The Kubernetes API server as pods reach it (the ``kubernetes`` Service's endpoints, after DNAT):
    EKS's control-plane network interfaces in the VPC on 443, or the API servers' secure port 6443 on
    kubeadm and k3s (their addresses may be unknown to the spec, so any address on that port)."""
    if plan.spec.kubernetes.distribution == "eks" and plan.spec.aws is not None:
        return {"to": [{"ipBlock": {"cidr": str(plan.spec.aws.vpc_cidr)}}], "ports": [{"protocol": "TCP", "port": 443}]}
    return {"ports": [{"protocol": "TCP", "port": API_SERVER_PORT}]}


def _policy(name: str, namespace: str, policy_types: list[str], **rules: list[dict]) -> dict:
    spec = {"podSelector": {}, "policyTypes": policy_types, **rules}
    return k8s_object("networking.k8s.io/v1", "NetworkPolicy", name, namespace, spec=spec)


def _namespace_peer(namespace: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}


def _dns_rule() -> dict:
    """Cluster DNS: CoreDNS in kube-system, labelled k8s-app=kube-dns on kubeadm, k3s and EKS alike."""
    peer = {**_namespace_peer("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    return {"to": [peer], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}


def _allow_from_namespace(name: str, namespace: str, source: str) -> dict:
    return _policy(name, namespace, ["Ingress"], ingress=[{"from": [_namespace_peer(source)]}])


# --- disruption budgets -----------------------------------------------------------------------------

# Pod labels of the gpu-operator chart's operator Deployment (deployments/gpu-operator/templates/operator.yaml).
GPU_OPERATOR_POD_LABELS = {"app": "gpu-operator", "app.kubernetes.io/component": "gpu-operator"}
# Pod labels of the NFD master, from the node-feature-discovery subchart the gpu-operator chart bundles
# (templates/master.yaml: its selector labels plus role=master; the instance label is the release name).
NFD_MASTER_POD_LABELS = {"app.kubernetes.io/name": "node-feature-discovery", "role": "master"}


def disruption_budgets(plan: Plan) -> list[dict]:
    """PodDisruptionBudgets for the single-replica system controllers: the GPU operator and the NFD master.

    They use ``maxUnavailable: 1``, never ``minAvailable: 1``: on a one-replica Deployment the latter
    allows zero evictions, so ``kubectl drain`` and node upgrades wait forever. With one replica the
    budget never blocks a drain; it limits concurrent evictions once replicas are raised. Neither chart
    renders a budget of its own by default (NFD's ``master.podDisruptionBudget.enable`` is false).

    The NGINX Ingress Controller gets none here: its chart renders one (``podDisruptionBudget``, on with
    ``minAvailable: 1`` for its two replicas), and a second budget over the same pods makes every eviction fail.
    The plan is taken like every renderer's, though the set is the same for every cluster.
    """
    return [
        _max_unavailable_one("gpu-operator", GPU_OPERATOR_NAMESPACE, GPU_OPERATOR_POD_LABELS),
        _max_unavailable_one("nfd-master", GPU_OPERATOR_NAMESPACE, NFD_MASTER_POD_LABELS),
    ]


def _max_unavailable_one(name: str, namespace: str, pod_labels: dict[str, str]) -> dict:
    spec = {"maxUnavailable": 1, "selector": {"matchLabels": pod_labels}}
    return k8s_object("policy/v1", "PodDisruptionBudget", name, namespace, spec=spec)
