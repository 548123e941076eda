"""The rendered GPU layer on the new cluster, through pulumi-kubernetes, so one ``pulumi up`` does it all.

A Kubernetes provider reaches the cluster with a kubeconfig built from its outputs (tokens from
``aws eks get-token``). The render ``Bundle`` is deployed as it is checked by ``gpucluster validate``:
namespaces first, then every Helm release at its pinned version with its values (plus the values only
known after deployment, such as IAM role ARNs), then the remaining manifests and the custom resources
whose CRDs the releases install.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from gpucluster.aws.eks import Cluster
from gpucluster.render.bundle import Bundle, HelmRelease


def kubeconfig(cluster: Cluster, region: str) -> pulumi.Output[str]:
    def document(args: list[str]) -> str:
        endpoint, certificate_authority = args
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", cluster.name, "--region", region, "--output", "json"],
            }
        }
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster.name,
                    "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority},
                }
            ],
            "users": [{"name": cluster.name, "user": user}],
            "contexts": [{"name": cluster.name, "context": {"cluster": cluster.name, "user": cluster.name}}],
            "current-context": cluster.name,
        }
        return json.dumps(config)

    return pulumi.Output.all(cluster.endpoint, cluster.certificate_authority).apply(document)


def merged(values: dict, overlay: dict) -> dict:
    """``values`` with ``overlay`` merged in, mapping by mapping."""
    result = dict(values)
    for key, value in overlay.items():
        current = result.get(key)
        result[key] = merged(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
    return result


def _chart(release: HelmRelease) -> dict[str, Any]:
    if release.repository.startswith("oci://"):
        return {"chart": f"{release.repository}/{release.chart}"}
    return {"chart": release.chart, "repository_opts": {"repo": release.repository}}


class GpuLayer(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        bundle: Bundle,
        overlays: dict[str, dict],
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions,
    ):
        super().__init__("gpucluster:aws:GpuLayer", name, None, opts)
        objects = [obj for _, group in sorted(bundle.manifests.items()) for obj in group]
        namespaces = [obj for obj in objects if obj["kind"] == "Namespace"]
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        created = k8s.yaml.v2.ConfigGroup(f"{name}-namespaces", objs=namespaces, opts=child)
        self.releases = [
            k8s.helm.v3.Release(
                release.name,
                name=release.name,
                **_chart(release),
                version=release.version,
                namespace=release.namespace,
                create_namespace=True,
                values=merged(release.values, overlays.get(release.name, {})),
                atomic=True,
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[created])),
            )
            for release in bundle.releases
        ]
        custom = [obj for _, group in sorted(bundle.custom_resources.items()) for obj in group]
        rest = [obj for obj in objects if obj["kind"] != "Namespace"] + custom
        k8s.yaml.v2.ConfigGroup(
            f"{name}-manifests",
            objs=rest,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[created, *self.releases])),
        )
        self.register_outputs({})
