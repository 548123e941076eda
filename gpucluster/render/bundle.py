"""The rendered output as data, and its files.

Layout of an output directory:

- ``manifests/NN-<component>.yaml``: objects to ``kubectl apply -f manifests/`` (in file order);
- ``helm/releases.yaml`` and ``helm/<release>.values.yaml``: upstream charts, pinned, with our values;
- ``helm/previews/<release>.yaml``: objects a chart creates from those values (checked, not applied);
- ``custom-resources/NN-<component>.yaml``: custom resources whose CRDs a release installs, to apply after
  the releases;
- ``examples/<name>.yaml``: sample workloads wired for this cluster (not applied);
- ``ansible/inventory.yml``: on-prem and hybrid stacks' Ansible inventory (``ansible-playbook -i``);
- ``SHA256SUMS``: every other file with its sha256 (``sha256sum -c SHA256SUMS``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from gpucluster.render.k8s import to_yaml, to_yaml_documents

INDEX_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class HelmRelease:
    name: str
    chart: str
    repository: str
    version: str
    namespace: str
    values: dict
    previews: tuple[dict, ...] = ()

    @property
    def values_file(self) -> str:
        return f"{self.name}.values.yaml"


@dataclass(frozen=True)
class Bundle:
    manifests: dict[str, list[dict]]
    releases: list[HelmRelease] = field(default_factory=list)
    custom_resources: dict[str, list[dict]] = field(default_factory=dict)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    # API groups whose CRDs the cluster must already have (no release here installs them); see gpucluster.crds.
    crd_prerequisites: tuple[str, ...] = ()
    ansible: dict[str, str] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        """Relative path -> content, including the SHA256SUMS index, in a stable order."""
        texts: dict[str, str] = {}
        for component, objects in sorted(self.manifests.items()):
            if objects:
                texts[f"manifests/{component}.yaml"] = to_yaml_documents(objects)
        if self.releases:
            index = [
                {
                    "name": r.name,
                    "chart": r.chart,
                    "repository": r.repository,
                    "version": r.version,
                    "namespace": r.namespace,
                    "values": r.values_file,
                }
                for r in self.releases
            ]
            prerequisites = {"crd_prerequisites": list(self.crd_prerequisites)} if self.crd_prerequisites else {}
            texts["helm/releases.yaml"] = to_yaml({"releases": index, **prerequisites})
        for release in self.releases:
            texts[f"helm/{release.values_file}"] = to_yaml(release.values)
            if release.previews:
                texts[f"helm/previews/{release.name}.yaml"] = to_yaml_documents(list(release.previews))
        for component, objects in sorted(self.custom_resources.items()):
            if objects:
                texts[f"custom-resources/{component}.yaml"] = to_yaml_documents(objects)
        for name, objects in sorted(self.examples.items()):
            if objects:
                texts[f"examples/{name}.yaml"] = to_yaml_documents(objects)
        for name, text in sorted(self.ansible.items()):
            texts[f"ansible/{name}"] = text
        files = {path: text.encode() for path, text in texts.items()}
        files[INDEX_FILE] = "".join(
            f"{hashlib.sha256(content).hexdigest()}  {path}\n" for path, content in sorted(files.items())
        ).encode()
        return files
