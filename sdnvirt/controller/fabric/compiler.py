"""The flow compiler: desired state in, every flow of one host's bridge out.

Pure functions only (no switch, no I/O), so every forwarding decision can be
tested on its own and the reconciler is the one place that talks to switches.
"""

from __future__ import annotations

from sdnvirt.controller.fabric.cookies import Owner, cookie
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
    flow,
)
from sdnvirt.controller.fabric.pipeline import Pipeline
from sdnvirt.controller.state import FabricView, LogicalPort
from sdnvirt.model.topology import Network
from sdnvirt.vswitch.ports import Binding, HostPorts

ETH_IP = 0x0800
ETH_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2


def compile_host(view: FabricView, host: str, pipeline: Pipeline) -> frozenset[Flow]:
    """Every flow the integration bridge of `host` should hold."""
    flows = set(_pipeline_defaults(pipeline))
    for binding in view.ports.get(host, HostPorts(host)).bindings:
        port = view.logical_ports.get(binding.port_id)
        if port is not None and view.bindings.get(port.id) == binding:
            flows.update(_local_port(pipeline, port, binding))
    local_networks = {view.logical_ports[b.port_id].network.key
                      for b in view.bindings.values() if b.host == host}
    for network in sorted(local_networks):
        flows.update(_network(view, pipeline, host, view.topology.networks[network]))
    return frozenset(flows)


def _pipeline_defaults(pipeline: Pipeline) -> list[Flow]:
    owner = cookie(Owner.PIPELINE, "defaults")
    drop = [flow(pipeline.table(name).id, pipeline.table(name).priority("miss"), cookie=owner)
            for name in ("classify", "port_security", "l2_lookup", "flood")]
    arp = pipeline.table("arp_responder")
    return drop + [flow(arp.id, arp.priority("miss"), goto=pipeline.table("l2_lookup").id, cookie=owner)]


def _local_port(pipeline: Pipeline, port: LogicalPort, binding: Binding) -> list[Flow]:
    """Classify a local port's packets into its network, and hold it to its own addresses."""
    owner = cookie(Owner.PORT, port.id)
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
        flow(security.id, security.priority("violation"), {"in_port": in_port}, cookie=owner),
    ]


def _network(view: FabricView, pipeline: Pipeline, host: str, network: Network) -> list[Flow]:
    """A network's flows on one host that has ports in it."""
    owner = cookie(Owner.NETWORK, network.key)
    classify, arp = pipeline.table("classify"), pipeline.table("arp_responder")
    l2, flood = pipeline.table("l2_lookup"), pipeline.table("flood")
    in_network = (network.vni, NETWORK_MASK)
    from_port = (network.vni, METADATA_MASK)
    from_tunnel = (network.vni | FROM_TUNNEL, METADATA_MASK)

    bound = view.bound_ports(network.key)
    local = sorted(b.ofport for _, b in bound if b.host == host)
    remote_hosts = sorted({b.host for _, b in bound if b.host != host})
    tunnels = [t for t in (view.tunnel(host, r) for r in remote_hosts) if t is not None]

    flows = [
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
    for port, binding in bound:
        flows += _known_address(view, pipeline, host, port, binding)
    return flows


def _known_address(view: FabricView, pipeline: Pipeline, host: str, port: LogicalPort,
                   binding: Binding) -> list[Flow]:
    """Answer ARP for a bound port's address here, and forward to where the port is bound."""
    owner = cookie(Owner.PORT, port.id)
    arp, l2 = pipeline.table("arp_responder"), pipeline.table("l2_lookup")
    vni = port.network.vni
    in_network = (vni, NETWORK_MASK)
    flows = [
        flow(arp.id, arp.priority("pass"),
             {"metadata": in_network, "eth_type": ETH_ARP, "arp_op": ARP_REQUEST, "arp_spa": port.ip,
              "arp_tpa": port.ip},
             goto=l2.id, cookie=owner),
        flow(arp.id, arp.priority("answer"),
             {"metadata": in_network, "eth_type": ETH_ARP, "arp_op": ARP_REQUEST, "arp_tpa": port.ip},
             actions=arp_reply(port.mac, port.ip), cookie=owner),
    ]
    if binding.host == host:
        flows.append(flow(l2.id, l2.priority("known"), {"metadata": in_network, "eth_dst": port.mac},
                          actions=[Output(binding.ofport)], cookie=owner))
    else:
        tunnel = view.tunnel(host, binding.host)
        if tunnel is not None:
            # Only packets from local ports go into a tunnel: no fabric hairpins.
            flows.append(flow(l2.id, l2.priority("known"), {"metadata": (vni, METADATA_MASK), "eth_dst": port.mac},
                              actions=[SetField("tunnel_id", vni), Output(tunnel)], cookie=owner))
    return flows


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
