"""Find Pulumi stack files, read the ``gpucluster:cluster`` config from them and validate it.

Every way a stack can be wrong ends in ``SpecError``: the file, and for each problem the field path, the
value found and what is allowed. Nothing else escapes to the user.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from gpucluster import yamlfile
from gpucluster.spec import ClusterSpec, RuleViolations, Violation

CONFIG_KEY = "gpucluster:cluster"
AWS_REGION_KEY = "aws:region"
STACK_PREFIX, STACK_SUFFIX = "Pulumi.", ".yaml"
# Pulumi's rule for stack names; the name also names the default output directory (build/NAME).
_STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class SpecError(Exception):
    """A stack that cannot be used, with every problem found in it."""

    def __init__(self, source: str, problems: list[Violation]):
        self.source = source
        self.problems = problems
        super().__init__(self.describe())

    @classmethod
    def in_file(cls, source: str, message: str) -> SpecError:
        """A problem with the file itself (missing, unreadable, not YAML, no cluster spec), not a field in it."""
        return cls(source, [Violation((), _FILE, message)])

    def describe(self) -> str:
        if all(problem.value is _FILE for problem in self.problems):
            return "\n".join(f"{self.source}: {problem.message}" for problem in self.problems)
        lines = [f"{self.source}: {len(self.problems)} problem(s) in the cluster spec"]
        for problem in self.problems:
            lines.append(f"  {format_path(problem.path)}: {problem.message} (found: {_short(problem.value)})")
        return "\n".join(lines)


class _FileLevel:
    def __repr__(self) -> str:
        return "<file>"


_FILE = _FileLevel()  # the value of a problem with the file rather than with one of its fields


@dataclass(frozen=True)
class Stack:
    name: str
    path: Path
    spec: ClusterSpec
    warnings: list[Violation] = field(default_factory=list)


def format_path(path: tuple) -> str:
    """('node_pools', 0, 'sharing', 'replicas') -> 'gpucluster:cluster.node_pools[0].sharing.replicas'."""
    text = CONFIG_KEY
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxset = 3, 6, 6, 6


def _short(value: Any) -> str:
    """A value for a message, cut before it is formatted (a huge value is never repr()'d whole)."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def default_stacks_dir() -> Path:
    """``stacks/`` under the nearest directory (from the working directory up) that holds Pulumi.yaml."""
    here = Path.cwd().resolve()
    for directory in (here, *here.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory / "stacks"
    return here / "stacks"


def stack_path(ref: str, stacks_dir: Path | None = None) -> Path:
    """A stack name (``eks-t4``) means ``stacks/Pulumi.eks-t4.yaml``; anything path-like is used as given."""
    if "/" in ref or ref.endswith((".yaml", ".yml")):
        return Path(ref)
    return (stacks_dir or default_stacks_dir()) / f"{STACK_PREFIX}{ref}{STACK_SUFFIX}"


def stack_name(path: Path) -> str:
    name = path.name
    if name.startswith(STACK_PREFIX) and name.endswith(STACK_SUFFIX):
        return name[len(STACK_PREFIX) : -len(STACK_SUFFIX)]
    return path.stem


def list_stacks(stacks_dir: Path | None = None) -> list[Path]:
    directory = stacks_dir or default_stacks_dir()
    return sorted(directory.glob(f"{STACK_PREFIX}*{STACK_SUFFIX}"))


def load_stack(ref: str, stacks_dir: Path | None = None) -> Stack:
    path = stack_path(ref, stacks_dir)
    source = str(path)
    name = stack_name(path)
    if not _STACK_NAME.fullmatch(name) or name in (".", ".."):
        rule = "letters, digits, '-', '_' and '.' (not '.' or '..'), as Pulumi requires; rename the file"
        raise SpecError.in_file(source, f"the stack name {_short(name)} (from the file name) must be {rule}")
    try:
        document = yamlfile.load_file(path)
    except FileNotFoundError:
        known = ", ".join(stack_name(p) for p in list_stacks(stacks_dir)) or "none"
        raise SpecError.in_file(source, f"no such stack file; known stacks: {known}") from None
    except IsADirectoryError:
        raise SpecError.in_file(source, "a directory, not a stack file") from None
    except OSError as error:
        raise SpecError.in_file(source, f"cannot read the file: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise SpecError.in_file(source, f"not UTF-8 text: byte {error.start} cannot be decoded") from None
    except yamlfile.YamlFileError as error:
        raise SpecError.in_file(source, str(error)) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict) or CONFIG_KEY not in config:
        raise SpecError.in_file(source, _missing_spec(document))
    spec = parse_spec(config[CONFIG_KEY], source)
    check_provider_region(spec, config.get(AWS_REGION_KEY), source)
    return Stack(name=name, path=path, spec=spec, warnings=spec_warnings(spec))


def _missing_spec(document: Any) -> str:
    """Why a parsed stack file holds no cluster spec, and what it needs."""
    needed = f"a stack file needs 'config:' with a '{CONFIG_KEY}:' mapping holding the cluster spec"
    if document is None:
        return f"the file is empty; {needed}"
    if not isinstance(document, dict):
        return f"the file holds {_yaml_kind(document)}, not a mapping; {needed}"
    config = document.get("config")
    if config is None:
        return f"no 'config:' section (top-level keys: {', '.join(map(str, document)) or 'none'}); {needed}"
    if not isinstance(config, dict):
        return f"'config:' holds {_yaml_kind(config)}, not a mapping; {needed}"
    guess = difflib.get_close_matches(CONFIG_KEY, [str(key) for key in config], n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"no '{CONFIG_KEY}' key under 'config:'{hint}; {needed}"


def _yaml_kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"the scalar {_short(value)}"


def check_provider_region(spec: ClusterSpec, provider_region: Any, source: str) -> None:
    """The AWS provider's ``aws:region`` must be the spec's region, or resources land in the wrong place."""
    if spec.aws is None or provider_region is None or provider_region == spec.aws.region:
        return
    problem = Violation(
        ("aws", "region"), spec.aws.region, f"differs from the stack's {AWS_REGION_KEY} {provider_region!r}"
    )
    raise SpecError(source, [problem])


def parse_spec(raw: Any, source: str) -> ClusterSpec:
    """Validate one raw spec (as read from YAML or Pulumi config); raise SpecError with every problem."""
    try:
        return ClusterSpec.model_validate(raw)
    except ValidationError as error:
        raise SpecError(source, _violations(error)) from None


def _violations(error: ValidationError) -> list[Violation]:
    problems: list[Violation] = []
    for item in error.errors(include_url=False):
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, RuleViolations):
            loc = tuple(item["loc"])
            problems.extend(Violation(loc + v.path, v.value, v.message) for v in cause.violations)
            continue
        loc, message = tuple(item["loc"]), item["msg"].removeprefix("Value error, ")
        if loc and loc[-1] == "[key]":  # a mapping key, e.g. of node labels
            loc, message = loc[:-1], f"the key {message}"
        if item["type"] in ("string_pattern_mismatch", "string_too_long"):
            # a constrained field without a described rule: say what the field holds, never the regex
            described = _field_at(loc)
            rule = described.description if described and described.description else "the field's format"
            message = f"does not match {rule.rstrip('.')}"
            if item["type"] == "string_too_long":
                message = f"longer than {item['ctx']['max_length']} characters; {message}"
        elif item["type"] == "string_type" and isinstance(item.get("input"), int | float):  # bool is an int
            kind = "a boolean" if isinstance(item["input"], bool) else "a number"
            message = f"expected text, but YAML reads this unquoted value as {kind}; put it in quotes as written"
        elif item["type"] == "literal_error":
            message = f"allowed: {item['ctx']['expected']}"
        elif item["type"] == "extra_forbidden":
            allowed = _fields_at(tuple(item["loc"][:-1]))
            guess = difflib.get_close_matches(str(item["loc"][-1]), allowed, n=1)
            message = "unknown field" + (f" (did you mean {guess[0]!r}?)" if guess else "")
            message += f"; allowed here: {', '.join(allowed)}" if allowed else ""
        elif item["type"] == "model_type" and not loc:
            message = f"the cluster spec must be a mapping of its fields ({', '.join(ClusterSpec.model_fields)})"
        elif item["type"] == "missing":
            message = "required field is missing"
        value = "<missing>" if item["type"] == "missing" else item.get("input")
        problems.append(Violation(loc, value, message))
    return problems


def _fields_at(loc: tuple) -> list[str]:
    """The field names of the model found at ``loc`` inside ClusterSpec (list indexes and dict keys skipped)."""
    model = _model_in(_walk(loc)[0])
    return list(model.model_fields) if model is not None else []


def _field_at(loc: tuple) -> FieldInfo | None:
    """The field at the end of ``loc`` (list indexes and mapping keys after it skipped)."""
    return _walk(loc)[1]


def _walk(loc: tuple) -> tuple[Any, FieldInfo | None]:
    """Follow ``loc`` from ClusterSpec: the annotation reached, and the last model field on the way."""
    annotation: Any = ClusterSpec
    last: FieldInfo | None = None
    for part in loc:
        model = _model_in(annotation)
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None, None
        annotation, last = field.annotation, field
    return annotation, last


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as ``list[NodePool]`` or ``AwsSpec | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


def spec_warnings(spec: ClusterSpec) -> list[Violation]:
    """Things that work but are probably not what was meant."""
    warnings = []
    for index, pool in enumerate(spec.node_pools):
        if pool.capacity.type != "on-demand" and len(pool.instance_types) == 1:
            warnings.append(
                Violation(
                    ("node_pools", index, "instance_types"),
                    pool.instance_types,
                    f"{pool.capacity.type} capacity with one instance type is easily interrupted; "
                    "list at least two with the same GPU (e.g. several sizes of one family)",
                )
            )
    if spec.network.cni == "flannel" and spec.kubernetes.distribution == "kubeadm" and spec.tenants:
        warnings.append(
            Violation(
                ("network", "cni"),
                "flannel",
                "flannel does not enforce NetworkPolicies on kubeadm, so tenants are not isolated; "
                "use calico or cilium (k3s enforces them with its embedded controller)",
            )
        )
    return warnings
