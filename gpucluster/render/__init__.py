"""Spec -> plan -> Kubernetes objects and Helm releases, gathered in a ``Bundle``.

Each component module builds plain data from the plan; this module only decides which file each
group of objects goes to (``NN-`` prefixes give the ``kubectl apply`` order).
"""

from __future__ import annotations

from gpucluster.onprem import inventory as onprem  # a module: onprem.inventory imports gpucluster.render too
from gpucluster.plan import make_plan
from gpucluster.render import (
    admission,
    autoscaling,
    aws_nodes,
    backups,
    fabric,
    gpu,
    guardian,
    ingress,
    kueue,
    monitoring,
    namespaces,
    nccl,
    tenancy,
)
from gpucluster.render.bundle import Bundle
from gpucluster.render.k8s import to_yaml
from gpucluster.spec import ClusterSpec


def render(spec: ClusterSpec) -> Bundle:
    plan = make_plan(spec)
    return Bundle(
        manifests={
            "00-namespaces": namespaces.namespaces(plan),
            "10-gpu-config": gpu.config_maps(plan),
            "20-tenancy": tenancy.tenant_objects(plan),
            "25-admission-policies": admission.admission_policies(plan),
            "30-network-policies": tenancy.network_policies(plan),
            "40-disruption-budgets": tenancy.disruption_budgets(plan),
            "50-nccl": nccl.nccl_config_maps(plan),
            "60-ingress": ingress.alb_ingress(plan),
            "70-backups": backups.etcd_snapshot_objects(plan),
            "75-dashboards": monitoring.monitoring_objects(plan),
            "80-guardian": guardian.guardian_objects(plan),
            "90-workloads": autoscaling.workload_objects(plan),
        },
        releases=[
            gpu.operator_release(plan),
            *fabric.efa_device_plugin_release(plan),
            *fabric.network_operator_release(plan),
            *ingress.ingress_releases(plan),
            *backups.velero_release(plan),
            *kueue.kueue_release(plan),
            *aws_nodes.node_releases(plan),
            *monitoring.monitoring_releases(plan),
            *autoscaling.autoscaling_releases(plan),
        ],
        custom_resources={
            "10-network-operator": fabric.nic_cluster_policy(plan),
            "15-ipoib": fabric.ipoib_networks(plan),
            "20-kueue": kueue.kueue_objects(plan),
            "30-karpenter": aws_nodes.karpenter_objects(plan),
            "40-autoscaling": autoscaling.scaled_objects(plan),
        },
        examples={"nccl-test": nccl.nccl_test_example(plan), "nccl-multi-node": nccl.multi_node_example(plan)},
        ansible={onprem.INVENTORY_FILE: onprem.HEADER + to_yaml(onprem.inventory(plan))}
        if spec.platform != "aws"
        else {},
    )
