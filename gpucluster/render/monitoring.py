"""The monitoring stack: kube-prometheus-stack (Prometheus, Alertmanager, Grafana) from the spec.

Which monitors Prometheus scrapes: kube-prometheus-stack's Prometheus selects ServiceMonitors,
PodMonitors and PrometheusRules labelled ``release: <its release name>`` (the chart's
``*SelectorNilUsesHelmValues: true``, set explicitly here). gpucluster keeps that opt-in rather than
selecting every monitor in the cluster: a tenant's own ServiceMonitor cannot inject series into the GPU
alerts or the autoscaling metrics. So every monitor gpucluster turns on carries ``PROMETHEUS_SELECTOR``:
the GPU operator's dcgm-exporter ServiceMonitor, the ingress controller's, and the chart's own.

Receiver credentials never appear in the output: each receiver reads them from a file
(``api_url_file``, ``routing_key_file``, ``credentials_file``, ``auth_password_file``) in a Secret the
Alertmanager mounts (``alertmanagerSpec.secrets``, at ``/etc/alertmanager/secrets/<secret>/<key>``).
"""

from __future__ import annotations

from gpucluster.plan import Plan
from gpucluster.render.alerts import DCGM_JOB, rule_groups
from gpucluster.render.bundle import HelmRelease
from gpucluster.render.dashboards import dashboard_config_maps
from gpucluster.render.k8s import k8s_object
from gpucluster.spec import GPU_OPERATOR_NAMESPACE, MONITORING_NAMESPACE, NULL_RECEIVER, ClusterSpec, Receiver

KUBE_PROMETHEUS_STACK_CHART = "kube-prometheus-stack"
KUBE_PROMETHEUS_STACK_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
KUBE_PROMETHEUS_STACK_VERSION = "88.5.3"
KUBE_PROMETHEUS_STACK_RELEASE = "kube-prometheus-stack"
PROMETHEUS_SELECTOR = {"release": KUBE_PROMETHEUS_STACK_RELEASE}
GPU_RULES_NAME = "gpu-alerts"  # the chart names the PrometheusRule "<chart name>-<this>"
ALERTMANAGER_SECRETS_DIR = "/etc/alertmanager/secrets"
GRAFANA_ADMIN_KEYS = {"userKey": "admin-user", "passwordKey": "admin-password"}


def dcgm_relabelings(spec: ClusterSpec) -> list[dict]:
    """Target labels on every DCGM series: the node the exporter runs on, and the cluster's name."""
    return [
        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"},
        {"targetLabel": "cluster", "replacement": spec.name, "action": "replace"},
    ]


def dcgm_service_monitor_values(plan: Plan) -> dict:
    """gpu-operator ``dcgmExporter.serviceMonitor``: on only with the monitoring stack, labelled for its
    Prometheus. ``honorLabels`` keeps the exporter's ``namespace``/``pod``/``container`` labels (the pod
    using the GPU, from its Kubernetes mode) instead of renaming them ``exported_*``."""
    spec = plan.spec
    if not plan.scrapes_with_service_monitors:
        return {"enabled": False}
    return {
        "enabled": True,
        "interval": spec.monitoring.scrape_interval,
        "honorLabels": True,
        "additionalLabels": dict(PROMETHEUS_SELECTOR),
        "relabelings": dcgm_relabelings(spec),
    }


def dcgm_service_monitor(plan: Plan) -> list[dict]:
    """The ServiceMonitor the GPU operator creates from those values (its state-dcgm-exporter asset), as a
    preview checked against the ServiceMonitor CRD."""
    values = dcgm_service_monitor_values(plan)
    if not values["enabled"]:
        return []
    endpoint = {
        "port": "gpu-metrics",
        "path": "/metrics",
        "interval": values["interval"],
        "honorLabels": True,
        "relabelings": values["relabelings"],
    }
    body = {
        "endpoints": [endpoint],
        "jobLabel": "app",
        "namespaceSelector": {"matchNames": [GPU_OPERATOR_NAMESPACE]},
        "selector": {"matchLabels": {"app": DCGM_JOB}},
    }
    labels = {"app": DCGM_JOB, **values["additionalLabels"]}
    return [
        k8s_object("monitoring.coreos.com/v1", "ServiceMonitor", DCGM_JOB, GPU_OPERATOR_NAMESPACE, labels, spec=body)
    ]


def _secret_file(ref) -> str:
    return f"{ALERTMANAGER_SECRETS_DIR}/{ref.name}/{ref.key}"


def _receiver(receiver: Receiver) -> dict:
    config: dict = {"name": receiver.name}
    if receiver.slack:
        slack = {"channel": receiver.slack.channel, "api_url_file": _secret_file(receiver.slack.api_url)}
        config["slack_configs"] = [{**slack, "send_resolved": True}]
    if receiver.pagerduty:
        config["pagerduty_configs"] = [{"routing_key_file": _secret_file(receiver.pagerduty.routing_key)}]
    if receiver.webhook:
        webhook: dict = {"url": receiver.webhook.url, "send_resolved": True}
        if receiver.webhook.bearer_token:
            credentials = _secret_file(receiver.webhook.bearer_token)
            webhook["http_config"] = {"authorization": {"credentials_file": credentials}}
        config["webhook_configs"] = [webhook]
    if receiver.email:
        email = receiver.email
        mail: dict = {"to": email.to, "from": email.sender, "smarthost": email.smarthost, "require_tls": True}
        if email.username:
            mail["auth_username"] = email.username
        if email.password:
            mail["auth_password_file"] = _secret_file(email.password)
        config["email_configs"] = [{**mail, "send_resolved": True}]
    return config


def alertmanager_config(spec: ClusterSpec) -> dict:
    """The whole alertmanager.yaml. Complete, so Helm's merge with the chart's default leaves it as is and
    ``amtool check-config`` checks exactly what runs. The chart's inhibitions stay; a NotReady GPU node
    silences the other GPU alerts of that node."""
    alertmanager = spec.monitoring.alertmanager
    routes: list[dict] = [{"receiver": NULL_RECEIVER, "matchers": ['alertname="Watchdog"']}]
    for route in alertmanager.routes:
        routes.append(
            {"receiver": route.receiver, "matchers": list(route.matchers), "continue": route.continue_matching}
        )
    inhibit_rules = [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity=~"warning|info"'],
            "equal": ["namespace", "alertname"],
        },
        {
            "source_matchers": ['severity="warning"'],
            "target_matchers": ['severity="info"'],
            "equal": ["namespace", "alertname"],
        },
        {
            "source_matchers": ['alertname="InfoInhibitor"'],
            "target_matchers": ['severity="info"'],
            "equal": ["namespace"],
        },
        {"target_matchers": ['alertname="InfoInhibitor"']},
        {
            "source_matchers": ['alertname="GpuNodeNotReady"'],
            "target_matchers": ['alertname=~"Gpu.+"', 'alertname!="GpuNodeNotReady"'],
            "equal": ["node"],
        },
    ]
    return {
        "global": {"resolve_timeout": "5m"},
        "inhibit_rules": inhibit_rules,
        "route": {
            "receiver": alertmanager.default_receiver,
            "group_by": list(alertmanager.group_by),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": routes,
        },
        "receivers": [{"name": NULL_RECEIVER}, *(_receiver(r) for r in alertmanager.receivers)],
        "templates": ["/etc/alertmanager/config/*.tmpl"],
    }


def _prometheus_spec(spec: ClusterSpec) -> dict:
    monitoring = spec.monitoring
    claim: dict = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": monitoring.storage.size}},
    }
    if monitoring.storage.storage_class:
        claim = {"storageClassName": monitoring.storage.storage_class, **claim}
    return {
        "retention": monitoring.retention,
        "resources": {
            "requests": {"cpu": monitoring.resources.cpu, "memory": monitoring.resources.memory},
            "limits": {"memory": monitoring.resources.memory},
        },
        "storageSpec": {"volumeClaimTemplate": {"spec": claim}},
        "serviceMonitorSelectorNilUsesHelmValues": True,
        "podMonitorSelectorNilUsesHelmValues": True,
        "ruleSelectorNilUsesHelmValues": True,
    }


def stack_values(spec: ClusterSpec) -> dict:
    """Helm values for kube-prometheus-stack (every key exists in the chart's values.yaml)."""
    monitoring = spec.monitoring
    secrets = sorted({ref.name for r in monitoring.alertmanager.receivers for ref in r.secret_refs})
    alertmanager: dict = {"config": alertmanager_config(spec)}
    if secrets:
        alertmanager["alertmanagerSpec"] = {"secrets": secrets}
    return {
        "additionalPrometheusRulesMap": {GPU_RULES_NAME: {"groups": rule_groups(monitoring.alerts)}},
        "alertmanager": alertmanager,
        "grafana": {
            "admin": {"existingSecret": monitoring.grafana_admin_secret, **GRAFANA_ADMIN_KEYS},
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": "grafana_dashboard",
                    "labelValue": "1",
                    "searchNamespace": MONITORING_NAMESPACE,
                }
            },
        },
        "prometheus": {"prometheusSpec": _prometheus_spec(spec)},
    }


def prometheus_rules(values: dict) -> list[dict]:
    """The PrometheusRules the chart's additionalPrometheusRules.yaml makes of ``additionalPrometheusRulesMap``."""
    return [
        k8s_object(
            "monitoring.coreos.com/v1",
            "PrometheusRule",
            f"{KUBE_PROMETHEUS_STACK_CHART}-{name}",
            MONITORING_NAMESPACE,
            {"app": KUBE_PROMETHEUS_STACK_CHART, **PROMETHEUS_SELECTOR},
            spec={"groups": rules["groups"]},
        )
        for name, rules in values["additionalPrometheusRulesMap"].items()
    ]


def monitoring_releases(plan: Plan) -> list[HelmRelease]:
    """kube-prometheus-stack when the spec turns monitoring on."""
    if not plan.spec.monitoring.enabled:
        return []
    values = stack_values(plan.spec)
    return [
        HelmRelease(
            name=KUBE_PROMETHEUS_STACK_RELEASE,
            chart=KUBE_PROMETHEUS_STACK_CHART,
            repository=KUBE_PROMETHEUS_STACK_REPOSITORY,
            version=KUBE_PROMETHEUS_STACK_VERSION,
            namespace=MONITORING_NAMESPACE,
            values=values,
            previews=tuple(prometheus_rules(values)),
        )
    ]


def monitoring_objects(plan: Plan) -> list[dict]:
    """Grafana dashboards (ConfigMaps) when monitoring is on."""
    if not plan.spec.monitoring.enabled:
        return []
    return dashboard_config_maps()
