"""OpenFlow messages for tests of the controller's own encoding and reading: os-ken's whole
encoding of a flow-mod (the reference), and replies as Open vSwitch sends them."""

from __future__ import annotations

import struct

from os_ken.ofproto import ofproto_protocol
from os_ken.ofproto import ofproto_v1_4 as ofp
from os_ken.ofproto import ofproto_v1_4_parser as parser

from sdnvirt.controller.fabric import openflow
from sdnvirt.controller.fabric.flow import Flow


def reference_flow_mod(rule: Flow, delete: bool) -> bytes:
    """os-ken's own encoding of the flow-mod the controller sends for a flow (xid 0)."""
    datapath = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)
    match = parser.OFPMatch(**dict(rule.match))
    if delete:
        message = parser.OFPFlowMod(datapath, table_id=rule.table, command=ofp.OFPFC_DELETE_STRICT,
                                    priority=rule.priority, match=match, out_port=ofp.OFPP_ANY,
                                    out_group=ofp.OFPG_ANY)
    else:
        message = parser.OFPFlowMod(datapath, cookie=rule.cookie, table_id=rule.table, command=ofp.OFPFC_ADD,
                                    priority=rule.priority, match=match,
                                    instructions=openflow.instructions(rule.actions, rule.write_metadata, rule.goto))
    message.set_xid(0)
    message.serialize()
    return bytes(message.buf)


def flow_stats_entry(rule: Flow, packets: int = 0, age: int = 0) -> bytes:
    """The entry Open vSwitch would send for a flow: the flow-mod's match and instructions
    behind a flow-stats header carrying the flow's age and counters."""
    mod = openflow.encoded_flow_mod(rule, delete=False)
    tail = mod[ofp.OFP_FLOW_MOD_SIZE - ofp.OFP_MATCH_SIZE:]
    return struct.pack(ofp.OFP_FLOW_STATS_0_PACK_STR, ofp.OFP_FLOW_STATS_0_SIZE + len(tail), rule.table,
                       age, 1000 * age, rule.priority, 0, 0, 0, 0, rule.cookie, packets, 60 * packets) + tail


def flow_dump_part(entries: list[bytes], more: bool) -> bytes:
    body = b"".join(entries)
    return (struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY,
                        ofp.OFP_MULTIPART_REPLY_SIZE + len(body), 9)
            + struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, ofp.OFPMP_FLOW, ofp.OFPMPF_REPLY_MORE if more else 0)
            + body)
