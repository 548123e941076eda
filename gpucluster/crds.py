"""Where the CRDs of the stack's custom resources come from, in one place.

A custom resource applies only where its CRD exists. gpucluster's output creates custom resources directly
(manifests, examples), through a chart's templates (the previews in ``helm/previews/``) and through chart
values that switch one on (a ServiceMonitor, ...). ``validate`` checks that each has its CRD from a Helm
release in the stack (``CHART_CRD_GROUPS``) or from a prerequisite the output declares.
"""

from __future__ import annotations

from dataclasses import dataclass

# API groups whose CRDs a chart installs (its crds/ directory, or templates the chart applies), by chart name.
CHART_CRD_GROUPS: dict[str, tuple[str, ...]] = {
    # deployments/gpu-operator/crds (ClusterPolicy, NVIDIADriver) and the node-feature-discovery subchart.
    "gpu-operator": ("nvidia.com", "nfd.k8s-sigs.io"),
    # charts/nginx-ingress/crds -> config/crd/bases (VirtualServer, Policy, ..., App Protect, ExternalDNS).
    "nginx-ingress": ("k8s.nginx.org", "appprotect.f5.com", "appprotectdos.f5.com", "externaldns.nginx.org"),
    # stable/aws-load-balancer-controller/crds (TargetGroupBinding, IngressClassParams, gateway and accelerator).
    "aws-load-balancer-controller": ("elbv2.k8s.aws", "gateway.k8s.aws", "aga.k8s.aws"),
    "aws-efa-k8s-device-plugin": (),
    # the crds subchart: ServiceMonitor, PodMonitor, PrometheusRule, Prometheus, Alertmanager, ...
    "kube-prometheus-stack": ("monitoring.coreos.com",),
    "prometheus-adapter": (),
    "velero": ("velero.io",),
    "keda": ("keda.sh", "eventing.keda.sh"),
    "kueue": ("kueue.x-k8s.io",),
    "karpenter": ("karpenter.sh", "karpenter.k8s.aws"),
    # deployment/network-operator/crds, with Multus's NetworkAttachmentDefinition; nv-ipam's IPPool CRD the
    # operator itself applies when the NicClusterPolicy deploys nv-ipam.
    "network-operator": ("mellanox.com", "k8s.cni.cncf.io", "nv-ipam.nvidia.com"),
    "cluster-autoscaler": (),
    # charts/nginx-gateway-fabric/crds: its own policies; the Gateway API CRDs are a prerequisite it does not install.
    "nginx-gateway-fabric": ("gateway.nginx.org",),
    "dcgm-exporter": (),
    "nvidia-device-plugin": (),
    "ingress-nginx": (),  # retired in March 2026; listed so an old output still gets a precise answer
}


@dataclass(frozen=True)
class ValueSwitch:
    """A chart value that makes the chart (or its operator) create a custom resource when true."""

    path: str  # dotted path in the chart's values
    default: bool  # the chart's default, in effect when our values leave the key out
    group: str
    kind: str


# Values that create custom resources, by chart. The resources these create are not in the output, so the
# check reads the values: a switch that is on needs its kind's CRD like an object would.
CHART_VALUE_SWITCHES: dict[str, tuple[ValueSwitch, ...]] = {
    "gpu-operator": (
        ValueSwitch("dcgmExporter.serviceMonitor.enabled", True, "monitoring.coreos.com", "ServiceMonitor"),
    ),
    "nginx-ingress": (
        ValueSwitch("prometheus.serviceMonitor.create", False, "monitoring.coreos.com", "ServiceMonitor"),
        ValueSwitch("controller.globalConfiguration.create", False, "k8s.nginx.org", "GlobalConfiguration"),
    ),
    "aws-load-balancer-controller": (
        ValueSwitch("serviceMonitor.enabled", False, "monitoring.coreos.com", "ServiceMonitor"),
        ValueSwitch("ingressClassParams.create", True, "elbv2.k8s.aws", "IngressClassParams"),
        ValueSwitch("enableCertManager", False, "cert-manager.io", "Certificate"),
    ),
    "dcgm-exporter": (ValueSwitch("serviceMonitor.enabled", True, "monitoring.coreos.com", "ServiceMonitor"),),
    "ingress-nginx": (
        ValueSwitch("controller.metrics.serviceMonitor.enabled", False, "monitoring.coreos.com", "ServiceMonitor"),
    ),
    "karpenter": (ValueSwitch("serviceMonitor.enabled", False, "monitoring.coreos.com", "ServiceMonitor"),),
    "velero": (
        ValueSwitch("metrics.serviceMonitor.enabled", False, "monitoring.coreos.com", "ServiceMonitor"),
        ValueSwitch("metrics.prometheusRule.enabled", False, "monitoring.coreos.com", "PrometheusRule"),
    ),
}


def charts_installing(group: str) -> list[str]:
    """The charts whose release would bring a group's CRDs (for the fix in a failure message)."""
    return sorted(chart for chart, groups in CHART_CRD_GROUPS.items() if group in groups)
