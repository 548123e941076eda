import json
import re

import kubernetes_validate
import pytest

from gpucluster.plan import make_plan
from gpucluster.render.ingress import (
    ALB_SSL_POLICY,
    HEALTH_PATH,
    NGINX_INGRESS_SERVICE,
    alb_ingress,
    ingress_releases,
)
from gpucluster.render.namespaces import namespaces
from gpucluster.spec import INGRESS_NAMESPACE, ClusterSpec
from gpucluster.stackfile import SpecError, parse_spec
from gpucluster.validate import _chart_defaults
from stacks import REFERENCE, spec_of

REFERENCE_VALUES = {
    "nginx-ingress": REFERENCE / "charts" / "nginx-ingress.values.yaml",
    "aws-load-balancer-controller": REFERENCE / "charts" / "aws-load-balancer-controller.values.yaml",
}
VARIANTS = [(lb, monitoring) for lb in ("service", "alb", "nlb") for monitoring in (True, False)]
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"


def eks_t4(load_balancer: str = "alb", monitoring: bool = True, cni: str = "aws-vpc-cni") -> ClusterSpec:
    network = {**spec_of("eks-t4").network.model_dump(), "cni": cni}
    ingress = {"controller": "nginx", "load_balancer": load_balancer}
    if load_balancer == "alb":
        ingress["certificate_arn"] = CERTIFICATE
    # Without its workload: it needs the monitoring stack and the ingress host some variants drop.
    return spec_of("eks-t4", ingress=ingress, monitoring={"enabled": monitoring}, network=network, autoscaling={})


def releases_of(spec: ClusterSpec) -> dict:
    return {release.name: release for release in ingress_releases(make_plan(spec))}


@pytest.mark.parametrize(("load_balancer", "monitoring"), VARIANTS)
def test_every_value_key_exists_in_the_upstream_chart(load_balancer, monitoring):
    """Checked as ``validate`` does: keys of the chart's values, or documented there in comments."""
    if not REFERENCE.is_dir():
        pytest.skip(f"upstream chart values not available at {REFERENCE}")
    for name, release in releases_of(eks_t4(load_balancer, monitoring)).items():
        path = REFERENCE_VALUES[name]
        assert _chart_defaults(path, path.stat().st_mtime_ns).problems(release.values) == [], name


@pytest.mark.parametrize(("load_balancer", "monitoring"), VARIANTS)
def test_values_are_plain_data(load_balancer, monitoring):
    for release in releases_of(eks_t4(load_balancer, monitoring)).values():
        assert json.loads(json.dumps(release.values)) == release.values


def test_charts_are_pinned():
    for release in releases_of(eks_t4("nlb")).values():
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", release.version), release.name
        assert release.repository.startswith("https://")


def test_the_maintained_f5_controller_replaces_the_retired_ingress_nginx():
    nginx = releases_of(eks_t4("service"))["nginx-ingress"]
    assert (nginx.chart, nginx.repository, nginx.version) == ("nginx-ingress", "https://helm.nginx.com/stable", "2.7.0")
    assert nginx.namespace == INGRESS_NAMESPACE == "nginx-ingress"
    controller = nginx.values["controller"]
    assert controller["telemetryReporting"] == {"enable": False}
    assert controller["readOnlyRootFilesystem"] is True
    [namespace] = [n for n in namespaces(make_plan(eks_t4("service"))) if n["metadata"]["name"] == INGRESS_NAMESPACE]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert controller["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}


def test_alb_fronts_nginx_through_node_ports():
    spec = eks_t4("alb")
    releases = releases_of(spec)
    assert list(releases) == ["nginx-ingress", "aws-load-balancer-controller"]
    controller = releases["nginx-ingress"].values["controller"]
    assert controller["replicaCount"] == 2
    assert controller["service"] == {"type": "NodePort"}
    assert controller["healthStatus"] is True
    entries = controller["config"]["entries"]
    assert entries["real-ip-header"] == "X-Forwarded-For"
    assert entries["set-real-ip-from"] == str(spec.aws.vpc_cidr)
    lbc = releases["aws-load-balancer-controller"]
    assert lbc.namespace == "kube-system"
    assert lbc.values == {"clusterName": spec.name, "region": spec.aws.region}


def test_nlb_is_made_by_the_load_balancer_controller():
    releases = releases_of(eks_t4("nlb"))
    service = releases["nginx-ingress"].values["controller"]["service"]
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
    assert list(releases) == ["nginx-ingress"]
    assert releases["nginx-ingress"].values["controller"]["service"] == {"type": "LoadBalancer"}
    assert "config" not in releases["nginx-ingress"].values["controller"]


@pytest.mark.parametrize("monitoring", [True, False])
def test_metrics_follow_monitoring_and_service_monitors_come_with_the_stack(monitoring):
    prometheus = releases_of(eks_t4("service", monitoring))["nginx-ingress"].values["prometheus"]
    monitor = {"create": True, "labels": {"release": "kube-prometheus-stack"}}
    expected = {"create": True, "service": {"create": True}, "serviceMonitor": monitor}
    assert prometheus == (
        expected if monitoring else {"create": False, "service": {"create": False}, "serviceMonitor": {"create": False}}
    )


@pytest.mark.parametrize("stack", ["eks-h100", "onprem-k3s", "onprem-kubeadm", "onprem-dgx", "hybrid-crio"])
def test_nothing_without_an_ingress_controller(stack):
    plan = make_plan(spec_of(stack))
    assert ingress_releases(plan) == []
    assert alb_ingress(plan) == []


def test_alb_serves_https_with_the_certificate_and_redirects_http():
    spec = spec_of("eks-t4")
    [ingress] = alb_ingress(make_plan(spec))
    kubernetes_validate.validate(ingress, "1.33.0", strict=True)
    assert ingress["metadata"]["namespace"] == INGRESS_NAMESPACE
    assert ingress["spec"]["ingressClassName"] == "alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTP": 80}, {"HTTPS": 443}]
    assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"] == spec.ingress.certificate_arn
    assert annotations["alb.ingress.kubernetes.io/ssl-policy"] == ALB_SSL_POLICY
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == HEALTH_PATH
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"] == {"service": {"name": NGINX_INGRESS_SERVICE, "port": {"number": 80}}}


def test_cilium_pods_are_reached_through_node_ports():
    spec = eks_t4("alb", cni="cilium")
    [ingress] = alb_ingress(make_plan(spec))
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-type"] == "instance"
    service = releases_of(eks_t4("nlb", cni="cilium"))["nginx-ingress"].values["controller"]["service"]
    assert service["annotations"]["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "instance"


def problems(ingress: dict) -> list[tuple[str, str]]:
    """(field path, message) of every problem the spec reports with this ingress section."""
    raw = {**spec_of("eks-t4").model_dump(mode="json"), "ingress": ingress}
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "test.yaml")
    return [(".".join(map(str, p.path)), p.message) for p in caught.value.problems]


def test_an_alb_needs_a_certificate():
    [(path, message)] = problems({"controller": "nginx", "load_balancer": "alb"})
    assert path.endswith("ingress.certificate_arn") and "ACM certificate" in message


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:acm:us-east-1:12345678901:certificate/11111111-2222-3333-4444-555555555555",
        "arn:aws:iam::123456789012:server-certificate/web",
        "11111111-2222-3333-4444-555555555555",
    ],
)
def test_a_malformed_certificate_arn_is_refused(arn):
    [(path, message)] = problems({"controller": "nginx", "load_balancer": "alb", "certificate_arn": arn})
    assert "certificate_arn" in path and "not an ACM certificate ARN" in message


def test_the_certificate_must_be_in_the_clusters_region():
    arn = CERTIFICATE.replace("us-east-1", "eu-west-1")
    [(_, message)] = problems({"controller": "nginx", "load_balancer": "alb", "certificate_arn": arn})
    assert "'us-east-1'" in message


def test_a_certificate_without_an_alb_is_refused():
    [(_, message)] = problems({"controller": "nginx", "load_balancer": "nlb", "certificate_arn": CERTIFICATE})
    assert "only an ALB" in message
