"""Hybrid stacks (seed 003): EC2 machines provisioned as code, then configured by the Ansible roles.

The VPC is the same component EKS stacks use. Every machine sits in a public subnet with a public address
so Ansible can reach it over SSH, but its security group admits SSH and the Kubernetes API only from the
spec's ``aws.admin_cidrs``; the machines talk to each other freely. Instances require IMDSv2 (hop limit 1:
pods get no instance credentials), boot from an encrypted gp3 volume and run the spec's machine image
(Ubuntu 24.04 or Debian 12, from the publisher's account). Names follow the inventory's: ``control-plane-N``
and ``<pool>-N``.
"""

from __future__ import annotations

import pulumi
from pulumi_aws import Provider, ec2

from gpucluster.aws.network import Network
from gpucluster.plan import Plan
from gpucluster.spec import MachineImage

# Publisher account, image name pattern and the login user of each machine image.
MACHINE_IMAGES: dict[str, tuple[str, str, str]] = {
    "ubuntu-24.04": ("099720109477", "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*", "ubuntu"),
    "debian-12": ("136693071363", "debian-12-amd64-*", "admin"),
}
CONTROL_PLANE_DISK_GIB = 100
API_SERVER_PORT = 6443


def login_user(image: MachineImage) -> str:
    return MACHINE_IMAGES[image][2]


def machine_names(plan: Plan) -> dict[str, tuple[str, int, str | None]]:
    """Machine name -> (instance type, root volume GiB, pinned zone) for every machine the stack provisions."""
    spec = plan.spec
    control_plane = spec.kubernetes.control_plane
    machines: dict[str, tuple[str, int, str | None]] = {}
    if control_plane is not None and control_plane.instance_type:
        for index in range(1, control_plane.count + 1):
            machines[f"control-plane-{index}"] = (control_plane.instance_type, CONTROL_PLANE_DISK_GIB, None)
    for pool in plan.pools:
        if not pool.spec.instance_types:
            continue
        for index in range(1, pool.spec.scaling.desired + 1):
            machines[f"{pool.name}-{index}"] = (
                pool.spec.instance_types[0],
                pool.spec.disk_gib,
                pool.spec.availability_zone,
            )
    return machines


class HybridMachines(pulumi.ComponentResource):
    """The stack's EC2 machines; ``addresses`` maps each machine name to its public address."""

    def __init__(self, plan: Plan, opts: pulumi.ResourceOptions):
        spec = plan.spec
        aws = spec.aws
        assert aws is not None and aws.ssh_public_key is not None, "hybrid stacks have an aws section and a key"
        super().__init__("gpucluster:aws:HybridMachines", f"{spec.name}-machines", None, opts)
        child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=self))
        network = Network(plan, child)
        ingress: list[ec2.SecurityGroupIngressArgsDict] = [
            {"protocol": "-1", "from_port": 0, "to_port": 0, "self": True, "description": "between machines"}
        ]
        for cidr in aws.admin_cidrs:
            for port, what in ((22, "SSH (Ansible)"), (API_SERVER_PORT, "Kubernetes API")):
                ingress.append(
                    {
                        "protocol": "tcp",
                        "from_port": port,
                        "to_port": port,
                        "cidr_blocks": [str(cidr)],
                        "description": what,
                    }
                )
        group = ec2.SecurityGroup(
            f"{spec.name}-machines",
            vpc_id=network.vpc.id,
            description=f"{spec.name}: SSH and the API from the admins, everything between the machines",
            ingress=ingress,
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            opts=child,
        )
        key = ec2.KeyPair(f"{spec.name}-ansible", public_key=aws.ssh_public_key, opts=child)
        owner, name_pattern, _user = MACHINE_IMAGES[aws.machine_image]
        image = ec2.get_ami_output(
            most_recent=True,
            owners=[owner],
            filters=[{"name": "name", "values": [name_pattern]}, {"name": "architecture", "values": ["x86_64"]}],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        subnets = {
            subnet_zone: subnet
            for subnet_zone, subnet in zip(aws.availability_zones, network.public_subnets, strict=True)
        }
        zones = list(subnets)
        self.instances: dict[str, ec2.Instance] = {}
        for index, (machine, (instance_type, disk_gib, zone)) in enumerate(machine_names(plan).items()):
            self.instances[machine] = ec2.Instance(
                f"{spec.name}-{machine}",
                ami=image.id,
                instance_type=instance_type,
                subnet_id=subnets[zone or zones[index % len(zones)]].id,
                associate_public_ip_address=True,
                vpc_security_group_ids=[group.id],
                key_name=key.key_name,
                metadata_options={
                    "http_tokens": "required",
                    "http_put_response_hop_limit": 1,
                    "http_endpoint": "enabled",
                },
                root_block_device={"encrypted": True, "volume_type": "gp3", "volume_size": disk_gib},
                tags={"Name": f"{spec.name}-{machine}"},
                opts=child,
            )
        self.addresses = pulumi.Output.all(
            **{machine: instance.public_ip for machine, instance in self.instances.items()}
        )
        self.register_outputs({"addresses": self.addresses})


def build_machines(plan: Plan) -> tuple[pulumi.Output[dict[str, str]], dict[str, str]]:
    """The machines in their own tagged provider; their addresses and the Ansible login for them."""
    from gpucluster.aws.program import resource_tags

    aws = plan.spec.aws
    assert aws is not None
    provider = Provider("aws", region=aws.region, default_tags={"tags": resource_tags(plan)})
    machines = HybridMachines(plan, pulumi.ResourceOptions(provider=provider))
    return machines.addresses, {"ansible_user": login_user(aws.machine_image)}
