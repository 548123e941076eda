"""Which egress a namespace's NetworkPolicies allow, by the NetworkPolicy rules (networking.k8s.io/v1).

A destination is an address outside the pod network (``Ip``) or a pod (``Pod``). Policies here select
every pod (``podSelector: {}``), as gpucluster renders them. ``ipBlock`` peers match addresses only: for
pod addresses their effect differs between network plugins, so no test relies on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network


@dataclass(frozen=True)
class Ip:
    address: str


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)


def egress_allowed(policies: list[dict], destination: Ip | Pod, port: int, protocol: str = "TCP") -> bool:
    egress = [p for p in policies if "Egress" in p["spec"]["policyTypes"]]
    if not egress:
        return True
    return any(
        _ports_match(rule, port, protocol) and _peers_match(rule, destination, policy["metadata"]["namespace"])
        for policy in egress
        for rule in policy["spec"].get("egress", [])
    )


def _ports_match(rule: dict, port: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports)


def _peers_match(rule: dict, destination: Ip | Pod, namespace: str) -> bool:
    peers = rule.get("to")
    if not peers:
        return True
    return any(_peer_matches(peer, destination, namespace) for peer in peers)


def _peer_matches(peer: dict, destination: Ip | Pod, namespace: str) -> bool:
    if "ipBlock" in peer:
        if not isinstance(destination, Ip):
            return False
        address = ip_address(destination.address)
        block = peer["ipBlock"]
        return address in ip_network(block["cidr"]) and not any(
            address in ip_network(e) for e in block.get("except", [])
        )
    if not isinstance(destination, Pod):
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": destination.namespace}
        if not _selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif destination.namespace != namespace:
        return False
    return _selects(peer.get("podSelector", {}), destination.labels)


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
