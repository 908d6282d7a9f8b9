"""Flows survive the trip to OpenFlow 1.4 bytes and back unchanged (os-ken's own parser)."""

import struct

import pytest
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_4 as ofp
from os_ken.ofproto import ofproto_v1_4_parser as parser

from sdnvirt.controller.fabric import openflow
from sdnvirt.controller.fabric.compiler import compile_host
from sdnvirt.controller.fabric.flow import Move, flow

from helpers.fabric_views import PIPELINE, TOPOLOGY, view
from helpers.openflow_replies import flow_dump_part, flow_stats_entry, reference_flow_mod


class Datapath:
    ofproto = ofp
    ofproto_parser = parser
    id = 1


def sent(rule, delete: bool = False):
    """The flow-mod the controller sends for a flow, as the switch's parser reads it."""
    message = openflow.encoded_flow_mod(rule, delete)
    return ofproto_parser.msg(Datapath(), ofp.OFP_VERSION, ofp.OFPT_FLOW_MOD, len(message), 0, message)


ALL_FLOWS = sorted({f for host in TOPOLOGY.hosts for flows in compile_host(view(), host, PIPELINE).values()
                    for f in flows}, key=str)


@pytest.mark.parametrize("rule", ALL_FLOWS, ids=lambda f: f"t{f.table}p{f.priority}")
def test_every_compiled_flow_reads_back_equal(rule):
    assert openflow.read_flow(sent(rule)) == rule


@pytest.mark.parametrize("delete", [False, True], ids=["add", "delete"])
@pytest.mark.parametrize("rule", ALL_FLOWS, ids=lambda f: f"t{f.table}p{f.priority}")
def test_every_compiled_flow_is_encoded_byte_for_byte_as_os_ken_encodes_it(rule, delete):
    """The flow-mods sent are put together from parts (fields, instructions) encoded once each:
    os-ken's whole encoding of the same message is the reference."""
    assert openflow.encoded_flow_mod(rule, delete) == reference_flow_mod(rule, delete)


def test_a_strict_delete_addresses_exactly_the_flow_key():
    rule = ALL_FLOWS[0]
    back = sent(rule, delete=True)
    assert back.command == ofp.OFPFC_DELETE_STRICT
    assert (back.table_id, back.priority, tuple(sorted(back.match.items()))) == rule.key


def test_open_vswitch_spelling_of_moved_fields_is_understood():
    """OVS answers a move of eth_src with the NXM name eth_src_nxm."""
    stats = parser.OFPFlowStats(table_id=20, priority=1, match=parser.OFPMatch(), cookie=0, instructions=[
        parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
            parser.NXActionRegMove(src_field="eth_src_nxm", dst_field="eth_dst_nxm", n_bits=48)])])
    assert openflow.read_flow(stats) == flow(20, 1, actions=[Move("eth_src", "eth_dst", 48)])


def test_instructions_sdnvirt_never_writes_never_equal_a_compiled_flow():
    stats = parser.OFPFlowStats(table_id=0, priority=0, match=parser.OFPMatch(), cookie=0, instructions=[
        parser.OFPInstructionMeter(1)])
    assert openflow.read_flow(stats) != flow(0, 0)


def test_bundle_adds_carry_the_flow_mods_under_the_outer_xid():
    deletes, adds = ALL_FLOWS[:2], ALL_FLOWS[2:5]
    blob = openflow.bundle_adds(bundle_id=9, flags=ofp.OFPBF_ATOMIC, xid=77, deletes=deletes, adds=adds)
    inner, offset = [], 0
    while offset < len(blob):
        version, msg_type, length, xid = ofproto_parser.header(blob[offset:])
        assert (version, msg_type, xid) == (ofp.OFP_VERSION, ofp.OFPT_BUNDLE_ADD_MESSAGE, 77)
        bundle_id, flags = struct.unpack_from(ofp.OFP_BUNDLE_ADD_MSG_0_PACK_STR, blob, offset + ofp.OFP_HEADER_SIZE)
        assert (bundle_id, flags) == (9, ofp.OFPBF_ATOMIC)
        body = blob[offset + ofp.OFP_BUNDLE_ADD_MSG_SIZE - ofp.OFP_HEADER_SIZE:offset + length]
        _, inner_type, inner_length, inner_xid = ofproto_parser.header(body)
        assert (inner_type, inner_length, inner_xid) == (ofp.OFPT_FLOW_MOD, len(body), 77)
        inner.append(ofproto_parser.msg(Datapath(), version, inner_type, inner_length, inner_xid, body))
        offset += length
    assert [m.command for m in inner] == [ofp.OFPFC_DELETE_STRICT] * 2 + [ofp.OFPFC_ADD] * 3
    assert [openflow.read_flow(m) for m in inner[2:]] == adds


def test_a_flow_dump_in_several_parts_reads_back_every_compiled_flow():
    entries = [flow_stats_entry(rule, packets=n, age=n) for n, rule in enumerate(ALL_FLOWS)]
    half = len(entries) // 2
    parts = [flow_dump_part(entries[:half], more=True), flow_dump_part(entries[half:], more=False)]
    assert [openflow.flow_dump_reply(ofp.OFPT_MULTIPART_REPLY, p) for p in parts] == [(True, True), (True, False)]
    assert openflow.read_flow_dump(parts) == ALL_FLOWS


def test_a_flow_read_again_with_other_counters_is_the_same_flow_not_parsed_again():
    rule = ALL_FLOWS[-1]
    first, = openflow.read_flow_dump([flow_dump_part([flow_stats_entry(rule, packets=1, age=1)], more=False)])
    again, = openflow.read_flow_dump([flow_dump_part([flow_stats_entry(rule, packets=99, age=7)], more=False)])
    assert first == rule and again is first


@pytest.mark.parametrize("cut", [1, ofp.OFP_FLOW_STATS_SIZE - 1, 8])
def test_a_flow_dump_that_does_not_add_up_is_refused_by_name(cut):
    entry = flow_stats_entry(ALL_FLOWS[0])
    part = flow_dump_part([entry], more=False)
    with pytest.raises(ValueError, match="flow-stats entry"):
        openflow.read_flow_dump([part[:-cut]])


def test_an_entry_whose_length_lies_is_refused():
    entry = bytearray(flow_stats_entry(ALL_FLOWS[0]))
    struct.pack_into("!H", entry, 0, 8)
    with pytest.raises(ValueError, match="flow-stats entry of 8 bytes"):
        openflow.read_flow_dump([flow_dump_part([bytes(entry)], more=False)])


def test_other_replies_are_not_flow_dumps():
    port_stats = struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, 16, 9) + \
        struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, ofp.OFPMP_PORT_STATS, 0)
    assert openflow.flow_dump_reply(ofp.OFPT_MULTIPART_REPLY, port_stats) == (False, False)
    assert openflow.flow_dump_reply(ofp.OFPT_ERROR, flow_dump_part([], more=False)) == (False, False)
