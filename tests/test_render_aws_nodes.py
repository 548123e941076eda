"""Node autoscaling as rendered data: cluster-autoscaler values and Karpenter NodePools/EC2NodeClasses checked
against the upstream chart values and CRDs, and the node-template tags cluster-autoscaler reads."""

from __future__ import annotations

import pytest

from gpucluster.output import write_tree
from gpucluster.plan import make_plan
from gpucluster.render import render
from gpucluster.render.aws_nodes import cluster_autoscaler_tags
from gpucluster.validate import validate_output
from stacks import REFERENCE, spec_of

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "crds").is_dir() or not (REFERENCE / "charts").is_dir(),
    reason=f"upstream reference data (CRDs, chart values) not found at {REFERENCE}",
)


def karpenter_spec(stack: str):
    spec = spec_of(stack)
    return spec_of(stack, autoscaling={**spec.autoscaling.model_dump(), "node_autoscaler": "karpenter"})


def checks_of(bundle, tmp_path, version: str):
    out = tmp_path / "out"
    write_tree(bundle.files(), out)
    return validate_output(out, version, REFERENCE / "crds", REFERENCE / "charts").checks


@needs_reference
@pytest.mark.parametrize("stack", ["eks-t4", "eks-h100"])
def test_karpenter_objects_and_values_pass_the_upstream_crds_and_chart(stack, tmp_path):
    spec = karpenter_spec(stack)
    checks = checks_of(render(spec), tmp_path, spec.kubernetes.version)
    objects = [c for c in checks if c.subject.split()[0] in ("NodePool", "EC2NodeClass") and c.check == "crd-schema"]
    assert len(objects) == 2 * len(spec.node_pools)
    assert all(c.status == "ok" for c in objects)
    (values,) = [c for c in checks if c.subject == "karpenter" and c.check == "chart-values"]
    assert values.status == "ok"
    assert not [c for c in checks if c.status != "ok"]


@needs_reference
def test_a_broken_node_pool_fails_its_crd(tmp_path):
    spec = karpenter_spec("eks-t4")
    bundle = render(spec)
    (node_pool,) = [o for o in bundle.custom_resources["30-karpenter"] if o["kind"] == "NodePool"]
    node_pool["spec"]["disruption"]["consolidationPolicy"] = "Never"
    checks = checks_of(bundle, tmp_path, spec.kubernetes.version)
    (failed,) = [c for c in checks if c.status == "fail"]
    assert failed.subject.startswith("NodePool") and "consolidationPolicy" in failed.detail


@needs_reference
def test_cluster_autoscaler_values_pass_the_chart(tmp_path):
    spec = spec_of("eks-h100")
    checks = checks_of(render(spec), tmp_path, spec.kubernetes.version)
    (values,) = [c for c in checks if c.subject == "cluster-autoscaler"]
    assert (values.check, values.status) == ("chart-values", "ok")


def test_node_template_tags_describe_gpus_labels_and_taints():
    plan = make_plan(spec_of("eks-h100"))
    pool = next(p for p in plan.pools if p.name == "a100-mig")
    tags = cluster_autoscaler_tags(plan.spec, pool)
    template = "k8s.io/cluster-autoscaler/node-template"
    assert tags[f"{template}/resources/nvidia.com/gpu"] == "8"
    assert tags[f"{template}/label/nvidia.com/mig.config"] == "a100-mig"
    assert tags[f"{template}/taint/nvidia.com/gpu"] == "present:NoSchedule"
    assert tags["k8s.io/cluster-autoscaler/training"] == "owned"
    assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
