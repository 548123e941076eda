"""Run a ValidatingAdmissionPolicy's CEL on a request, as the API server does, with cel-python.

Covers what gpucluster's policies use: matchConstraints (operations, pods and their subresources),
matchConditions, variables (in order, each seeing the earlier ones) and validations. An expression that
fails to evaluate (a field read without ``has()``, a type error) raises, so a policy that would deny
through its failurePolicy instead of its rule shows up as a test error.
"""

from __future__ import annotations

import celpy
from celpy import celtypes

_ENV = celpy.Environment()


def _evaluate(expression: str, activation: dict):
    result = _ENV.program(_ENV.compile(expression)).evaluate(activation)
    if isinstance(result, celpy.CELEvalError):
        raise AssertionError(f"CEL error in {expression!r}: {result}")
    return result


def _matches(policy: dict, operation: str, resource: str) -> bool:
    return any(
        operation in rule["operations"] and resource in rule["resources"]
        for rule in policy["spec"]["matchConstraints"]["resourceRules"]
    )


def denials(
    policy: dict, pod: dict, *, operation: str = "CREATE", old: dict | None = None, sub_resource: str = ""
) -> list[str] | None:
    """The messages of the validations that refuse this request on a pod, [] when it is admitted, or
    None when the policy does not apply to it (matchConstraints or matchConditions)."""
    resource = f"pods/{sub_resource}" if sub_resource else "pods"
    if not _matches(policy, operation, resource):
        return None
    activation = {
        "object": celpy.json_to_cel(pod),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel({"operation": operation, "subResource": sub_resource}),
    }
    spec = policy["spec"]
    for condition in spec.get("matchConditions", []):
        if not _evaluate(condition["expression"], activation):
            return None
    variables = celtypes.MapType({})
    for variable in spec.get("variables", []):
        value = _evaluate(variable["expression"], {**activation, "variables": variables})
        variables = celtypes.MapType({**variables, celtypes.StringType(variable["name"]): value})
    activation["variables"] = variables
    return [v["message"] for v in spec["validations"] if not _evaluate(v["expression"], activation)]
