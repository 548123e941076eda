"""Check a rendered output directory against the real schemas before anything reaches a cluster.

- Objects in ``manifests/``, ``custom-resources/``, ``examples/`` and ``helm/previews/`` of a built-in API group
  are checked with kubernetes-validate's strict schemas for the target Kubernetes minor version (unknown fields
  fail).
- Custom resources are checked against their CRD's ``openAPIV3Schema``, made strict: the API server
  silently prunes unknown fields, so here they fail. Null values of non-nullable fields are dropped first,
  as the server does. CEL rules (``x-kubernetes-validations``) are not run.
- Workloads that set ``FI_PROVIDER=efa`` must request ``vpc.amazonaws.com/efa``, and workloads that set
  ``NCCL_IB_DISABLE=0`` an ``rdma/...`` resource (else NCCL silently uses TCP).
- Helm values are checked key by key against the chart's default ``values.yaml``; keys the chart only
  documents in commented-out lines are accepted.
- Every custom resource the output creates (an object, a chart preview, or a chart value that switches one
  on) needs its CRD from a release in ``helm/releases.yaml`` (``gpucluster.crds``) or a declared
  prerequisite (its ``crd_prerequisites``): else it would fail to apply, or be silently skipped.
- PrometheusRules are checked with ``promtool check rules``, the Alertmanager configuration in
  kube-prometheus-stack's values with ``amtool check-config`` (``gpucluster.promcheck``).

Whatever cannot be checked (no CRD, no chart values file) is reported as ``unchecked``, never as ``ok``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from gpucluster.crds import CHART_CRD_GROUPS, CHART_VALUE_SWITCHES, charts_installing
from gpucluster.promcheck import ToolResult, check_alertmanager_config, check_rule_groups
from gpucluster.render.nccl import POD_SPEC_PATHS, efa_env_without_request, ib_env_without_request

OBJECT_DIRS = ("manifests", "custom-resources", "examples", "helm/previews")
RELEASES_FILE = "helm/releases.yaml"
OBJECT_META_REF = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
MAX_ERRORS_PER_OBJECT = 10
MAX_MESSAGE_CHARS = 200

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# CRD schemas are OpenAPI 3.0 schema objects, whose JSON Schema base is draft 4 (boolean exclusiveMaximum, ...).
_OPENAPI_SCHEMA_CHECK = jsonschema.Draft4Validator(jsonschema.Draft4Validator.META_SCHEMA)
# A key in a commented-out line of a chart's values file, e.g. "  # config:" or "    #   name: x".
_COMMENTED_KEY = re.compile(r"^\s*#\s*(?P<key>[\w./-]+|\"[^\"]*\"|'[^']*'):(?:\s|$)")


@dataclass(frozen=True)
class Check:
    """One checked thing: an object against its schema, or a release's values against its chart."""

    file: str  # path relative to the output dir, e.g. "manifests/20-tenancy.yaml"
    subject: str  # "Kind namespace/name", "Kind name" (cluster-scoped) or the release name
    check: str  # "kubernetes-schema" | "crd-schema" | "chart-values" | "efa-request" | "promtool" | "amtool"
    status: str  # "ok" | "fail" | "unchecked"
    detail: str = ""  # fail: field path and message; unchecked: why it could not be checked


@dataclass(frozen=True)
class Report:
    """Every check of one output directory, in file order (objects first, then Helm releases)."""

    checks: tuple[Check, ...]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    @property
    def unchecked(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == "unchecked")


class ReferenceDataError(ValueError):
    """Reference data (CRDs, chart values) that cannot be used to check anything: one problem per line, each
    naming its file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def validate_output(
    out_dir: Path,
    kubernetes_version: str,
    crds_dir: Path | None = None,
    chart_values_dir: Path | None = None,
) -> Report:
    """Check every object and every Helm release in a rendered output directory.

    ``kubernetes_version`` is a minor version such as "1.33". Raises ``ValueError`` when kubernetes-validate
    has no schemas for it, ``ReferenceDataError`` (every problem) when a CRD file or a chart's values file in
    use is malformed, ``NotADirectoryError`` when ``out_dir`` or ``crds_dir`` is not a directory.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is not a directory")
    schemas = _kubernetes_schemas(kv.major_minor(kubernetes_version.removeprefix("v")))
    crds = None
    if crds_dir is not None:
        if not Path(crds_dir).is_dir():
            raise NotADirectoryError(f"CRD directory {crds_dir} is not a directory")
        crds = _crd_index(Path(crds_dir).resolve(), _stamp(Path(crds_dir)))
    problems = [*(crds.problems if crds else []), *_chart_values_problems(out_dir, chart_values_dir)]
    if problems:
        raise ReferenceDataError(problems)
    checks: list[Check] = []
    objects: list[dict] = []
    custom: list[tuple[str, dict]] = []  # (file, object) of every custom resource
    for path in [p for d in OBJECT_DIRS for p in sorted((out_dir / d).glob("*.yaml"))]:
        file = path.relative_to(out_dir).as_posix()
        try:
            documents = [d for d in yaml.load_all(path.read_text(), Loader=_Loader) if d is not None]
        except yaml.YAMLError as e:
            checks.append(Check(file, "(whole file)", "kubernetes-schema", "fail", _yaml_problem(e)))
            continue
        checks.extend(_check_object(file, obj, schemas, crds) for obj in documents)
        checks.extend(_check_prometheus_rules(file, documents))
        objects.extend(obj for obj in documents if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict))
        custom.extend((file, obj) for obj in documents if _is_custom_resource(obj, schemas))
    checks.extend(_check_fabric_requests(objects))
    checks.extend(_check_releases(out_dir, Path(chart_values_dir) if chart_values_dir else None))
    checks.extend(_check_crd_sources(out_dir, custom))
    checks.extend(_check_alertmanager_configs(out_dir))
    return Report(tuple(checks))


# --- Prometheus rules and Alertmanager configuration ------------------------------------------------------


def _check_prometheus_rules(file: str, documents: list) -> list[Check]:
    """``promtool check rules`` on each PrometheusRule's ``spec.groups`` (a rules file as is)."""
    checks = []
    for obj in documents:
        if isinstance(obj, dict) and obj.get("kind") == "PrometheusRule":
            groups = (obj.get("spec") or {}).get("groups")
            result = (
                check_rule_groups(groups) if isinstance(groups, list) else ToolResult("fail", "no spec.groups list")
            )
            checks.append(Check(file, _subject(obj), "promtool", result.status, result.detail))
    return checks


def _check_alertmanager_configs(out_dir: Path) -> list[Check]:
    """``amtool check-config`` on the ``alertmanager.config`` of every kube-prometheus-stack release."""
    checks = []
    for release in _releases(out_dir):
        if release.get("chart") != "kube-prometheus-stack" or not isinstance(release.get("values"), str):
            continue
        file = f"helm/{release['values']}"
        try:
            values = yaml.load((out_dir / file).read_text(), Loader=_Loader) or {}
        except (OSError, yaml.YAMLError):
            continue  # reported by the chart-values check
        config = values.get("alertmanager", {}).get("config") if isinstance(values, dict) else None
        if isinstance(config, dict):
            result = check_alertmanager_config(config)
            checks.append(
                Check(file, f"{release.get('name')} alertmanager.config", "amtool", result.status, result.detail)
            )
    return checks


def _releases(out_dir: Path) -> list[dict]:
    try:
        content = yaml.load((out_dir / RELEASES_FILE).read_text(), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return []
    releases = content.get("releases") if isinstance(content, dict) else None
    return [r for r in releases if isinstance(r, dict)] if isinstance(releases, list) else []


def _check_fabric_requests(objects: list[dict]) -> list[Check]:
    """Workloads that select a fabric (EFA's libfabric provider, InfiniBand verbs) must request its devices, or
    NCCL silently uses TCP."""
    if not any(obj.get("kind") in POD_SPEC_PATHS for obj in objects):
        return []
    checks = []
    for check, find, detail in (
        ("efa-request", efa_env_without_request, "sets FI_PROVIDER=efa but requests no vpc.amazonaws.com/efa"),
        ("rdma-request", ib_env_without_request, "sets NCCL_IB_DISABLE=0 but requests no rdma/... resource"),
    ):
        hits = find(objects)
        fails = [Check("(all files)", hit, check, "fail", f"{detail}: NCCL would fall back to TCP") for hit in hits]
        checks.extend(fails or [Check("(all files)", "workloads", check, "ok")])
    return checks


# --- objects --------------------------------------------------------------------------------------------


def _check_object(file: str, obj: Any, schemas: _KubernetesSchemas, crds: _CrdIndex | None) -> Check:
    if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        problem = "not a Kubernetes object: apiVersion and kind are required"
        return Check(file, "(document)", "kubernetes-schema", "fail", problem)
    subject = _subject(obj)
    api_version, kind = obj["apiVersion"], obj["kind"]
    group, _, version = api_version.rpartition("/")
    builtin = "." not in group or group.endswith(".k8s.io")
    if builtin:
        try:
            validator = schemas.validator(api_version, kind)
        except kv.InvalidSchemaError as e:
            return Check(file, subject, "kubernetes-schema", "unchecked", e.message)
        if validator is not None:
            return _run(validator, obj, file, subject, "kubernetes-schema")
    validator = crds.validator(group, kind, version, schemas) if crds is not None else None
    if crds is not None and validator is not None:
        return _run(validator, crds.pruned_nulls(group, kind, version, obj), file, subject, "crd-schema")
    missing = f"no CRD for {api_version} {kind}" + ("; pass --crds DIR" if crds is None else f" in {crds.directory}")
    if builtin:
        missing = f"Kubernetes {schemas.version} has no schema for {api_version} {kind} and {missing}"
    return Check(file, subject, "kubernetes-schema" if builtin else "crd-schema", "unchecked", missing)


def _subject(obj: dict) -> str:
    metadata = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    name, namespace = metadata.get("name", "(unnamed)"), metadata.get("namespace")
    return f"{obj['kind']} {namespace}/{name}" if namespace else f"{obj['kind']} {name}"


def _run(validator: jsonschema.protocols.Validator, obj: dict, file: str, subject: str, check: str) -> Check:
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return Check(file, subject, check, "ok")
    problems = [f"{_dotted(e.absolute_path) or '(root)'}: {_shorten(e.message)}" for e in errors]
    if len(problems) > MAX_ERRORS_PER_OBJECT:
        problems[MAX_ERRORS_PER_OBJECT:] = [f"and {len(problems) - MAX_ERRORS_PER_OBJECT} more"]
    return Check(file, subject, check, "fail", "; ".join(problems))


def _dotted(path: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _shorten(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 1] + "…"


class _KubernetesSchemas:
    """kubernetes-validate's strict schemas for one Kubernetes minor version, loaded once.

    ``kubernetes_validate.validate`` re-reads the 1.4 MB definitions file on every call; this keeps it (and a
    validator per kind) in memory and otherwise resolves schema files exactly as ``validate`` does.
    """

    def __init__(self, version: str):
        releases = {kv.major_minor(v): v for v in kv.all_versions()}  # sorted oldest first
        if version not in releases:
            supported = list(releases)
            raise ValueError(
                f"kubernetes-validate {kv.__version__} has schemas for Kubernetes {supported[0]}"
                f" to {supported[-1]}, not {version}"
            )
        self.version = version
        self.directory = f"kubernetes-json-schema/v{releases[version]}-local-strict"
        definitions = kv.schema_contents(f"{self.directory}/_definitions.json", version)
        self.registry: Registry = Resource.from_contents(definitions) @ Registry()
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator | None] = {}

    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        """The validator for one kind, or None when this Kubernetes version has no such API."""
        key = (api_version, kind)
        if key not in self._validators:
            # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1.
            name = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            try:
                schema = kv.schema_contents(f"{self.directory}/{kind.lower()}-{name}.json", self.version)
            except FileNotFoundError:
                self._validators[key] = None
            else:
                self._validators[key] = jsonschema.Draft202012Validator(schema, registry=self.registry)
        return self._validators[key]


@lru_cache(maxsize=4)
def _kubernetes_schemas(version: str) -> _KubernetesSchemas:
    return _KubernetesSchemas(version)


# --- custom resources -------------------------------------------------------------------------------------


class _CrdIndex:
    """The CRDs in a directory, by (group, kind, version), with strict validators built on first use.

    ``problems`` lists what makes a file or a CRD in it unusable (not YAML, no ``spec.versions``, a schema
    that is not a valid JSON Schema, ...), each naming the file.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.problems: list[str] = []
        self._schemas: dict[tuple[str, str, str], dict] = {}
        self._validators: dict[tuple[str, str, str, str], jsonschema.protocols.Validator] = {}
        for path in sorted(directory.glob("*.y*ml")):
            self.problems.extend(f"{path}: {problem}" for problem in self._add_file(path))

    def _add_file(self, path: Path) -> list[str]:
        """Index the CRDs of one file; return its problems."""
        if not path.is_file():
            return ["not a regular file"]
        try:
            documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader))
        except OSError as e:
            return [f"cannot read: {e.strerror}"]
        except UnicodeDecodeError as e:
            return [f"not UTF-8 text (byte {e.start})"]
        except yaml.YAMLError as e:
            return [_yaml_problem(e)]
        problems: list[str] = []
        for number, crd in enumerate(documents, 1):
            if isinstance(crd, dict) and crd.get("kind") == "CustomResourceDefinition":
                metadata = crd.get("metadata")
                name = metadata.get("name") if isinstance(metadata, dict) else None
                problems.extend(f"CRD {name or f'in document {number}'}: {p}" for p in self._add_crd(crd))
        return problems

    def _add_crd(self, crd: dict) -> list[str]:
        """Index one CRD's versions; return what is wrong with it."""
        spec = crd.get("spec")
        if not isinstance(spec, dict):
            return ["no 'spec' mapping"]
        names = spec.get("names")
        group, kind = spec.get("group"), names.get("kind") if isinstance(names, dict) else None
        if not isinstance(group, str) or not isinstance(kind, str):
            return ["needs spec.group and spec.names.kind"]
        versions = spec.get("versions")
        if not isinstance(versions, list) or not versions:
            return ["spec.versions lists no versions"]
        problems = []
        for index, version in enumerate(versions):
            name = version.get("name") if isinstance(version, dict) else None
            schema = version.get("schema") if isinstance(version, dict) else None
            schema = schema.get("openAPIV3Schema") if isinstance(schema, dict) else None
            where = f"spec.versions[{index}]" + (f" ({name})" if isinstance(name, str) else "")
            if not isinstance(name, str):
                problems.append(f"{where}: no name")
            elif not isinstance(schema, dict):
                problems.append(f"{where}: no schema.openAPIV3Schema")
            elif error := jsonschema.exceptions.best_match(_OPENAPI_SCHEMA_CHECK.iter_errors(schema)):
                at = _dotted(error.absolute_path) or "(root)"
                problems.append(f"{where}: invalid openAPIV3Schema at {at}: {_shorten(error.message)}")
            else:
                self._schemas[(group, kind, name)] = schema
        return problems

    def pruned_nulls(self, group: str, kind: str, version: str, obj: dict) -> dict:
        """The object as the API server validates it: null values of fields not marked ``nullable`` dropped
        (a chart template's empty ``key:`` reads as null, and the server prunes it before validation)."""
        return _prune_nulls(obj, self._schemas[(group, kind, version)])

    def validator(
        self, group: str, kind: str, version: str, schemas: _KubernetesSchemas
    ) -> jsonschema.protocols.Validator | None:
        """A validator for the whole custom resource, metadata included, or None when no CRD defines it."""
        schema = self._schemas.get((group, kind, version))
        if schema is None:
            return None
        key = (group, kind, version, schemas.version)
        if key not in self._validators:
            strict = _strict(schema)
            properties = strict.setdefault("properties", {})
            properties.setdefault("apiVersion", {"type": "string"})
            properties.setdefault("kind", {"type": "string"})
            properties["metadata"] = {"allOf": [properties.get("metadata", {}), {"$ref": OBJECT_META_REF}]}
            self._validators[key] = jsonschema.Draft202012Validator(strict, registry=schemas.registry)
        return self._validators[key]


def _prune_nulls(value: Any, schema: dict) -> Any:
    if isinstance(value, list):
        items = schema.get("items")
        return [_prune_nulls(item, items if isinstance(items, dict) else {}) for item in value]
    if not isinstance(value, dict):
        return value
    properties = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    additional = additional if isinstance(additional, dict) else {}
    pruned = {}
    for key, item in value.items():
        sub = properties.get(key, additional)
        if item is not None or sub.get("nullable"):
            pruned[key] = _prune_nulls(item, sub)
    return pruned


def _strict(schema: dict) -> dict:
    """A copy of a CRD structural schema as JSON Schema that refuses the fields the API server would prune.

    Objects with ``properties`` get ``additionalProperties: false`` unless they set ``additionalProperties``
    or ``x-kubernetes-preserve-unknown-fields``; ``x-kubernetes-int-or-string`` and ``nullable`` become the
    equivalent JSON Schema types.
    """
    out = dict(schema)
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if "properties" in out:
        out["properties"] = {name: _strict(sub) for name, sub in out["properties"].items()}
        if out.get("x-kubernetes-embedded-resource"):
            for name, type_ in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
                out["properties"].setdefault(name, {"type": type_})
        if "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for keyword in ("items", "additionalProperties", "not"):
        if isinstance(out.get(keyword), dict):
            out[keyword] = _strict(out[keyword])
    for keyword in ("allOf", "anyOf", "oneOf"):
        if keyword in out:
            out[keyword] = [_strict(sub) for sub in out[keyword]]
    return out


@lru_cache(maxsize=8)
def _crd_index(directory: Path, stamp: tuple) -> _CrdIndex:
    return _CrdIndex(directory)


def _stamp(directory: Path) -> tuple:
    """Names and modification times of a directory's files: a cache key that changes when they do."""
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.iterdir() if p.is_file()))


# --- where custom resources get their CRDs ---------------------------------------------------------------------


def _is_custom_resource(obj: Any, schemas: _KubernetesSchemas) -> bool:
    """An object of a kind the target Kubernetes does not serve itself (so a CRD must define it)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
        return False
    try:
        return schemas.validator(obj["apiVersion"], obj["kind"]) is None
    except kv.InvalidSchemaError:
        return False


def _check_crd_sources(out_dir: Path, custom: list[tuple[str, dict]]) -> list[Check]:
    """Each custom resource, and each chart value that creates one, against the CRDs the stack installs."""
    releases, prerequisites = _release_index(out_dir)
    provided = {group: "declared prerequisite" for group in prerequisites}
    checks = []
    for release in releases:
        if release["chart"] not in CHART_CRD_GROUPS:
            detail = (
                f"chart {release['chart']} is not in gpucluster.crds.CHART_CRD_GROUPS: add the CRD groups it installs"
            )
            checks.append(Check(RELEASES_FILE, release["name"], "crd-source", "fail", detail))
        for group in CHART_CRD_GROUPS.get(release["chart"], ()):
            provided.setdefault(group, f"release {release['name']}")
    for file, obj in custom:
        group = obj["apiVersion"].rpartition("/")[0]
        checks.append(_crd_source(file, _subject(obj), group, obj["kind"], provided, "remove the object"))
    for release in releases:
        values = _values_of(out_dir / "helm" / release["values"])
        for switch in CHART_VALUE_SWITCHES.get(release["chart"], ()):
            if _lookup(values, switch.path, switch.default) is True:
                subject = f"{switch.kind} from {release['name']} {switch.path}"
                file = f"helm/{release['values']}"
                fix = f"or set {switch.path} false"
                checks.append(_crd_source(file, subject, switch.group, switch.kind, provided, fix))
    return checks


def _crd_source(file: str, subject: str, group: str, kind: str, provided: dict[str, str], undo: str) -> Check:
    if group in provided:
        return Check(file, subject, "crd-source", "ok", f"{group} from {provided[group]}")
    charts = charts_installing(group)
    install = f"add a release of {' or '.join(charts)}" if charts else "install its CRD"
    detail = (
        f"no release in the stack installs the CRD of {group} {kind}: {install}, declare it in "
        f"{RELEASES_FILE} crd_prerequisites if the cluster has it, {undo}"
    )
    return Check(file, subject, "crd-source", "fail", detail)


def _release_index(out_dir: Path) -> tuple[list[dict], list[str]]:
    """The well-formed releases and the declared CRD prerequisites of helm/releases.yaml (problems with the
    file itself are reported by the chart-values checks)."""
    try:
        content = yaml.load((out_dir / RELEASES_FILE).read_text(), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return [], []
    if not isinstance(content, dict):
        return [], []
    releases = [
        r
        for r in content.get("releases") or []
        if isinstance(r, dict) and all(isinstance(r.get(k), str) for k in ("name", "chart", "values"))
    ]
    prerequisites = [g for g in content.get("crd_prerequisites") or [] if isinstance(g, str)]
    return releases, prerequisites


def _values_of(path: Path) -> dict:
    try:
        values = yaml.load(path.read_text(), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return {}
    return values if isinstance(values, dict) else {}


def _lookup(values: dict, dotted: str, default: Any) -> Any:
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


# --- Helm values ------------------------------------------------------------------------------------------


def _chart_values_problems(out_dir: Path, chart_values_dir: Path | None) -> list[str]:
    """What is wrong with the default values files of the charts the output installs."""
    if chart_values_dir is None:
        return []
    problems = []
    for chart in sorted(_charts_in(out_dir)):
        defaults_file = Path(chart_values_dir) / f"{chart}.values.yaml"
        if not defaults_file.exists():
            continue  # reported as unchecked
        if not defaults_file.is_file():
            problems.append(f"{defaults_file}: not a regular file")
            continue
        try:
            _chart_defaults(defaults_file.resolve(), defaults_file.stat().st_mtime_ns)
        except ReferenceDataError as error:
            problems.extend(error.problems)
    return problems


def _charts_in(out_dir: Path) -> set[str]:
    """The charts helm/releases.yaml installs (none when it is missing or malformed: checked on its own)."""
    try:
        content = yaml.load((out_dir / RELEASES_FILE).read_text(), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return set()
    releases = content.get("releases") if isinstance(content, dict) else None
    if not isinstance(releases, list):
        return set()
    return {r["chart"] for r in releases if isinstance(r, dict) and isinstance(r.get("chart"), str)}


def _check_releases(out_dir: Path, chart_values_dir: Path | None) -> list[Check]:
    index = out_dir / RELEASES_FILE
    if not index.exists():
        return []
    try:
        content = yaml.load(index.read_text(), Loader=_Loader)
    except yaml.YAMLError as e:
        return [_values_check(RELEASES_FILE, "(whole file)", "fail", _yaml_problem(e))]
    releases = content.get("releases") if isinstance(content, dict) else None
    if not isinstance(releases, list):
        return [_values_check(RELEASES_FILE, "(whole file)", "fail", "expected a mapping with a 'releases' list")]
    checks = []
    for i, release in enumerate(releases):
        if isinstance(release, dict) and all(isinstance(release.get(k), str) for k in ("name", "chart", "values")):
            checks.append(_check_release(out_dir, release, chart_values_dir))
        else:
            checks.append(_values_check(RELEASES_FILE, f"releases[{i}]", "fail", "needs name, chart and values"))
    return checks


def _check_release(out_dir: Path, release: dict, chart_values_dir: Path | None) -> Check:
    file, name, chart = f"helm/{release['values']}", release["name"], release["chart"]
    try:
        values = yaml.load((out_dir / file).read_text(), Loader=_Loader) or {}
    except FileNotFoundError:
        return _values_check(file, name, "fail", f"{RELEASES_FILE} lists {file}, which is missing")
    except yaml.YAMLError as e:
        return _values_check(file, name, "fail", _yaml_problem(e))
    if not isinstance(values, dict):
        return _values_check(file, name, "fail", "values must be a mapping")
    if chart_values_dir is None:
        return _values_check(file, name, "unchecked", f"no default values for chart {chart}; pass --chart-values DIR")
    defaults_file = chart_values_dir / f"{chart}.values.yaml"
    if not defaults_file.is_file():
        missing = f"no default values for chart {chart}: {defaults_file} is missing"
        return _values_check(file, name, "unchecked", missing)
    problems = _chart_defaults(defaults_file.resolve(), defaults_file.stat().st_mtime_ns).problems(values)
    return _values_check(file, name, "fail" if problems else "ok", "; ".join(problems))


def _values_check(file: str, release: str, status: str, detail: str = "") -> Check:
    return Check(file, release, "chart-values", status, detail)


class _ChartDefaults:
    """A chart's default values file: its parsed keys (with their lines) and the keys it documents in comments.

    Our values may use a key when the defaults have it, when the default above it is an empty mapping
    (free-form maps such as labels), or when a commented-out line inside its parent's block documents it at
    the parent's child depth (e.g. gpu-operator's ``# config:`` under ``dcgmExporter``).
    """

    def __init__(self, path: Path):
        """Read a chart's values file; raise ``ReferenceDataError`` when it holds no mapping of values."""
        try:
            text = path.read_text(encoding="utf-8")
            root = yaml.compose(text, Loader=_Loader)
        except OSError as e:
            raise ReferenceDataError([f"{path}: cannot read: {e.strerror}"]) from None
        except UnicodeDecodeError as e:
            raise ReferenceDataError([f"{path}: not UTF-8 text (byte {e.start})"]) from None
        except yaml.YAMLError as e:  # several documents included
            raise ReferenceDataError([f"{path}: {_yaml_problem(e)}"]) from None
        if not isinstance(root, yaml.MappingNode) or not root.value:
            held = "nothing" if root is None else "an empty mapping" if isinstance(root, yaml.MappingNode) else None
            held = held or ("a list" if isinstance(root, yaml.SequenceNode) else "a scalar")
            raise ReferenceDataError([f"{path}: holds {held}, not the chart's mapping of default values"])
        self.root = root
        self.lines = text.splitlines()
        self.commented: dict[int, tuple[int, str]] = {}  # line -> (column of the key, key)
        for number, line in enumerate(self.lines):
            if match := _COMMENTED_KEY.match(line):
                self.commented[number] = (match.start("key"), match["key"].strip("\"'"))

    def problems(self, values: dict) -> list[str]:
        problems: list[str] = []
        self._check_mapping(values, self.root, -1, len(self.lines), "", problems)
        return problems

    def _check_mapping(
        self, ours: dict, node: yaml.MappingNode, first: int, last: int, path: str, out: list[str]
    ) -> None:
        """Our mapping against a non-empty default mapping whose block spans lines first..last."""
        children = {key.value: (key, value) for key, value in node.value}
        column = node.value[0][0].start_mark.column
        documented = self._commented_children(first, last, range(column, column + 3))
        for key, value in ours.items():
            dotted = f"{path}.{key}" if path else str(key)
            if str(key) in children:
                key_node, value_node = children[str(key)]
                self._check_value(value, value_node, key_node.start_mark.line, value_node.end_mark.line, dotted, out)
            elif str(key) in documented:
                self._check_commented(value, documented[str(key)], dotted, out)
            else:
                out.append(_unknown_key(dotted, str(key), [*children, *documented]))

    def _check_value(self, ours: Any, node: yaml.Node, first: int, last: int, path: str, out: list[str]) -> None:
        if ours is None or node.tag == "tag:yaml.org,2002:null":
            return
        if isinstance(node, yaml.MappingNode):
            if not isinstance(ours, dict):
                out.append(f"{path}: the chart expects a mapping here, not {_shape(ours)}")
            elif node.value:
                self._check_mapping(ours, node, first, last, path, out)
        elif isinstance(ours, dict):
            expected = "a list" if isinstance(node, yaml.SequenceNode) else "a scalar"
            out.append(f"{path}: the chart expects {expected} here, not a mapping")

    def _check_commented(self, ours: Any, line: int, path: str, out: list[str]) -> None:
        """Our value against a key documented only in a comment: its children are the commented keys below it."""
        if not isinstance(ours, dict):
            return
        documented = self._commented_block(line)
        for key, value in ours.items():
            dotted = f"{path}.{key}"
            if str(key) in documented:
                self._check_commented(value, documented[str(key)], dotted, out)
            else:
                out.append(_unknown_key(dotted, str(key), list(documented)))

    def _commented_children(self, first: int, last: int, columns: range) -> dict[str, int]:
        """Commented keys after line first, up to line last, whose key starts in one of columns.

        A real child at column c is commented out as "#c:" or "# c:" (key at c+1 or c+2), or with the '#'
        further left (key at c).
        """
        found: dict[str, int] = {}
        for number in range(first + 1, min(last + 1, len(self.lines))):
            if number in self.commented and self.commented[number][0] in columns:
                found.setdefault(self.commented[number][1], number)
        return found

    def _commented_block(self, line: int) -> dict[str, int]:
        """The commented keys one level below the commented key at line, up to the next real line."""
        column = self.commented[line][0]
        found: dict[str, int] = {}
        child_column = None
        for number in range(line + 1, len(self.lines)):
            text = self.lines[number].strip()
            if text and not text.startswith("#"):
                break
            if number not in self.commented:
                continue
            key_column, key = self.commented[number]
            if key_column <= column:
                break
            child_column = child_column or key_column
            if key_column == child_column:
                found.setdefault(key, number)
        return found


def _unknown_key(dotted: str, key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.6)
    if close:
        return f"{dotted}: unknown key; did you mean {', '.join(close)}?"
    shown = sorted(set(allowed))
    if not shown:
        return f"{dotted}: unknown key"
    more = ", ..." if len(shown) > 12 else ""
    return f"{dotted}: unknown key; the chart accepts here: {', '.join(shown[:12])}{more}"


def _shape(value: Any) -> str:
    return "a list" if isinstance(value, list) else "a scalar"


@lru_cache(maxsize=32)
def _chart_defaults(path: Path, mtime_ns: int) -> _ChartDefaults:
    return _ChartDefaults(path)


def _yaml_problem(error: yaml.YAMLError) -> str:
    return "not valid YAML: " + " ".join(str(error).split())
