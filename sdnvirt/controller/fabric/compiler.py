"""The flow compiler: desired state in, one host's flows out, owner by owner.

Pure functions only (no switch, no I/O), so every forwarding decision can be
tested on its own and the reconciler is the one place that talks to switches.
Flows are compiled per owner (the pipeline, a network on this host, a logical
port as this host sees it), so a change recompiles only what it touches: a
switch-over recompiles one port and its network, not the fabric.

Where a port is bound but not active (a migration's prepared destination, or
its source after the switch-over), the bridge classifies and holds the port
to its addresses as usual, sends its QEMU announcements (RARP) to the
controller, and forwards what is addressed to it to the host where it is
active, tunnelled packets included: traffic for a moving VM may reach both
hosts during the switch-over, and none is lost on the old one.
"""

from __future__ import annotations

import functools

from sdnvirt.controller.fabric.cookies import owner_cookie
from sdnvirt.controller.fabric.flow import (
    FROM_TUNNEL,
    METADATA_MASK,
    MULTICAST,
    NETWORK_MASK,
    OFPP_IN_PORT,
    Flow,
    Move,
    Output,
    SetField,
    ToController,
    flow,
)
from sdnvirt.controller.fabric.pipeline import Pipeline
from sdnvirt.controller.state import PIPELINE_OWNER, FabricView, LogicalPort, OwnerKey
from sdnvirt.model.topology import Network
from sdnvirt.vswitch.ports import Binding

ETH_IP = 0x0800
ETH_ARP = 0x0806
ETH_RARP = 0x8035
ARP_REQUEST = 1
ARP_REPLY = 2


def compile_host(view: FabricView, host: str, pipeline: Pipeline) -> dict[OwnerKey, frozenset[Flow]]:
    """Every flow the integration bridge of `host` should hold, by owner."""
    return {owner: compile_owner(view, host, pipeline, owner) for owner in view.owners_on(host)}


def compile_owner(view: FabricView, host: str, pipeline: Pipeline, owner: OwnerKey) -> frozenset[Flow]:
    """One owner's flows on one host (none when the owner has nothing to do there)."""
    kind, name = owner
    if owner == PIPELINE_OWNER:
        return frozenset(_pipeline_defaults(pipeline))
    if kind == "network":
        network = view.topology.networks.get(name)
        if network is None or host not in view.network_hosts.get(name, ()):
            return frozenset()
        return frozenset(_network(view, pipeline, host, network))
    port = view.logical_ports.get(name)
    if port is None or host not in view.network_hosts.get(port.network.key, ()):
        return frozenset()
    return frozenset(_port(view, pipeline, host, port))


def _pipeline_defaults(pipeline: Pipeline) -> list[Flow]:
    owner = owner_cookie(PIPELINE_OWNER)
    drop = [flow(pipeline.table(name).id, pipeline.table(name).priority("miss"), cookie=owner)
            for name in ("classify", "port_security", "l2_lookup", "flood")]
    arp = pipeline.table("arp_responder")
    return drop + [flow(arp.id, arp.priority("miss"), goto=pipeline.table("l2_lookup").id, cookie=owner)]


def _port(view: FabricView, pipeline: Pipeline, host: str, port: LogicalPort) -> list[Flow]:
    """A logical port as one host that carries its network sees it."""
    active = view.active_binding(port.id)
    if active is None:
        return []  # bound nowhere: nothing to reach, nothing to answer for
    local = view.placements[port.id].get(host)
    flows = _known_address(pipeline, port)
    if local is not None:
        flows += _local_port(pipeline, port, local)
    if active.host == host:
        flows.append(_deliver(pipeline, port, active))
    else:
        tunnel = view.tunnel(host, active.host)
        if tunnel is not None:
            flows.append(_towards(pipeline, port, tunnel, also_from_tunnels=local is not None))
        if local is not None:
            flows.append(_returned(pipeline, port, str(view.topology.hosts[active.host].address)))
    return flows


def _local_port(pipeline: Pipeline, port: LogicalPort, binding: Binding) -> list[Flow]:
    """Classify a local port's packets into its network, and hold it to its own addresses."""
    owner = owner_cookie(("port", port.id))
    classify, security = pipeline.table("classify"), pipeline.table("port_security")
    next_table = pipeline.table("arp_responder").id
    in_port = binding.ofport
    return [
        flow(classify.id, classify.priority("port"), {"in_port": in_port},
             write_metadata=(port.network.vni, METADATA_MASK), goto=security.id, cookie=owner),
        flow(security.id, security.priority("allow"),
             {"in_port": in_port, "eth_src": port.mac, "eth_type": ETH_IP, "ipv4_src": port.ip},
             goto=next_table, cookie=owner),
        flow(security.id, security.priority("allow"),
             {"in_port": in_port, "eth_src": port.mac, "eth_type": ETH_ARP, "arp_sha": port.mac,
              "arp_spa": port.ip},
             goto=next_table, cookie=owner),
        # QEMU's announcement after a migration: the switch-over signal.
        flow(security.id, security.priority("allow"),
             {"in_port": in_port, "eth_src": port.mac, "eth_type": ETH_RARP},
             actions=[ToController()], cookie=owner),
        flow(security.id, security.priority("violation"), {"in_port": in_port}, cookie=owner),
    ]


def _known_address(pipeline: Pipeline, port: LogicalPort) -> list[Flow]:
    """Answer ARP for the port's address on this host; let its gratuitous ARP through."""
    arp, l2 = pipeline.table("arp_responder"), pipeline.table("l2_lookup")
    return list(_address_flows(arp.id, arp.priority("pass"), arp.priority("answer"), l2.id,
                               port.id, port.network.vni, port.mac, port.ip))


@functools.lru_cache(maxsize=1 << 18)
def _address_flows(arp_table: int, pass_priority: int, answer_priority: int, l2_table: int,
                   port_id: str, vni: int, mac: str, ip: str) -> tuple[Flow, Flow]:
    """The same on every host that carries the port's network (half of a fabric's flows):
    made once, by what they are made of."""
    owner = owner_cookie(("port", port_id))
    in_network = (vni, NETWORK_MASK)
    return (
        flow(arp_table, pass_priority,
             {"metadata": in_network, "eth_type": ETH_ARP, "arp_op": ARP_REQUEST, "arp_spa": ip, "arp_tpa": ip},
             goto=l2_table, cookie=owner),
        flow(arp_table, answer_priority,
             {"metadata": in_network, "eth_type": ETH_ARP, "arp_op": ARP_REQUEST, "arp_tpa": ip},
             actions=arp_reply(mac, ip), cookie=owner),
    )


def _deliver(pipeline: Pipeline, port: LogicalPort, binding: Binding) -> Flow:
    l2 = pipeline.table("l2_lookup")
    return flow(l2.id, l2.priority("known"), {"metadata": (port.network.vni, NETWORK_MASK), "eth_dst": port.mac},
                actions=[Output(binding.ofport)], cookie=owner_cookie(("port", port.id)))


def _towards(pipeline: Pipeline, port: LogicalPort, tunnel: int, also_from_tunnels: bool) -> Flow:
    """Into the tunnel to where the port is active. Only packets from local ports, so the
    fabric never hairpins, except on a host the port is still bound to (a migration's
    old or new place), which passes on what is still sent to it."""
    l2 = pipeline.table("l2_lookup")
    vni = port.network.vni
    metadata = (vni, NETWORK_MASK) if also_from_tunnels else (vni, METADATA_MASK)
    return flow(l2.id, l2.priority("known"), {"metadata": metadata, "eth_dst": port.mac},
                actions=[SetField("tunnel_id", vni), Output(tunnel)], cookie=owner_cookie(("port", port.id)))


def _returned(pipeline: Pipeline, port: LogicalPort, active_address: str) -> Flow:
    """What the active host itself tunnelled here is not sent back: while hosts switch over
    one by one, two of them may each think the other is the active one."""
    l2 = pipeline.table("l2_lookup")
    return flow(l2.id, l2.priority("returned"),
                {"metadata": (port.network.vni | FROM_TUNNEL, METADATA_MASK), "tun_ipv4_src": active_address,
                 "eth_dst": port.mac}, cookie=owner_cookie(("port", port.id)))


def _network(view: FabricView, pipeline: Pipeline, host: str, network: Network) -> list[Flow]:
    """A network's flows on one host that carries it."""
    owner = owner_cookie(("network", network.key))
    classify, arp = pipeline.table("classify"), pipeline.table("arp_responder")
    l2, flood = pipeline.table("l2_lookup"), pipeline.table("flood")
    in_network = (network.vni, NETWORK_MASK)
    from_port = (network.vni, METADATA_MASK)
    from_tunnel = (network.vni | FROM_TUNNEL, METADATA_MASK)

    local = sorted(b.ofport for p in view.ports_by_network.get(network.key, [])
                   if (b := view.active_binding(p.id)) is not None and b.host == host)
    remote_hosts = sorted(view.active_hosts.get(network.key, frozenset()) - {host})
    tunnels = [t for t in (view.tunnel(host, r) for r in remote_hosts) if t is not None]
    return [
        flow(classify.id, classify.priority("tunnel"), {"tunnel_id": network.vni},
             write_metadata=(network.vni | FROM_TUNNEL, METADATA_MASK), goto=l2.id, cookie=owner),
        flow(arp.id, arp.priority("pass"),
             {"metadata": in_network, "eth_type": ETH_ARP, "arp_op": ARP_REQUEST, "arp_spa": "0.0.0.0"},
             goto=l2.id, cookie=owner),
        flow(l2.id, l2.priority("multicast"), {"metadata": in_network, "eth_dst": MULTICAST},
             goto=flood.id, cookie=owner),
        flow(flood.id, flood.priority("from_port"), {"metadata": from_port},
             actions=[Output(p) for p in local]
             + ([SetField("tunnel_id", network.vni)] + [Output(t) for t in tunnels] if tunnels else []),
             cookie=owner),
        flow(flood.id, flood.priority("from_tunnel"), {"metadata": from_tunnel},
             actions=[Output(p) for p in local], cookie=owner),
    ]


def arp_reply(mac: str, ip: str) -> list:
    """Turn an ARP request for `ip` into its answer and send it back where it came from."""
    return [
        Move("eth_src", "eth_dst", 48),
        SetField("eth_src", mac),
        SetField("arp_op", ARP_REPLY),
        Move("arp_sha", "arp_tha", 48),
        Move("arp_spa", "arp_tpa", 32),
        SetField("arp_sha", mac),
        SetField("arp_spa", ip),
        Output(OFPP_IN_PORT),
    ]
