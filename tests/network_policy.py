"""NetworkPolicy semantics, enough to ask of rendered policies whether one pod may reach another (or an address) on a
port: a flow passes when the source's egress and the destination's ingress both allow it, each side open while no
policy of its kind selects the pod, and policies adding up. ipBlock peers match addresses outside the cluster only,
as the Kubernetes documentation asks of them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)  # container port names -> numbers
    name: str = ""


@dataclass(frozen=True)
class Address:
    """Something outside the cluster: the API server, a web server, a client on the Internet."""

    ip: str


Peer = Pod | Address


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not ok:
            return False
    return True


def namespace_labels(namespace: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": namespace}


def _peer_matches(peer: dict[str, Any], other: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        if not isinstance(other, Address):
            return False
        ip = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        return ip.version == network.version and ip in network and not any(
            ip.version == ipaddress.ip_network(e).version and ip in ipaddress.ip_network(e)
            for e in block.get("except", []))
    if isinstance(other, Address):
        return False
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], namespace_labels(other.namespace)):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or matches(peer["podSelector"], other.labels)


def _port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str, target: Peer) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            wanted = target.ports.get(wanted) if isinstance(target, Pod) else None
        if wanted == port or (wanted is not None and "endPort" in entry and wanted <= port <= entry["endPort"]):
            return True
    return False


def _side_allows(policies, pod: Pod, kind: str, other: Peer, port: int, protocol: str, port_owner: Peer) -> bool:
    selecting = [p for p in policies if p["metadata"]["namespace"] == pod.namespace
                 and matches(p["spec"]["podSelector"], pod.labels)
                 and kind in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key, []) or []:
            peers = rule.get(peers_key)
            if (not peers or any(_peer_matches(p, other, pod.namespace) for p in peers)) and _port_matches(
                    rule.get("ports"), port, protocol, port_owner):
                return True
    return False


def allowed(objects, source: Peer, destination: Peer, port: int, protocol: str = "TCP") -> bool:
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    out = not isinstance(source, Pod) or _side_allows(policies, source, "Egress", destination, port, protocol,
                                                      destination)
    into = not isinstance(destination, Pod) or _side_allows(policies, destination, "Ingress", source, port, protocol,
                                                            destination)
    return out and into


def selected_by(objects, pod: Pod, kind: str) -> list[dict[str, Any]]:
    return [p for p in objects if p["kind"] == "NetworkPolicy" and p["metadata"]["namespace"] == pod.namespace
            and matches(p["spec"]["podSelector"], pod.labels) and kind in p["spec"].get("policyTypes", ["Ingress"])]


def pods_of(objects, namespace: str) -> dict[str, Pod]:
    """The pods each workload of `objects` runs, by the workload's component label (or name)."""
    result = {}
    for obj in objects:
        if obj["kind"] == "Pod":
            template = obj
        elif obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            template = obj["spec"]["template"]
        else:
            continue
        labels = template["metadata"]["labels"]
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])
                 if "name" in p}
        key = labels.get("app.kubernetes.io/component", obj["metadata"]["name"])
        result[key] = Pod(obj["metadata"].get("namespace", namespace), labels, ports, obj["metadata"]["name"])
    return result
