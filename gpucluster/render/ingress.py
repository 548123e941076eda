"""The ingress path: the F5 NGINX Ingress Controller, and on AWS the load balancer in front of it.

The community ingress-nginx was retired in March 2026 (no more security fixes); its drop-in is F5's
NGINX Ingress Controller (chart ``nginx-ingress``), which serves the same ``Ingress`` objects under the
``nginx`` IngressClass. ``ingress.load_balancer`` decides what fronts it:

- ``service``: the controller's Service of type LoadBalancer (whatever the platform provides);
- ``nlb``: the same Service, turned into an NLB by the AWS Load Balancer Controller;
- ``alb``: an ALB, made by the AWS Load Balancer Controller from the ``nginx-ingress-alb`` Ingress,
  forwarding to the controller's Service (seed 004: user -> ALB -> nginx -> pods). The ALB serves HTTPS
  with the spec's ACM certificate and redirects HTTP to HTTPS.

Chart values are plain data. Values only known once Pulumi has created the cloud resources (the VPC id,
the controller's IAM role for its service account) are added by the Pulumi program, not here.
"""

from __future__ import annotations

import json

from gpucluster.plan import Plan
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.k8s import k8s_object
from gpucluster.render.monitoring import PROMETHEUS_SELECTOR
from gpucluster.spec import INGRESS_NAMESPACE, ClusterSpec

NGINX_INGRESS_RELEASE = "nginx-ingress"
NGINX_INGRESS_CHART = "nginx-ingress"
NGINX_INGRESS_REPOSITORY = "https://helm.nginx.com/stable"
NGINX_INGRESS_VERSION = "2.7.0"  # NGINX Ingress Controller 5.6.0
AWS_LB_CONTROLLER_CHART = "aws-load-balancer-controller"
AWS_LB_CONTROLLER_REPOSITORY = "https://aws.github.io/eks-charts"
AWS_LB_CONTROLLER_VERSION = "3.5.0"  # controller v3.5.0
# The controller Service the chart names "<release>-controller" (release "nginx-ingress" contains the chart name).
NGINX_INGRESS_SERVICE = "nginx-ingress-controller"
ALB_INGRESS_NAME = "nginx-ingress-alb"
# TLS 1.3 and 1.2 only; the controller's default policy (ELBSecurityPolicy-2016-08) still allows TLS 1.0.
ALB_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# controller.healthStatus adds this location to nginx's default server; it answers 200 to any request.
HEALTH_PATH = "/nginx-health"


def _aws_target_type(spec: ClusterSpec) -> str:
    """``ip`` where pod IPs are VPC addresses (the AWS VPC CNI); ``instance`` (via node ports) otherwise,
    since Cilium's overlay addresses are not reachable from a load balancer."""
    return "ip" if spec.network.cni == "aws-vpc-cni" else "instance"


def _controller_service(spec: ClusterSpec) -> dict:
    load_balancer = spec.ingress.load_balancer
    if load_balancer == "alb":
        # The ALB forwards to this Service; NodePort serves both ALB target types.
        return {"type": "NodePort"}
    if load_balancer == "nlb":
        annotations = {
            "service.beta.kubernetes.io/aws-load-balancer-type": "external",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": _aws_target_type(spec),
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
        }
        return {"type": "LoadBalancer", "annotations": annotations}
    return {"type": "LoadBalancer"}


def _nginx_ingress_values(plan: Plan) -> dict:
    """Two replicas with the chart's PodDisruptionBudget, a read-only root filesystem (the chart then mounts
    emptyDirs for nginx's writable paths), no telemetry to F5, metrics when monitoring is on
    (a ServiceMonitor only where its CRD is installed). Behind an ALB, nginx health-checks on
    ``/nginx-health`` and takes the client address from X-Forwarded-For when the ALB (in the VPC) sent it."""
    spec = plan.spec
    controller: dict = {
        "replicaCount": 2,
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "service": _controller_service(spec),
        "telemetryReporting": {"enable": False},
        "readOnlyRootFilesystem": True,
    }
    if spec.ingress.load_balancer == "alb":
        assert spec.aws is not None, "the spec requires an aws section wherever an ALB is allowed"
        controller["healthStatus"] = True
        controller["config"] = {
            "entries": {
                "real-ip-header": "X-Forwarded-For",
                "set-real-ip-from": str(spec.aws.vpc_cidr),
                "real-ip-recursive": "True",
            }
        }
    monitors = plan.scrapes_with_service_monitors
    prometheus = {
        "create": spec.monitoring.enabled,
        "service": {"create": monitors},
        "serviceMonitor": {"create": True, "labels": dict(PROMETHEUS_SELECTOR)} if monitors else {"create": False},
    }
    return {"controller": controller, "prometheus": prometheus}


def _aws_lb_controller_values(spec: ClusterSpec) -> dict:
    """The EKS cluster's name and region. The chart also wants ``vpcId`` where pods cannot reach the
    instance metadata service (IMDSv2 with hop limit 1, the secure default); it is a Pulumi output, so
    the Pulumi program adds it."""
    assert spec.aws is not None, "the spec requires an aws section wherever an ALB or NLB is allowed"
    return {"clusterName": spec.name, "region": spec.aws.region}


def ingress_releases(plan: Plan) -> list[HelmRelease]:
    """The NGINX Ingress Controller when the spec asks for it, plus the AWS Load Balancer Controller behind
    an ALB or NLB."""
    spec = plan.spec
    if spec.ingress.controller != "nginx":
        return []
    releases = [
        HelmRelease(
            name=NGINX_INGRESS_RELEASE,
            chart=NGINX_INGRESS_CHART,
            repository=NGINX_INGRESS_REPOSITORY,
            version=NGINX_INGRESS_VERSION,
            namespace=INGRESS_NAMESPACE,
            values=_nginx_ingress_values(plan),
        )
    ]
    if spec.ingress.load_balancer in ("alb", "nlb"):
        releases.append(
            HelmRelease(
                name="aws-load-balancer-controller",
                chart=AWS_LB_CONTROLLER_CHART,
                repository=AWS_LB_CONTROLLER_REPOSITORY,
                version=AWS_LB_CONTROLLER_VERSION,
                namespace="kube-system",
                values=_aws_lb_controller_values(spec),
            )
        )
    return releases


def alb_ingress(plan: Plan) -> list[dict]:
    """The Ingress from which the AWS Load Balancer Controller builds the internet-facing ALB in front of nginx.

    The ALB listens on HTTP 80 and HTTPS 443 with the spec's ACM certificate (TLS 1.2+), and answers HTTP
    with a redirect to HTTPS; it forwards plain HTTP to nginx inside the VPC. Its health checks go to nginx's
    ``/nginx-health`` (``controller.healthStatus``); the default path ``/`` would answer 404 from nginx's
    default server and mark every target unhealthy.
    """
    spec = plan.spec
    if spec.ingress.controller != "nginx" or spec.ingress.load_balancer != "alb":
        return []
    assert spec.ingress.certificate_arn is not None, "the spec requires a certificate with an ALB"
    annotations = {
        "alb.ingress.kubernetes.io/scheme": "internet-facing",
        "alb.ingress.kubernetes.io/target-type": _aws_target_type(spec),
        "alb.ingress.kubernetes.io/listen-ports": json.dumps([{"HTTP": 80}, {"HTTPS": 443}]),
        "alb.ingress.kubernetes.io/ssl-redirect": "443",
        "alb.ingress.kubernetes.io/certificate-arn": spec.ingress.certificate_arn,
        "alb.ingress.kubernetes.io/ssl-policy": ALB_SSL_POLICY,
        "alb.ingress.kubernetes.io/healthcheck-path": HEALTH_PATH,
    }
    backend = {"service": {"name": NGINX_INGRESS_SERVICE, "port": {"number": 80}}}
    rule = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
    spec_body = {"ingressClassName": "alb", "rules": [rule]}
    ingress = k8s_object(
        "networking.k8s.io/v1", "Ingress", ALB_INGRESS_NAME, INGRESS_NAMESPACE, annotations=annotations, spec=spec_body
    )
    return [ingress]
