"""tenancy.mode kueue: flavors per pool, a ClusterQueue per tenant, LocalQueues, the pinned release."""

from __future__ import annotations

from pathlib import Path

import celpy
import pytest
import yaml
from celpy import celtypes

from gpucluster.plan import make_plan
from gpucluster.render import render
from gpucluster.render.kueue import flavor_quotas, kueue_objects, kueue_release
from gpucluster.render.tenancy import tenant_objects
from gpucluster.spec import ClusterSpec
from gpucluster.stackfile import SpecError, parse_spec
from gpucluster.validate import validate_output
from stacks import REFERENCE, spec_of

CRDS = REFERENCE / "crds"
needs_crds = pytest.mark.skipif(
    not (CRDS / "kueue.x-k8s.io_clusterqueues.yaml").is_file(), reason=f"Kueue CRDs not found in {CRDS}"
)


def dgx(**tenancy) -> ClusterSpec:
    """onprem-dgx (kueue with borrowing) with its tenancy section replaced."""
    return spec_of("onprem-dgx", tenancy=tenancy) if tenancy else spec_of("onprem-dgx")


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_a_flavor_per_pool_with_its_label_and_taint_tolerations():
    raw = dgx().model_dump(mode="json")
    raw["node_pools"][0]["taints"] = [{"key": "dedicated", "value": "", "effect": "NoExecute"}]
    flavors = by_kind(kueue_objects(make_plan(ClusterSpec.model_validate(raw))), "ResourceFlavor")
    assert set(flavors) == {"pool-dgx-train", "pool-dgx-mig", "pool-dgx-dev", "cpu-memory"}
    train = flavors["pool-dgx-train"]["spec"]
    assert train["nodeLabels"] == {"gpucluster.io/pool": "dgx-train"}
    assert train["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
    ]
    assert flavors["cpu-memory"]["spec"] == {}


def test_grants_are_split_over_the_tenants_pools_in_order_up_to_their_size():
    plan = make_plan(dgx())
    training, inference = plan.spec.tenants
    assert flavor_quotas(plan, training) == {
        "dgx-train": {"nvidia.com/gpu": 16},
        "dgx-mig": {"nvidia.com/gpu": 0},
        "dgx-dev": {"nvidia.com/gpu": 0},
    }
    # dgx-mig holds 8 GPUs x 7 slices of 1g.10gb = 56, exactly the grant
    assert flavor_quotas(plan, inference) == {"dgx-mig": {"nvidia.com/gpu": 56}, "dgx-dev": {"nvidia.com/gpu": 0}}
    raw = plan.spec.model_dump(mode="json")
    raw["tenants"][1]["gpus"] = 70
    bigger = make_plan(ClusterSpec.model_validate(raw))
    assert flavor_quotas(bigger, bigger.spec.tenants[1]) == {
        "dgx-mig": {"nvidia.com/gpu": 56},
        "dgx-dev": {"nvidia.com/gpu": 14},
    }


def test_mig_resources_get_their_own_quota_per_flavor():
    raw = spec_of("eks-h100").model_dump(mode="json")
    raw["tenancy"] = {"mode": "kueue"}
    raw["tenants"][1]["resources"] = {"nvidia.com/mig-1g.5gb": 8}
    plan = make_plan(ClusterSpec.model_validate(raw))
    queue = by_kind(kueue_objects(plan), "ClusterQueue")["research"]["spec"]
    gpu_group = queue["resourceGroups"][0]
    assert gpu_group["coveredResources"] == list(plan.gpu_resources)
    quotas = {f["name"]: {r["name"]: r["nominalQuota"] for r in f["resources"]} for f in gpu_group["flavors"]}
    assert quotas["pool-a100-mig"]["nvidia.com/mig-1g.5gb"] == 8
    assert quotas["pool-h100-efa"] == {
        "nvidia.com/gpu": 32,
        "nvidia.com/mig-1g.5gb": 0,
        "nvidia.com/mig-2g.10gb": 0,
        "nvidia.com/mig-3g.20gb": 0,
    }


def test_each_tenant_queues_in_its_namespace():
    objects = kueue_objects(make_plan(dgx()))
    queues = by_kind(objects, "ClusterQueue")
    locals_ = [o for o in objects if o["kind"] == "LocalQueue"]
    assert {(q["metadata"]["namespace"], q["spec"]["clusterQueue"]) for q in locals_} == {
        ("ai-training", "ai-training"),
        ("ai-inference", "ai-inference"),
    }
    selector = queues["ai-inference"]["spec"]["namespaceSelector"]
    assert selector == {"matchLabels": {"kubernetes.io/metadata.name": "ai-inference"}}
    cpu_group = queues["ai-inference"]["spec"]["resourceGroups"][1]
    assert cpu_group["flavors"][0]["resources"][0] == {"name": "cpu", "nominalQuota": "64", "borrowingLimit": 0}


def test_borrowing_joins_the_cohort_and_raises_the_gpu_backstop_to_its_total():
    plan = make_plan(dgx())
    queue = by_kind(kueue_objects(plan), "ClusterQueue")["ai-training"]["spec"]
    assert queue["cohortName"] == "gpu-cohort"
    assert queue["preemption"]["reclaimWithinCohort"] == "Any"
    quotas = {
        q["metadata"]["namespace"]: q["spec"]["hard"] for q in tenant_objects(plan) if q["kind"] == "ResourceQuota"
    }
    assert quotas["ai-training"]["requests.nvidia.com/gpu"] == "72"  # 16 + 56
    assert quotas["ai-training"]["requests.cpu"] == "128"  # CPU and memory are never borrowed


def test_without_borrowing_no_cohort_and_the_backstop_is_the_grant():
    plan = make_plan(dgx(mode="kueue"))
    for queue in by_kind(kueue_objects(plan), "ClusterQueue").values():
        assert "cohortName" not in queue["spec"]
        assert "borrowingLimit" not in str(queue["spec"])
    quotas = {
        q["metadata"]["namespace"]: q["spec"]["hard"] for q in tenant_objects(plan) if q["kind"] == "ResourceQuota"
    }
    assert quotas["ai-training"]["requests.nvidia.com/gpu"] == "16"


def test_quota_mode_renders_no_kueue():
    plan = make_plan(dgx(mode="quota"))
    assert kueue_objects(plan) == [] and kueue_release(plan) == []


def test_the_release_and_its_image_are_pinned():
    [release] = kueue_release(make_plan(dgx()))
    assert (release.chart, release.repository, release.version) == (
        "kueue",
        "oci://registry.k8s.io/kueue/charts",
        "0.19.2",
    )
    image = release.values["controllerManager"]["manager"]["image"]
    assert image == {"repository": "registry.k8s.io/kueue/kueue", "tag": "v0.19.2", "pullPolicy": "IfNotPresent"}


def test_borrowing_needs_kueue():
    raw = dgx().model_dump(mode="json")
    raw["tenancy"] = {"mode": "quota", "borrowing": True}
    with pytest.raises(SpecError) as error:
        parse_spec(raw, "test.yaml")
    assert [p.path for p in error.value.problems] == [("tenancy", "borrowing")]


def test_kueue_needs_tenants():
    raw = dgx().model_dump(mode="json")
    raw["tenants"] = []
    with pytest.raises(SpecError) as error:
        parse_spec(raw, "test.yaml")
    assert [p.path for p in error.value.problems] == [("tenancy", "mode")]


# --- against the upstream CRDs ----------------------------------------------------------------------------


def _written(spec: ClusterSpec, out: Path) -> Path:
    for path, content in render(spec).files().items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_bytes(content)
    return out


@needs_crds
@pytest.mark.parametrize("borrowing", [True, False])
def test_kueue_objects_match_the_kueue_crds(tmp_path, borrowing):
    out = _written(dgx(mode="kueue", borrowing=borrowing), tmp_path)
    report = validate_output(out, "1.33", crds_dir=CRDS)
    rows = [c for c in report.checks if c.file == "custom-resources/20-kueue.yaml" and c.check == "crd-schema"]
    assert len(rows) == 8
    assert {(c.check, c.status) for c in rows} == {("crd-schema", "ok")}, [c.detail for c in rows]


def _crd_rules(kind: str) -> dict:
    [crd] = [d for d in yaml.safe_load_all((CRDS / f"kueue.x-k8s.io_{kind}.yaml").read_text())]
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    return version["schema"]["openAPIV3Schema"]


def _cel_failures(schema: dict, value, path: str = "") -> list[str]:
    """Run the CRD's x-kubernetes-validations (those without oldSelf) on ``value``, as the API server would."""
    failures = []
    env = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue
        result = env.program(env.compile(rule["rule"])).evaluate({"self": celpy.json_to_cel(value)})
        assert not isinstance(result, celpy.CELEvalError), (path, rule["rule"], result)
        if not isinstance(result, celtypes.BoolType) or not result:
            failures.append(f"{path}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for key, child in value.items():
            if key in schema.get("properties", {}):
                failures += _cel_failures(schema["properties"][key], child, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, child in enumerate(value):
            failures += _cel_failures(schema["items"], child, f"{path}[{index}]")
    return failures


@needs_crds
@pytest.mark.parametrize("borrowing", [True, False])
def test_kueue_objects_pass_the_crds_cel_rules(borrowing):
    objects = kueue_objects(make_plan(dgx(mode="kueue", borrowing=borrowing)))
    kinds = {"ResourceFlavor": "resourceflavors", "ClusterQueue": "clusterqueues", "LocalQueue": "localqueues"}
    for obj in objects:
        assert _cel_failures(_crd_rules(kinds[obj["kind"]]), obj) == [], obj["metadata"]["name"]


@needs_crds
def test_the_cel_rules_catch_a_borrowing_limit_outside_a_cohort():
    queue = next(o for o in kueue_objects(make_plan(dgx())) if o["kind"] == "ClusterQueue")
    del queue["spec"]["cohortName"]
    assert _cel_failures(_crd_rules("clusterqueues"), queue) == [
        ".spec: borrowingLimit must be nil when cohort is empty"
    ]
