"""Tests for gpucluster.validate: hand-written output directories checked against real schemas."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from gpucluster.output import write_tree
from gpucluster.render import render
from gpucluster.validate import Check, Report, validate_output
from stacks import spec_of

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
K8S = "1.33"

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "crds").is_dir() or not (REFERENCE / "charts").is_dir(),
    reason=f"upstream reference data (CRDs, chart values) not found at {REFERENCE}",
)

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "team-a"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27.3", "ports": [{"containerPort": 80}]}]},
        },
    },
}
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "settings", "namespace": "team-a"},
    "data": {"a": "b"},
}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
CLUSTER_POLICY = {
    "apiVersion": "nvidia.com/v1",
    "kind": "ClusterPolicy",
    "metadata": {"name": "cluster-policy"},
    "spec": {
        "daemonsets": {"priorityClassName": "system-node-critical"},
        "dcgm": {"enabled": False},
        "dcgmExporter": {"enabled": True, "serviceMonitor": {"enabled": True}},
        "devicePlugin": {"enabled": True, "config": {"name": "device-plugin-config", "default": "any"}},
        "driver": {"enabled": False},
        "gfd": {"enabled": True},
        "nodeStatusExporter": {"enabled": False},
        "operator": {"defaultRuntime": "containerd"},
        "toolkit": {"enabled": True},
    },
}


def write_output(out: Path, files: dict[str, list[dict] | dict | str]) -> Path:
    """Write a rendered output directory: lists become multi-document YAML, dicts one document, str as is."""
    for name, content in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            path.write_text(yaml.safe_dump_all(content, sort_keys=False))
        elif isinstance(content, dict):
            path.write_text(yaml.safe_dump(content, sort_keys=False))
        else:
            path.write_text(content)
    return out


def helm_output(out: Path, values: dict, chart: str = "gpu-operator") -> Path:
    release = {
        "name": "gpu-operator",
        "chart": chart,
        "repository": "https://helm.ngc.nvidia.com/nvidia",
        "version": "v25.3.0",
        "namespace": "gpu-operator",
        "values": "gpu-operator.values.yaml",
    }
    return write_output(out, {"helm/releases.yaml": {"releases": [release]}, "helm/gpu-operator.values.yaml": values})


def only(report: Report, check: str) -> Check:
    rows = [c for c in report.checks if c.check == check]
    assert len(rows) == 1, report.checks
    return rows[0]


# --- built-in kinds -----------------------------------------------------------------------------------------


def test_valid_builtin_objects_pass(tmp_path):
    out = write_output(tmp_path, {"manifests/10-base.yaml": [NAMESPACE, CONFIGMAP, DEPLOYMENT]})

    report = validate_output(out, K8S)

    assert not report.failed
    assert report.checks == (
        Check("manifests/10-base.yaml", "Namespace team-a", "kubernetes-schema", "ok"),
        Check("manifests/10-base.yaml", "ConfigMap team-a/settings", "kubernetes-schema", "ok"),
        Check("manifests/10-base.yaml", "Deployment team-a/web", "kubernetes-schema", "ok"),
        Check("(all files)", "workloads", "efa-request", "ok"),
        Check("(all files)", "workloads", "rdma-request", "ok"),
    )


def test_unknown_field_fails_with_its_name(tmp_path):
    deployment = copy.deepcopy(DEPLOYMENT)
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")  # a typo the API server would drop
    out = write_output(tmp_path, {"manifests/10-base.yaml": [deployment]})

    row = only(validate_output(out, K8S), "kubernetes-schema")

    assert row.status == "fail"
    assert row.detail.startswith("spec: ")
    assert "'replica' was unexpected" in row.detail


def test_wrong_type_fails_with_field_path(tmp_path):
    deployment = copy.deepcopy(DEPLOYMENT)
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    out = write_output(tmp_path, {"examples/web.yaml": [deployment]})

    report = validate_output(out, K8S)

    row = only(report, "kubernetes-schema")
    assert report.failed and row.file == "examples/web.yaml"
    assert "spec.template.spec.containers[0].ports[0].containerPort: 'http' is not of type 'integer'" in row.detail


def test_every_error_of_an_object_is_reported(tmp_path):
    configmap = {**CONFIGMAP, "data": {"a": 1}, "immutable": "yes"}
    out = write_output(tmp_path, {"manifests/10-base.yaml": [configmap]})

    detail = only(validate_output(out, K8S), "kubernetes-schema").detail

    assert "data.a: 1 is not of type 'string'" in detail
    assert "immutable: 'yes' is not of type 'boolean'" in detail


def test_kind_unknown_to_the_kubernetes_version_is_unchecked(tmp_path):
    psp = {"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "old"}, "spec": {}}
    out = write_output(tmp_path, {"manifests/10-base.yaml": [psp]})

    row = only(validate_output(out, K8S), "kubernetes-schema")

    assert row.status == "unchecked"
    assert "Kubernetes 1.33 has no schema for policy/v1beta1 PodSecurityPolicy" in row.detail


def test_unparseable_yaml_and_non_objects_fail(tmp_path):
    out = write_output(
        tmp_path,
        {"manifests/10-broken.yaml": "kind: [unclosed\n", "examples/list.yaml": "- not\n- an object\n"},
    )

    report = validate_output(out, K8S)

    by_file = {c.file: c for c in report.checks}
    assert by_file["manifests/10-broken.yaml"].status == "fail"
    assert by_file["manifests/10-broken.yaml"].detail.startswith("not valid YAML")
    assert by_file["examples/list.yaml"].status == "fail"
    assert "apiVersion and kind are required" in by_file["examples/list.yaml"].detail


def test_values_files_and_sums_are_not_read_as_objects(tmp_path):
    values = {"driver": {"enabled": False}}
    out = write_output(tmp_path, {"helm/gpu-operator.values.yaml": values, "SHA256SUMS": "x  y\n"})

    assert validate_output(out, K8S).checks == ()


def test_unsupported_kubernetes_version_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"1\.25 to 1\.37, not 1\.20"):
        validate_output(tmp_path, "1.20")


# --- custom resources ---------------------------------------------------------------------------------------


@needs_reference
def test_cluster_policy_passes_against_its_crd(tmp_path):
    out = write_output(tmp_path, {"helm/previews/gpu-operator.yaml": [CLUSTER_POLICY]})

    report = validate_output(out, K8S, crds_dir=REFERENCE / "crds")

    assert only(report, "crd-schema") == Check(
        "helm/previews/gpu-operator.yaml", "ClusterPolicy cluster-policy", "crd-schema", "ok"
    )


@needs_reference
@needs_reference
def test_null_of_a_non_nullable_field_is_pruned_as_the_api_server_does(tmp_path):
    """The chart writes ``mig:`` with nothing under it when mig.strategy is empty; the server drops the null."""
    policy = copy.deepcopy(CLUSTER_POLICY)
    policy["spec"]["mig"] = None
    out = write_output(tmp_path, {"helm/previews/gpu-operator.yaml": [policy]})
    row = only(validate_output(out, K8S, crds_dir=REFERENCE / "crds"), "crd-schema")
    assert row.status == "ok", row.detail
    policy["spec"]["mig"] = {"strategy": "both"}
    write_output(tmp_path, {"helm/previews/gpu-operator.yaml": [policy]})
    row = only(validate_output(out, K8S, crds_dir=REFERENCE / "crds"), "crd-schema")
    assert row.status == "fail" and row.detail.startswith("spec.mig.strategy:")


def test_cluster_policy_unknown_field_fails(tmp_path):
    policy = copy.deepcopy(CLUSTER_POLICY)
    policy["spec"]["devicePlugin"]["migStrategy"] = "single"  # belongs under mig, the server would prune it
    out = write_output(tmp_path, {"helm/previews/gpu-operator.yaml": [policy]})

    row = only(validate_output(out, K8S, crds_dir=REFERENCE / "crds"), "crd-schema")

    assert row.status == "fail"
    assert row.detail == "spec.devicePlugin: Additional properties are not allowed ('migStrategy' was unexpected)"


@needs_reference
def test_cluster_policy_missing_required_and_bad_metadata_fail(tmp_path):
    policy = copy.deepcopy(CLUSTER_POLICY)
    del policy["spec"]["toolkit"]
    policy["metadata"]["label"] = {"a": "b"}  # typo of labels
    out = write_output(tmp_path, {"helm/previews/gpu-operator.yaml": [policy]})

    detail = only(validate_output(out, K8S, crds_dir=REFERENCE / "crds"), "crd-schema").detail

    assert "spec: 'toolkit' is a required property" in detail
    assert "metadata: Additional properties are not allowed ('label' was unexpected)" in detail


def test_custom_resource_without_crd_dir_is_unchecked(tmp_path):
    out = write_output(tmp_path, {"helm/previews/gpu-operator.yaml": [CLUSTER_POLICY]})

    report = validate_output(out, K8S)

    row = only(report, "crd-schema")
    assert row.status == "unchecked" and report.unchecked == (row,)
    assert row.detail == "no CRD for nvidia.com/v1 ClusterPolicy; pass --crds DIR"


@needs_reference
def test_custom_resource_without_its_crd_is_unchecked(tmp_path):
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "a"}}
    out = write_output(tmp_path, {"manifests/50-widgets.yaml": [widget]})

    row = only(validate_output(out, K8S, crds_dir=REFERENCE / "crds"), "crd-schema")

    assert row.status == "unchecked"
    assert row.detail.startswith("no CRD for example.com/v1 Widget in ")


def test_crd_schema_extensions(tmp_path):
    """int-or-string, nullable, preserve-unknown-fields and embedded resources follow the API server's rules."""
    crd = yaml.safe_load(
        """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: gadgets.example.com}
        spec:
          group: example.com
          names: {kind: Gadget, plural: gadgets}
          scope: Namespaced
          versions:
          - name: v1
            served: true
            storage: true
            schema:
              openAPIV3Schema:
                type: object
                properties:
                  apiVersion: {type: string}
                  kind: {type: string}
                  metadata: {type: object}
                  spec:
                    type: object
                    properties:
                      port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
                      size: {x-kubernetes-int-or-string: true}
                      mode: {type: string, enum: [a, b], nullable: true}
                      free:
                        type: object
                        properties: {x: {type: string}}
                        x-kubernetes-preserve-unknown-fields: true
                      template:
                        type: object
                        properties: {spec: {type: object}}
                        x-kubernetes-embedded-resource: true
        """
    )
    crds = write_output(tmp_path / "crds", {"example.com_gadgets.yaml": [crd]})
    good = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "good", "namespace": "a"},
        "spec": {
            "port": "http",
            "size": 3,
            "mode": None,
            "free": {"anything": [1]},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
        },
    }
    bad = {**good, "metadata": {"name": "bad", "namespace": "a"}, "spec": {"port": 1.5, "mode": "c", "extra": 1}}
    out = write_output(tmp_path / "out", {"manifests/50-gadgets.yaml": [good, bad]})

    ok, failed = [c for c in validate_output(out, K8S, crds_dir=crds).checks if c.check == "crd-schema"]

    assert ok.status == "ok", ok.detail
    assert failed.status == "fail"
    assert "spec: Additional properties are not allowed ('extra' was unexpected)" in failed.detail
    assert "spec.mode: 'c' is not one of" in failed.detail
    assert "spec.port: 1.5 is not valid under any of the given schemas" in failed.detail


# --- Helm values --------------------------------------------------------------------------------------------


@needs_reference
def test_known_chart_values_pass(tmp_path):
    values = {
        "driver": {"enabled": False},
        "toolkit": {"enabled": True},
        "daemonsets": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}], "labels": {"team": "ml"}},
        "node-feature-discovery": {"worker": {"tolerations": []}},
    }
    out = helm_output(tmp_path, values)

    report = validate_output(out, K8S, chart_values_dir=REFERENCE / "charts")

    assert only(report, "chart-values") == Check("helm/gpu-operator.values.yaml", "gpu-operator", "chart-values", "ok")


@needs_reference
def test_typo_in_chart_values_fails_with_suggestion(tmp_path):
    out = helm_output(tmp_path, {"driver": {"enabled": False}, "devicePlugin": {"enabeld": True}, "toolkti": {}})

    row = only(validate_output(out, K8S, chart_values_dir=REFERENCE / "charts"), "chart-values")

    assert row.status == "fail"
    assert "devicePlugin.enabeld: unknown key; did you mean enabled" in row.detail
    assert "toolkti: unknown key; did you mean toolkit" in row.detail


@needs_reference
def test_chart_values_shape_mismatch_fails(tmp_path):
    out = helm_output(tmp_path, {"driver": True, "daemonsets": {"tolerations": {"key": "x"}}})

    detail = only(validate_output(out, K8S, chart_values_dir=REFERENCE / "charts"), "chart-values").detail

    assert "driver: the chart expects a mapping here, not a scalar" in detail
    assert "daemonsets.tolerations: the chart expects a list here, not a mapping" in detail


@needs_reference
def test_keys_documented_only_in_comments_pass(tmp_path):
    config = {"name": "metrics", "create": True, "data": "DCGM_FI_DEV_GPU_UTIL, gauge, GPU utilization.\n"}
    values = {"dcgmExporter": {"config": config}}
    out = helm_output(tmp_path, values)

    row = only(validate_output(out, K8S, chart_values_dir=REFERENCE / "charts"), "chart-values")

    assert row.status == "ok", row.detail


@needs_reference
def test_unknown_key_below_a_commented_key_fails(tmp_path):
    out = helm_output(tmp_path, {"dcgmExporter": {"config": {"nmae": "metrics"}, "name": "x"}})

    detail = only(validate_output(out, K8S, chart_values_dir=REFERENCE / "charts"), "chart-values").detail

    assert "dcgmExporter.config.nmae: unknown key; did you mean name" in detail
    assert "dcgmExporter.name: unknown key" in detail  # "name" is commented one level deeper, under config


@needs_reference
def test_missing_chart_values_file_is_unchecked(tmp_path):
    out = helm_output(tmp_path, {"controller": {"replicaCount": 2}}, chart="no-such-chart")

    row = only(validate_output(out, K8S, chart_values_dir=REFERENCE / "charts"), "chart-values")

    assert row.status == "unchecked"
    assert "no-such-chart.values.yaml is missing" in row.detail


def test_chart_values_without_dir_are_unchecked(tmp_path):
    out = helm_output(tmp_path, {"driver": {"enabled": False}})

    row = only(validate_output(out, K8S), "chart-values")

    assert row.status == "unchecked"
    assert "pass --chart-values DIR" in row.detail


def test_release_with_missing_values_file_fails(tmp_path):
    out = helm_output(tmp_path, {})
    (out / "helm" / "gpu-operator.values.yaml").unlink()

    row = only(validate_output(out, K8S), "chart-values")

    assert row.status == "fail"
    assert "helm/gpu-operator.values.yaml, which is missing" in row.detail


@needs_reference
def test_every_reference_chart_accepts_its_own_defaults(tmp_path):
    charts = sorted((REFERENCE / "charts").glob("*.values.yaml"))
    releases = []
    for defaults in charts:
        chart = defaults.name.removesuffix(".values.yaml")
        releases.append({"name": chart, "chart": chart, "values": defaults.name})
        write_output(tmp_path, {f"helm/{defaults.name}": defaults.read_text()})
    write_output(tmp_path, {"helm/releases.yaml": {"releases": releases}})

    report = validate_output(tmp_path, K8S, chart_values_dir=REFERENCE / "charts")

    values_checks = [c for c in report.checks if c.check == "chart-values"]
    assert len(values_checks) == len(charts) >= 10
    assert [c for c in report.checks if c.status == "fail"] == []


def test_workload_selecting_efa_without_requesting_it_fails(tmp_path):
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": "team-a"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox:1.36", "env": [{"name": "FI_PROVIDER", "value": "efa"}]}
                    ],
                }
            }
        },
    }
    out = write_output(tmp_path, {"examples/train.yaml": [job]})
    [efa] = [c for c in validate_output(out, K8S).checks if c.check == "efa-request"]
    assert efa.status == "fail" and "Job team-a/train" in efa.subject

    job["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"vpc.amazonaws.com/efa": 4}}
    out = write_output(tmp_path / "fixed", {"examples/train.yaml": [job]})
    [efa] = [c for c in validate_output(out, K8S).checks if c.check == "efa-request"]
    assert efa.status == "ok"


def test_workload_with_infiniband_on_but_no_hca_fails(tmp_path):
    config_map = {
        **CONFIGMAP,
        "metadata": {"name": "nccl-env-ib", "namespace": "team-a"},
        "data": {"NCCL_IB_DISABLE": "0"},
    }
    deployment = copy.deepcopy(DEPLOYMENT)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"configMapRef": {"name": "nccl-env-ib"}}]
    out = write_output(tmp_path, {"manifests/10-base.yaml": [config_map, deployment]})
    [rdma] = [c for c in validate_output(out, K8S).checks if c.check == "rdma-request"]
    assert rdma.status == "fail" and rdma.subject == "Deployment team-a/web container web"

    container["resources"] = {"limits": {"rdma/ib": 1}}
    out = write_output(tmp_path / "fixed", {"manifests/10-base.yaml": [config_map, deployment]})
    [rdma] = [c for c in validate_output(out, K8S).checks if c.check == "rdma-request"]
    assert rdma.status == "ok"


# --- every custom resource has its CRD from the stack -------------------------------------------------------


def release_entry(name: str, chart: str) -> dict:
    return {"name": name, "chart": chart, "values": f"{name}.values.yaml"}


def crd_sources(report: Report) -> dict[str, Check]:
    return {c.subject: c for c in report.checks if c.check == "crd-source"}


def test_chart_value_that_creates_a_service_monitor_needs_the_prometheus_operator_crd(tmp_path):
    """The gpu-operator's dcgmExporter.serviceMonitor.enabled defaults to true: left out, it is still on."""
    out = write_output(
        tmp_path,
        {
            "helm/releases.yaml": {"releases": [release_entry("gpu-operator", "gpu-operator")]},
            "helm/gpu-operator.values.yaml": {"driver": {"enabled": False}},
            "helm/previews/gpu-operator.yaml": [CLUSTER_POLICY],
        },
    )
    rows = crd_sources(validate_output(out, K8S))
    assert rows["ClusterPolicy cluster-policy"].status == "ok"
    monitor = rows["ServiceMonitor from gpu-operator dcgmExporter.serviceMonitor.enabled"]
    assert monitor.status == "fail"
    assert "monitoring.coreos.com ServiceMonitor" in monitor.detail
    assert "add a release of kube-prometheus-stack" in monitor.detail
    assert "set dcgmExporter.serviceMonitor.enabled false" in monitor.detail

    write_output(tmp_path, {"helm/gpu-operator.values.yaml": {"dcgmExporter": {"serviceMonitor": {"enabled": False}}}})
    assert [c for c in validate_output(out, K8S).checks if c.status == "fail"] == []

    releases = [release_entry("gpu-operator", "gpu-operator"), release_entry("monitoring", "kube-prometheus-stack")]
    write_output(
        tmp_path,
        {
            "helm/releases.yaml": {"releases": releases},
            "helm/gpu-operator.values.yaml": {},
            "helm/monitoring.values.yaml": {},
        },
    )
    monitor = crd_sources(validate_output(out, K8S))[
        "ServiceMonitor from gpu-operator dcgmExporter.serviceMonitor.enabled"
    ]
    assert (monitor.status, monitor.detail) == ("ok", "monitoring.coreos.com from release monitoring")


def test_custom_resource_object_needs_a_release_or_a_declared_prerequisite(tmp_path):
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "team-a"},
        "spec": {},
    }
    out = write_output(tmp_path, {"manifests/60-routes.yaml": [route], "helm/releases.yaml": {"releases": []}})
    row = crd_sources(validate_output(out, K8S))["HTTPRoute team-a/web"]
    assert row.status == "fail" and "gateway.networking.k8s.io HTTPRoute" in row.detail
    assert "crd_prerequisites" in row.detail

    write_output(tmp_path, {"helm/releases.yaml": {"releases": [], "crd_prerequisites": ["gateway.networking.k8s.io"]}})
    row = crd_sources(validate_output(out, K8S))["HTTPRoute team-a/web"]
    assert (row.status, row.detail) == ("ok", "gateway.networking.k8s.io from declared prerequisite")


def test_a_chart_missing_from_the_crd_mapping_fails(tmp_path):
    out = write_output(
        tmp_path,
        {"helm/releases.yaml": {"releases": [release_entry("x", "mystery")]}, "helm/x.values.yaml": {}},
    )
    row = crd_sources(validate_output(out, K8S))["x"]
    assert row.status == "fail" and "CHART_CRD_GROUPS" in row.detail


@pytest.mark.parametrize("stack", ["eks-t4", "eks-h100", "onprem-dgx", "onprem-k3s"])
def test_rendered_stacks_create_no_custom_resource_without_its_crd(stack, tmp_path):
    """Old output failed here: the gpu-operator and ingress ServiceMonitors were on with no CRD in the stack."""
    spec = spec_of(stack)
    write_tree(render(spec).files(), tmp_path / "out")
    rows = [c for c in validate_output(tmp_path / "out", spec.kubernetes.version).checks if c.check == "crd-source"]
    assert rows and [c for c in rows if c.status != "ok"] == []
