"""The VPC: public and private subnets in every spec AZ, NAT, and for the EFA fabric its security group and
each EFA pool's cluster placement group."""

from __future__ import annotations

import math
from ipaddress import IPv4Network

import pulumi
from pulumi_aws import ec2

from gpucluster.plan import Plan
from gpucluster.render.aws_nodes import EFA_SECURITY_GROUP_TAG, KARPENTER_DISCOVERY_TAG, placement_group


def subnet_blocks(vpc: IPv4Network, zones: int) -> tuple[list[IPv4Network], list[IPv4Network]]:
    """(private, public) CIDRs per AZ: the private ones large (with the VPC CNI every pod takes an address),
    the public ones carved from the block after them, an eighth of its size."""
    bits = math.ceil(math.log2(zones + 1))
    blocks = list(vpc.subnets(prefixlen_diff=bits))
    private, spare = blocks[:zones], blocks[zones]
    public = list(spare.subnets(prefixlen_diff=bits))[:zones]
    return private, public


class Network(pulumi.ComponentResource):
    """VPC with an internet gateway, one public and one private subnet per AZ, NAT for the private ones.

    Subnets carry the tags EKS and the AWS Load Balancer Controller discover them by (``kubernetes.io/role/elb``
    public, ``internal-elb`` private). The VPC's default security group is emptied so nothing uses it by accident.
    """

    def __init__(self, plan: Plan, opts: pulumi.ResourceOptions):
        spec = plan.spec
        assert spec.aws is not None
        super().__init__("gpucluster:aws:Network", f"{spec.name}-network", None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_tag = {f"kubernetes.io/cluster/{spec.name}": "shared"}
        self.vpc = ec2.Vpc(
            f"{spec.name}-vpc",
            cidr_block=str(spec.aws.vpc_cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": spec.name},
            opts=child,
        )
        vpc_child = pulumi.ResourceOptions(parent=self.vpc)
        ec2.DefaultSecurityGroup(f"{spec.name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[], opts=vpc_child)
        gateway = ec2.InternetGateway(f"{spec.name}-igw", vpc_id=self.vpc.id, opts=vpc_child)
        public_routes = ec2.RouteTable(
            f"{spec.name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags={"Name": f"{spec.name}-public"},
            opts=vpc_child,
        )
        zones = spec.aws.availability_zones
        private_cidrs, public_cidrs = subnet_blocks(spec.aws.vpc_cidr, len(zones))
        private_tags = {**cluster_tag, "kubernetes.io/role/internal-elb": "1"}
        if spec.autoscaling.node_autoscaler == "karpenter":
            private_tags[KARPENTER_DISCOVERY_TAG] = spec.name
        self.public_subnets: list[ec2.Subnet] = []
        self.private_subnets: dict[str, ec2.Subnet] = {}
        nat_gateways: list[ec2.NatGateway] = []
        for zone, private_cidr, public_cidr in zip(zones, private_cidrs, public_cidrs, strict=True):
            public = ec2.Subnet(
                f"{spec.name}-public-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=str(public_cidr),
                availability_zone=zone,
                tags={"Name": f"{spec.name}-public-{zone}", **cluster_tag, "kubernetes.io/role/elb": "1"},
                opts=vpc_child,
            )
            ec2.RouteTableAssociation(
                f"{spec.name}-public-{zone}", subnet_id=public.id, route_table_id=public_routes.id, opts=vpc_child
            )
            self.public_subnets.append(public)
            if spec.aws.nat_gateways == "per-az" or not nat_gateways:
                address = ec2.Eip(f"{spec.name}-nat-{zone}", domain="vpc", opts=vpc_child)
                nat_gateways.append(
                    ec2.NatGateway(
                        f"{spec.name}-nat-{zone}",
                        subnet_id=public.id,
                        allocation_id=address.id,
                        tags={"Name": f"{spec.name}-nat-{zone}"},
                        opts=pulumi.ResourceOptions(parent=self.vpc, depends_on=[gateway]),
                    )
                )
            private = ec2.Subnet(
                f"{spec.name}-private-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=str(private_cidr),
                availability_zone=zone,
                tags={"Name": f"{spec.name}-private-{zone}", **private_tags},
                opts=vpc_child,
            )
            routes = ec2.RouteTable(
                f"{spec.name}-private-{zone}",
                vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat_gateways[-1].id}],
                tags={"Name": f"{spec.name}-private-{zone}"},
                opts=vpc_child,
            )
            ec2.RouteTableAssociation(
                f"{spec.name}-private-{zone}", subnet_id=private.id, route_table_id=routes.id, opts=vpc_child
            )
            self.private_subnets[zone] = private
        self.efa_security_group: ec2.SecurityGroup | None = None
        self.placement_groups: dict[str, ec2.PlacementGroup] = {}
        if spec.network.fabric == "efa":
            self.efa_security_group = self._efa_security_group(spec.name)
            for pool in plan.pools:
                if pool.spec.efa:
                    name = placement_group(spec, pool)
                    self.placement_groups[pool.name] = ec2.PlacementGroup(
                        name, name=name, strategy="cluster", opts=child
                    )
        self.register_outputs({"vpc_id": self.vpc.id})

    def _efa_security_group(self, cluster: str) -> ec2.SecurityGroup:
        """EFA needs all traffic allowed to and from the members of one security group (and nothing else)."""
        group = ec2.SecurityGroup(
            f"{cluster}-efa",
            vpc_id=self.vpc.id,
            description="EFA: all traffic between the group's members",
            tags={"Name": f"{cluster}-efa", EFA_SECURITY_GROUP_TAG: cluster},
            opts=pulumi.ResourceOptions(parent=self.vpc),
        )
        member = pulumi.ResourceOptions(parent=group)
        ec2.SecurityGroupRule(
            f"{cluster}-efa-in",
            type="ingress",
            protocol="-1",
            from_port=0,
            to_port=0,
            self=True,
            security_group_id=group.id,
            opts=member,
        )
        ec2.SecurityGroupRule(
            f"{cluster}-efa-out",
            type="egress",
            protocol="-1",
            from_port=0,
            to_port=0,
            self=True,
            security_group_id=group.id,
            opts=member,
        )
        return group
