"""Kubernetes objects as plain data, and their one serialization to YAML."""

from __future__ import annotations

from typing import Any

import yaml

from gpucluster.plan import MANAGED_BY


def k8s_object(
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **body: Any,
) -> dict[str, Any]:
    """An object with apiVersion, kind and metadata first, then ``body`` in the order given."""
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = {**MANAGED_BY, **(labels or {})}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


def config_map(name: str, namespace: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict:
    return k8s_object("v1", "ConfigMap", name, namespace, labels, data=data)


def to_yaml(data: Any) -> str:
    """Serialize one document: keys in insertion order, multi-line strings as literal blocks."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)


def to_yaml_documents(objects: list[dict]) -> str:
    return "".join(f"---\n{to_yaml(obj)}" for obj in objects)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)
