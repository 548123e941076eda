import json
import re

import kubernetes_validate
import pytest
import yaml

from gpucluster.plan import make_plan
from gpucluster.render.ingress import (
    INGRESS_NGINX_SERVICE,
    alb_ingress,
    ingress_releases,
)
from gpucluster.spec import INGRESS_NAMESPACE, ClusterSpec
from stacks import REFERENCE, spec_of

REFERENCE_VALUES = {
    "ingress-nginx": REFERENCE / "charts" / "ingress-nginx.values.yaml",
    "aws-load-balancer-controller": REFERENCE / "charts" / "aws-load-balancer-controller.values.yaml",
}
VARIANTS = [(lb, monitoring) for lb in ("service", "alb", "nlb") for monitoring in (True, False)]


def eks_t4(load_balancer: str = "alb", monitoring: bool = True, cni: str = "aws-vpc-cni") -> ClusterSpec:
    network = {**spec_of("eks-t4").network.model_dump(), "cni": cni}
    return spec_of(
        "eks-t4",
        ingress={"controller": "nginx", "load_balancer": load_balancer},
        monitoring={"enabled": monitoring},
        network=network,
    )


def releases_of(spec: ClusterSpec) -> dict:
    return {release.name: release for release in ingress_releases(make_plan(spec))}


def missing_keys(values: dict, reference: dict, path: tuple[str, ...] = ()):
    """Keys of ``values`` absent from the chart's defaults; free-form maps (default ``{}``) take any key."""
    for key, value in values.items():
        if key not in reference:
            yield ".".join((*path, key))
        elif isinstance(value, dict) and isinstance(reference[key], dict) and reference[key]:
            yield from missing_keys(value, reference[key], (*path, key))


@pytest.mark.parametrize(("load_balancer", "monitoring"), VARIANTS)
def test_every_value_key_exists_in_the_upstream_chart(load_balancer, monitoring):
    if not REFERENCE.is_dir():
        pytest.skip(f"upstream chart values not available at {REFERENCE}")
    for name, release in releases_of(eks_t4(load_balancer, monitoring)).items():
        reference = yaml.safe_load(REFERENCE_VALUES[name].read_text(encoding="utf-8"))
        assert list(missing_keys(release.values, reference)) == [], name


@pytest.mark.parametrize(("load_balancer", "monitoring"), VARIANTS)
def test_values_are_plain_data(load_balancer, monitoring):
    for release in releases_of(eks_t4(load_balancer, monitoring)).values():
        assert json.loads(json.dumps(release.values)) == release.values


def test_charts_are_pinned():
    for release in releases_of(eks_t4("nlb")).values():
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", release.version), release.name
        assert release.repository.startswith("https://")


def test_alb_fronts_nginx_through_node_ports():
    spec = eks_t4("alb")
    releases = releases_of(spec)
    assert list(releases) == ["ingress-nginx", "aws-load-balancer-controller"]
    nginx = releases["ingress-nginx"]
    assert (nginx.chart, nginx.namespace) == ("ingress-nginx", INGRESS_NAMESPACE)
    controller = nginx.values["controller"]
    assert controller["replicaCount"] == 2
    assert controller["service"] == {"type": "NodePort"}
    assert controller["config"] == {"use-forwarded-headers": "true"}
    lbc = releases["aws-load-balancer-controller"]
    assert lbc.namespace == "kube-system"
    assert lbc.values == {"clusterName": spec.name, "region": spec.aws.region}


def test_nlb_is_made_by_the_load_balancer_controller():
    releases = releases_of(eks_t4("nlb"))
    service = releases["ingress-nginx"].values["controller"]["service"]
    assert service["type"] == "LoadBalancer"
    assert service["annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
    }
    assert "aws-load-balancer-controller" in releases
    assert alb_ingress(make_plan(eks_t4("nlb"))) == []


def test_plain_service_needs_no_aws_controller():
    releases = releases_of(eks_t4("service"))
    assert list(releases) == ["ingress-nginx"]
    assert releases["ingress-nginx"].values["controller"]["service"] == {"type": "LoadBalancer"}
    assert "config" not in releases["ingress-nginx"].values["controller"]


@pytest.mark.parametrize("monitoring", [True, False])
def test_metrics_follow_monitoring(monitoring):
    metrics = releases_of(eks_t4("service", monitoring))["ingress-nginx"].values["controller"]["metrics"]
    assert metrics == {"enabled": monitoring, "serviceMonitor": {"enabled": monitoring}}


@pytest.mark.parametrize("stack", ["eks-h100", "onprem-k3s", "onprem-kubeadm", "onprem-dgx", "hybrid-crio"])
def test_nothing_without_an_ingress_controller(stack):
    plan = make_plan(spec_of(stack))
    assert ingress_releases(plan) == []
    assert alb_ingress(plan) == []


def test_alb_ingress_routes_everything_to_nginx():
    [ingress] = alb_ingress(make_plan(spec_of("eks-t4")))
    kubernetes_validate.validate(ingress, "1.33.0", strict=True)
    assert ingress["metadata"]["namespace"] == INGRESS_NAMESPACE
    assert ingress["spec"]["ingressClassName"] == "alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTP": 80}]
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/healthz"
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"] == {"service": {"name": INGRESS_NGINX_SERVICE, "port": {"number": 80}}}


def test_cilium_pods_are_reached_through_node_ports():
    spec = eks_t4("alb", cni="cilium")
    [ingress] = alb_ingress(make_plan(spec))
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-type"] == "instance"
    service = releases_of(eks_t4("nlb", cni="cilium"))["ingress-nginx"].values["controller"]["service"]
    assert service["annotations"]["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "instance"
