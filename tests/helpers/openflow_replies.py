"""Replies as Open vSwitch sends them, built from compiled flows, for tests of what reads them."""

from __future__ import annotations

import struct

from os_ken.ofproto import ofproto_v1_4 as ofp

from sdnvirt.controller.fabric import openflow
from sdnvirt.controller.fabric.flow import Flow


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
