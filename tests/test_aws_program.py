"""The AWS Pulumi program evaluated offline (pulumi.runtime mocks): what a `pulumi up` of eks-t4 and eks-h100
would create, checked for what users care about (security defaults, capacity, EFA, node identity, IRSA)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable

import pulumi
import pytest
import yaml
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.sync_await import _sync_await

from gpucluster.catalog import catalog
from gpucluster.plan import make_plan
from gpucluster.program.offline import OfflineMocks, RecordingMonitor, Registered, evaluate
from gpucluster.program.stack import run
from gpucluster.render import render
from gpucluster.render.aws_nodes import cluster_autoscaler_tags, termination_handler_release
from gpucluster.stackfile import parse_spec
from stacks import ROOT

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ASG = "aws:autoscaling/group:Group"
ROLE = "aws:iam/role:Role"
RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
MNG_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


class Program:
    """The resources one evaluation registered, with lookups by type and name."""

    def __init__(self, config: dict, resources: list[Registered]):
        self.config = config
        self.resources = resources
        self.plan = make_plan(parse_spec(config["gpucluster:cluster"], "test"))
        self.cluster = self.plan.spec.name

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, type_: str, name: str) -> Registered:
        matches = [r for r in self.of_type(type_) if r.name == name]
        assert len(matches) == 1, f"{type_} {name}: {len(matches)} registered"
        return matches[0]

    def pool_resource(self, type_: str, pool: str) -> Registered:
        return self.named(type_, f"{self.cluster}-{pool}")


def stack_config(stack: str) -> dict:
    return yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]


def evaluated(stack: str, change: Callable[[dict], None] | None = None) -> Program:
    config = copy.deepcopy(stack_config(stack))
    if change is not None:
        change(config["gpucluster:cluster"])
    return Program(config, evaluate(stack, config, run))


@pytest.fixture(scope="module")
def t4() -> Program:
    return evaluated("eks-t4")


@pytest.fixture(scope="module")
def h100() -> Program:
    return evaluated("eks-h100")


@pytest.fixture(scope="module", params=["eks-t4", "eks-h100"])
def program(request, t4, h100) -> Program:
    return {"eks-t4": t4, "eks-h100": h100}[request.param]


# --- security defaults ---------------------------------------------------------------------------------


def test_every_launch_template_requires_imdsv2_and_encrypts_its_gp3_root_volume(program):
    templates = program.of_type(LAUNCH_TEMPLATE)
    assert len(templates) == 1 + len(program.plan.pools)  # the system node group and every GPU pool
    for template in templates:
        metadata = template.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required", template.name
        assert metadata["httpPutResponseHopLimit"] == 2, template.name
        (volume,) = template.inputs["blockDeviceMappings"]
        assert volume["ebs"]["encrypted"] == "true", template.name
        assert volume["ebs"]["volumeType"] == "gp3", template.name
    for pool in program.plan.pools:
        (volume,) = program.pool_resource(LAUNCH_TEMPLATE, pool.name).inputs["blockDeviceMappings"]
        assert volume["ebs"]["volumeSize"] == pool.spec.disk_gib


def test_no_security_group_is_open_to_the_internet(program):
    """Nothing gpucluster creates admits 0.0.0.0/0 (the ALB's own 80/443 group is the controller's)."""
    for resource in program.resources:
        if resource.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and resource.inputs["type"] == "ingress":
            open_rule = "0.0.0.0/0" in resource.inputs.get("cidrBlocks", [])
            assert not open_rule or resource.inputs["fromPort"] in (80, 443), resource.name
        for rule in resource.inputs.get("ingress", []) if resource.type.startswith("aws:ec2/") else []:
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", []) or rule["fromPort"] in (80, 443), resource.name
    default = program.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert [(g.inputs["ingress"], g.inputs["egress"]) for g in default] == [([], [])]


def test_control_plane_logs_encrypted_secrets_and_access_entries_only(program):
    cluster = program.named("aws:eks/cluster:Cluster", program.cluster).inputs
    assert cluster["enabledClusterLogTypes"] == ["api", "audit", "authenticator"]
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    key = program.named("aws:kms/key:Key", f"{program.cluster}-secrets").inputs
    assert key["enableKeyRotation"] is True
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True


def test_private_endpoint_and_admin_access_entries():
    admin = "arn:aws:iam::123456789012:role/platform-admins"

    def private(raw):
        raw["aws"].update(endpoint_access="private", admins=[admin])

    program = evaluated("eks-t4", private)
    vpc = program.named("aws:eks/cluster:Cluster", program.cluster).inputs["vpcConfig"]
    assert (vpc["endpointPrivateAccess"], vpc["endpointPublicAccess"]) == (True, False)
    assert [e.inputs["principalArn"] for e in program.of_type("aws:eks/accessEntry:AccessEntry")].count(admin) == 1
    (association,) = program.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert association.inputs["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
    assert association.inputs["accessScope"] == {"type": "cluster"}


def test_every_resource_is_tagged_with_project_stack_and_owner(program):
    (provider,) = program.of_type("pulumi:providers:aws")
    tags = json.loads(provider.inputs["defaultTags"])["tags"]
    owner = program.config["gpucluster:cluster"]["aws"]["owner"]
    assert {"project": "gpucluster", "owner": owner}.items() <= tags.items()
    assert tags["stack"] in ("eks-t4", "eks-h100")
    for template in program.of_type(LAUNCH_TEMPLATE):  # instances and volumes do not get provider tags
        for specification in template.inputs["tagSpecifications"]:
            assert specification["tags"]["owner"] == owner


# --- network --------------------------------------------------------------------------------------------


def test_subnets_per_zone_with_load_balancer_discovery_tags(program):
    subnets = program.of_type("aws:ec2/subnet:Subnet")
    zones = program.plan.spec.aws.availability_zones
    for kind, role in (("public", "kubernetes.io/role/elb"), ("private", "kubernetes.io/role/internal-elb")):
        tiers = [s for s in subnets if s.name.startswith(f"{program.cluster}-{kind}-")]
        assert sorted(s.inputs["availabilityZone"] for s in tiers) == sorted(zones)
        for subnet in tiers:
            assert subnet.inputs["tags"][role] == "1"
            assert subnet.inputs["tags"][f"kubernetes.io/cluster/{program.cluster}"] == "shared"
    assert len(program.of_type("aws:ec2/natGateway:NatGateway")) == len(zones)  # default: one per AZ


def test_a_single_nat_gateway_when_asked():
    program = evaluated("eks-t4", lambda raw: raw["aws"].update(nat_gateways="single"))
    assert len(program.of_type("aws:ec2/natGateway:NatGateway")) == 1


# --- node pools -----------------------------------------------------------------------------------------


def _node_config(template: Registered) -> dict:
    mime = base64.b64decode(template.inputs["userData"]).decode()
    document = mime.split("Content-Type: application/node.eks.aws\n\n", 1)[1].rsplit("\n--", 1)[0]
    return yaml.safe_load(document)


def test_every_gpu_node_carries_its_pool_labels_and_taints(program):
    for pool in program.plan.pools:
        expected_taints = [(t.key, t.value, t.effect) for t in pool.taints]
        assert ("nvidia.com/gpu", "present", "NoSchedule") in expected_taints
        if pool.self_managed:
            flags = _node_config(program.pool_resource(LAUNCH_TEMPLATE, pool.name))["spec"]["kubelet"]["flags"]
            labels = dict(item.split("=", 1) for item in flags[0].removeprefix("--node-labels=").split(","))
            taints = flags[1].removeprefix("--register-with-taints=").split(",")
            assert labels == pool.labels
            assert taints == [f"{key}={value}:{effect}" for key, value, effect in expected_taints]
        else:
            group = program.pool_resource(NODE_GROUP, pool.name).inputs
            assert group["labels"] == pool.labels
            taints = [(t["key"], t.get("value", ""), t["effect"]) for t in group["taints"]]
            assert taints == [(k, v, MNG_EFFECTS[e]) for k, v, e in expected_taints]
            assert group["amiType"] == "AL2023_x86_64_NVIDIA"
            assert "/nvidia/recommended/release_version" in group["releaseVersion"]


def test_the_system_node_group_is_the_spec_system_pool_untainted(program):
    system = program.plan.system_pool
    assert system is not None
    group = program.named(NODE_GROUP, f"{program.cluster}-{system.name}").inputs
    assert "taints" not in group
    assert group["labels"] == system.labels == {"gpucluster.io/pool": "system"}
    assert group["instanceTypes"] == system.spec.instance_types
    scaling = group["scalingConfig"]
    assert (scaling["minSize"], scaling["desiredSize"], scaling["maxSize"]) == (
        system.spec.scaling.min,
        system.spec.scaling.desired,
        system.spec.scaling.max,
    )
    assert group["amiType"] == "AL2023_x86_64_STANDARD"


def test_without_a_system_pool_the_untainted_gpu_pool_takes_system_pods():
    def untainted(raw):
        del raw["system_pool"]
        raw["node_pools"][0]["gpu_taint"] = False

    program = evaluated("eks-t4", untainted)
    assert program.plan.system_pool is None
    assert program.of_type(NODE_GROUP) == []
    (pool,) = program.plan.pools
    flags = _node_config(program.pool_resource(LAUNCH_TEMPLATE, pool.name))["spec"]["kubelet"]["flags"]
    assert flags == [f"--node-labels={','.join(f'{k}={v}' for k, v in pool.labels.items())}"]
    coredns = program.named("aws:eks/addon:Addon", f"{program.cluster}-coredns")
    assert coredns.inputs["addonName"] == "coredns"


def test_mixed_pool_is_an_auto_scaling_group_with_a_mixed_instances_policy(t4):
    (pool,) = t4.plan.pools
    group = t4.pool_resource(ASG, pool.name).inputs
    policy = group["mixedInstancesPolicy"]
    distribution = policy["instancesDistribution"]
    assert distribution["onDemandBaseCapacity"] == 1
    assert distribution["onDemandPercentageAboveBaseCapacity"] == 0
    assert distribution["spotAllocationStrategy"] == "price-capacity-optimized"
    assert [o["instanceType"] for o in policy["launchTemplate"]["overrides"]] == pool.spec.instance_types
    assert group["capacityRebalance"] is True
    (hook,) = group["initialLifecycleHooks"]
    assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    template = t4.pool_resource(LAUNCH_TEMPLATE, pool.name).inputs
    assert "/nvidia/recommended/image_id" in template["imageId"]
    assert _node_config(t4.pool_resource(LAUNCH_TEMPLATE, pool.name))["spec"]["cluster"]["name"] == t4.cluster


def test_mixed_pool_spot_interruptions_go_through_the_termination_handler_queue(t4):
    rules = [json.loads(r.inputs["eventPattern"]) for r in t4.of_type("aws:cloudwatch/eventRule:EventRule")]
    kinds = {rule["detail-type"][0] for rule in rules}
    assert {"EC2 Spot Instance Interruption Warning", "EC2 Instance-terminate Lifecycle Action"} <= kinds
    targets = t4.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == len(rules)
    release = t4.named(RELEASE, "aws-node-termination-handler").inputs
    assert release["values"]["enableSqsTerminationDraining"] is True
    assert release["values"]["queueURL"].startswith("https://sqs.")


def test_spot_pool_is_a_managed_node_group_with_several_instance_types():
    def spot(raw):
        raw["node_pools"][0]["capacity"] = {"type": "spot"}

    program = evaluated("eks-t4", spot)
    (pool,) = program.plan.pools
    group = program.pool_resource(NODE_GROUP, pool.name).inputs
    assert group["capacityType"] == "SPOT"
    assert group["instanceTypes"] == ["g4dn.xlarge", "g4dn.2xlarge", "g4dn.4xlarge"]
    assert program.of_type(ASG) == []
    assert "aws-node-termination-handler" not in [r.name for r in program.of_type(RELEASE)]


def test_efa_pool_interfaces_placement_group_and_single_zone(h100):
    pool = next(p for p in h100.plan.pools if p.spec.efa)
    expected = catalog().instance_types[pool.spec.instance_types[0]].efa_interfaces
    template = h100.pool_resource(LAUNCH_TEMPLATE, pool.name).inputs
    interfaces = template["networkInterfaces"]
    assert len(interfaces) == expected == pool.efa_interfaces > 1
    assert [i["networkCardIndex"] for i in interfaces] == list(range(expected))
    assert {i["interfaceType"] for i in interfaces} == {"efa"}
    assert interfaces[0]["deviceIndex"] == 0
    efa_group = h100.named("aws:ec2/securityGroup:SecurityGroup", f"{h100.cluster}-efa")
    for interface in interfaces:
        assert f"{efa_group.name}-id" in interface["securityGroups"]
    placement = h100.pool_resource("aws:ec2/placementGroup:PlacementGroup", pool.name).inputs
    assert placement["strategy"] == "cluster"
    assert template["placement"]["groupName"] == placement["name"]
    group = h100.pool_resource(NODE_GROUP, pool.name).inputs
    assert group["subnetIds"] == [f"{h100.cluster}-private-{pool.spec.availability_zone}-id"]
    rules = [
        h100.named("aws:ec2/securityGroupRule:SecurityGroupRule", f"{h100.cluster}-efa-{way}").inputs
        for way in ("in", "out")
    ]
    assert all(rule["self"] is True and rule["protocol"] == "-1" for rule in rules)
    non_efa = next(p for p in h100.plan.pools if not p.spec.efa)
    assert "networkInterfaces" not in h100.pool_resource(LAUNCH_TEMPLATE, non_efa.name).inputs
    assert len(h100.pool_resource(NODE_GROUP, non_efa.name).inputs["subnetIds"]) == 3


# --- node autoscaling -----------------------------------------------------------------------------------


def test_cluster_autoscaler_discovery_and_scale_from_zero_tags_on_every_pool(program):
    spec = program.plan.spec
    for pool in program.plan.pools:
        expected = cluster_autoscaler_tags(spec, pool)
        assert expected["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu"] == str(pool.gpus_per_node)
        assert expected["k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"] == "present:NoSchedule"
        if pool.self_managed:
            tags = {t["key"]: t["value"] for t in program.pool_resource(ASG, pool.name).inputs["tags"]}
        else:
            prefix = f"{program.cluster}-{pool.name}-"
            tags = {
                t.inputs["tag"]["key"]: t.inputs["tag"]["value"]
                for t in program.of_type("aws:autoscaling/tag:Tag")
                if t.name.startswith(prefix)
            }
            assert all(
                t.inputs["autoscalingGroupName"] == f"eks-{program.cluster}-{pool.name}-asg"
                for t in program.of_type("aws:autoscaling/tag:Tag")
                if t.name.startswith(prefix)
            )
        assert expected.items() <= tags.items(), pool.name
        for key, value in pool.labels.items():
            assert tags[f"k8s.io/cluster-autoscaler/node-template/label/{key}"] == value


def test_karpenter_replaces_gpu_node_groups_with_node_pools():
    program = evaluated("eks-h100", lambda raw: raw["autoscaling"].update(node_autoscaler="karpenter"))
    assert [g.name for g in program.of_type(NODE_GROUP)] == [f"{program.cluster}-system"]
    assert program.of_type(ASG) == []
    manifests = program.named(CONFIG_GROUP, f"{program.cluster}-gpu-layer-manifests").inputs["objs"]
    node_pools = {o["metadata"]["name"]: o for o in manifests if o["kind"] == "NodePool"}
    classes = {o["metadata"]["name"]: o for o in manifests if o["kind"] == "EC2NodeClass"}
    assert set(node_pools) == set(classes) == {p.name for p in program.plan.pools}
    for pool in program.plan.pools:
        template = node_pools[pool.name]["spec"]["template"]
        assert template["metadata"]["labels"] == pool.labels
        assert [t["key"] for t in template["spec"]["taints"]] == [t.key for t in pool.taints]
        assert classes[pool.name]["spec"]["metadataOptions"]["httpTokens"] == "required"
        assert classes[pool.name]["spec"]["role"] == f"{program.cluster}-karpenter-node"
    role = program.named(ROLE, f"{program.cluster}-karpenter-node").inputs
    assert role["name"] == f"{program.cluster}-karpenter-node"
    values = program.named(RELEASE, "karpenter").inputs["values"]
    assert (
        values["settings"]["interruptionQueue"]
        == program.named("aws:sqs/queue:Queue", f"{program.cluster}-karpenter").inputs["name"]
    )


# --- IAM roles for service accounts ------------------------------------------------------------------------


def test_irsa_roles_trust_only_their_service_account(t4):
    expected = {
        f"{t4.cluster}-ebs-csi": "kube-system:ebs-csi-controller-sa",
        f"{t4.cluster}-cluster-autoscaler": "kube-system:cluster-autoscaler",
        f"{t4.cluster}-node-termination-handler": "kube-system:aws-node-termination-handler",
        f"{t4.cluster}-aws-load-balancer-controller": "kube-system:aws-load-balancer-controller",
        f"{t4.cluster}-velero": "velero:velero",
    }
    federated = {}
    for role in t4.of_type(ROLE):
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        if statement["Action"] == "sts:AssumeRoleWithWebIdentity":
            conditions = statement["Condition"]["StringEquals"]
            (sub,) = [v for k, v in conditions.items() if k.endswith(":sub")]
            (aud,) = [v for k, v in conditions.items() if k.endswith(":aud")]
            assert aud == "sts.amazonaws.com"
            assert statement["Principal"]["Federated"].endswith(f"{t4.cluster}-oidc")
            federated[role.name] = sub.removeprefix("system:serviceaccount:")
    assert federated == expected


def test_cluster_autoscaler_may_resize_only_this_clusters_groups(t4):
    policy = json.loads(
        t4.named("aws:iam/rolePolicy:RolePolicy", f"{t4.cluster}-cluster-autoscaler-policy").inputs["policy"]
    )
    (resize,) = [s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert resize["Condition"] == {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{t4.cluster}": "owned"}}


def test_load_balancer_controller_gets_the_published_policy_and_its_vpc(t4):
    policy = json.loads(
        t4.named("aws:iam/rolePolicy:RolePolicy", f"{t4.cluster}-aws-load-balancer-controller-policy").inputs["policy"]
    )
    actions = {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"elasticloadbalancing:CreateLoadBalancer", "ec2:AuthorizeSecurityGroupIngress"} <= actions
    values = t4.named(RELEASE, "aws-load-balancer-controller").inputs["values"]
    assert values["vpcId"] == f"{t4.cluster}-vpc-id"
    assert values["clusterName"] == t4.cluster


def test_vpc_cni_enforces_network_policies_and_ebs_csi_has_its_role(program):
    addons = {a.inputs["addonName"]: a.inputs for a in program.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver", "eks-pod-identity-agent"}
    assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert addons["aws-ebs-csi-driver"]["serviceAccountRoleArn"].endswith(f"{program.cluster}-ebs-csi")


# --- the GPU layer --------------------------------------------------------------------------------------


def _contains(deployed: dict, rendered: dict) -> bool:
    """Every rendered value is deployed unchanged (deployment may add values, such as role ARNs)."""
    return all(
        _contains(deployed.get(key, {}), value) if isinstance(value, dict) else deployed.get(key) == value
        for key, value in rendered.items()
    )


def test_every_rendered_release_and_manifest_is_deployed(program):
    bundle = render(program.plan.spec)
    handler = termination_handler_release(program.plan)
    expected = [*bundle.releases, *([handler] if handler else [])]
    releases = {r.name: r.inputs for r in program.of_type(RELEASE)}
    assert set(releases) == {release.name for release in expected}
    for release in expected:
        deployed = releases[release.name]
        assert (deployed["version"], deployed["namespace"]) == (release.version, release.namespace)
        assert _contains(deployed["values"], release.values), release.name
    objects = [o for group in program.of_type(CONFIG_GROUP) for o in group.inputs["objs"]]
    rendered = [o for groups in (bundle.manifests, bundle.custom_resources) for g in groups.values() for o in g]
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, objects)) == sorted(map(key, rendered))


def test_stack_outputs_name_the_cluster_its_node_groups_and_a_secret_kubeconfig():
    program = evaluated("eks-t4")
    outputs = get_root_resource().outputs
    assert _sync_await(outputs["cluster_name"].future()) == program.cluster
    kubeconfig = outputs["kubeconfig"]
    assert _sync_await(kubeconfig.is_secret()) is True
    config = json.loads(_sync_await(kubeconfig.future()))
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == _sync_await(outputs["endpoint"].future())
    (user,) = config["users"]
    assert user["user"]["exec"]["args"] == [
        "eks",
        "get-token",
        "--cluster-name",
        program.cluster,
        "--region",
        "us-east-1",
        "--output",
        "json",
    ]
    groups = {name: _sync_await(value.future()) for name, value in outputs["node_groups"].items()}
    (pool,) = program.plan.pools
    assert groups == {"system": f"{program.cluster}-system-mock", pool.name: f"{program.cluster}-{pool.name}"}


# --- bad input ------------------------------------------------------------------------------------------


def test_an_invalid_spec_fails_before_any_resource_is_registered():
    config = copy.deepcopy(stack_config("eks-h100"))
    config["gpucluster:cluster"]["node_pools"][0]["availability_zone"] = None
    monitor = RecordingMonitor(OfflineMocks())
    with pytest.raises(pulumi.RunError, match="invalid cluster spec"):
        evaluate("eks-h100", config, run, monitor)
    assert monitor.registered == []


# --- Velero's bucket and role ------------------------------------------------------------------------------


def test_velero_bucket_is_private_versioned_encrypted_and_expires_only_deleted_versions(t4):
    name = f"{t4.cluster}-velero"
    bucket = t4.named("aws:s3/bucket:Bucket", name)
    assert bucket.inputs["bucket"] == "orchestrator-velero-backups"
    block = t4.named("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", f"{name}-public-access").inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    versioning = t4.named("aws:s3/bucketVersioning:BucketVersioning", f"{name}-versioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    encryption = t4.named(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", f"{name}-encryption"
    ).inputs
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    (rule,) = t4.named("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", f"{name}-lifecycle").inputs[
        "rules"
    ]
    assert "expiration" not in rule, "current backups are Velero's to expire (its TTLs)"
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    policy = json.loads(t4.named("aws:s3/bucketPolicy:BucketPolicy", f"{name}-tls-only").inputs["policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_velero_role_is_scoped_to_its_bucket_and_named_in_the_release_values(t4):
    name = f"{t4.cluster}-velero"
    policy = json.loads(t4.named("aws:iam/rolePolicy:RolePolicy", f"{name}-policy").inputs["policy"])
    bucket_arn = f"arn:aws:mock:123456789012:{name}"  # the mocks' ARN of the bucket resource
    by_action = {action: statement["Resource"] for statement in policy["Statement"] for action in statement["Action"]}
    assert by_action["s3:PutObject"] == [f"{bucket_arn}/*"]
    assert by_action["s3:ListBucket"] == [bucket_arn]
    assert not [a for a, resources in by_action.items() if a.startswith("s3:") and "*" in resources]
    release = t4.named(RELEASE, "velero").inputs
    assert release["values"]["serviceAccount"]["server"]["annotations"]["eks.amazonaws.com/role-arn"]


def test_no_backup_bucket_without_velero():
    def no_velero(raw):
        raw.pop("backups", None)

    program = evaluated("eks-t4", no_velero)
    assert program.of_type("aws:s3/bucket:Bucket") == []
