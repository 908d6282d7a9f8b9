"""Flows to OpenFlow 1.4 messages and back, through os-ken's parser.

The only module that knows how a Flow is spelled on the wire; the compiler
and the reconciler deal in Flow values.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from os_ken.ofproto import ofproto_v1_4 as ofp
from os_ken.ofproto import ofproto_v1_4_parser as parser

from sdnvirt.controller.fabric.flow import Action, Flow, Foreign, Move, Output, SetField, ToController, flow

OFP_VERSION = ofp.OFP_VERSION
_HEADER = struct.Struct(ofp.OFP_HEADER_PACK_STR)
_BUNDLE_ADD = struct.Struct(ofp.OFP_BUNDLE_ADD_MSG_0_PACK_STR)
_FLOW_MOD = struct.Struct(ofp.OFP_FLOW_MOD_PACK_STR0)  # after the header, up to the match
_MATCH_HEADER = struct.Struct("!HH")  # type, length (of the fields and this header, before padding)
_MULTIPART_REPLY = struct.Struct(ofp.OFP_MULTIPART_REPLY_PACK_STR)  # after the header: type, flags
_ENTRY_LENGTH = struct.Struct("!H")
# Where a flow-stats entry keeps its age and counters: the only bytes that change while
# a flow stays the same (ofp_flow_stats: duration at 4..12, packet and byte counts at 32..48).
_AGE = slice(4, 12)
_COUNTERS = slice(32, 48)


def _action(action: Action):
    if isinstance(action, Output):
        return parser.OFPActionOutput(action.port)
    if isinstance(action, SetField):
        return parser.OFPActionSetField(**{action.field: action.value})
    if isinstance(action, Move):
        return parser.NXActionRegMove(src_field=action.src, dst_field=action.dst, n_bits=action.n_bits)
    if isinstance(action, ToController):
        return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, action.max_len)
    raise TypeError(f"cannot send {action!r}")


def instructions(actions: tuple[Action, ...], write_metadata: tuple[int, int] | None, goto: int | None) -> list:
    """A flow's instructions as os-ken's objects."""
    result = []
    if actions:
        result.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [_action(a) for a in actions]))
    if write_metadata is not None:
        result.append(parser.OFPInstructionWriteMetadata(*write_metadata))
    if goto is not None:
        result.append(parser.OFPInstructionGotoTable(goto))
    return result


def _read_action(action) -> Action:
    if isinstance(action, parser.OFPActionOutput):
        if action.port == ofp.OFPP_CONTROLLER:
            return ToController(action.max_len)
        return Output(action.port)
    if isinstance(action, parser.OFPActionSetField):
        return SetField(action.key, _plain(action.value))
    if isinstance(action, parser.NXActionRegMove) and action.src_ofs == 0 and action.dst_ofs == 0:
        # Open vSwitch answers with the NXM spelling of the OXM fields we sent.
        return Move(action.src_field.removesuffix("_nxm"), action.dst_field.removesuffix("_nxm"), action.n_bits)
    return Foreign(repr(action.to_jsondict()))


def read_flow(stats) -> Flow:
    """A Flow from one entry of a flow-stats reply (or a parsed flow-mod)."""
    actions: list[Action] = []
    write_metadata = goto = None
    for inst in stats.instructions:
        if isinstance(inst, parser.OFPInstructionActions) and inst.type == ofp.OFPIT_APPLY_ACTIONS:
            actions += [_read_action(a) for a in inst.actions]
        elif isinstance(inst, parser.OFPInstructionWriteMetadata):
            write_metadata = (inst.metadata, inst.metadata_mask)
        elif isinstance(inst, parser.OFPInstructionGotoTable):
            goto = inst.table_id
        else:
            actions.append(Foreign(repr(inst.to_jsondict())))
    return flow(stats.table_id, stats.priority, {k: _plain(v) for k, v in stats.match.items()},
                actions=actions, write_metadata=write_metadata, goto=goto, cookie=stats.cookie)


def flow_dump_reply(msg_type: int, message: bytes | bytearray) -> tuple[bool, bool]:
    """Whether a message is a part of a flow dump's reply, and whether more parts follow."""
    if msg_type != ofp.OFPT_MULTIPART_REPLY or len(message) < ofp.OFP_MULTIPART_REPLY_SIZE:
        return False, False
    kind, flags = _MULTIPART_REPLY.unpack_from(message, ofp.OFP_HEADER_SIZE)
    return kind == ofp.OFPMP_FLOW, bool(flags & ofp.OFPMPF_REPLY_MORE)


def read_flow_dump(parts: list[bytes]) -> list[Flow]:
    """The Flows of a flow dump's reply, from its messages' bytes. Each entry is parsed
    once, by os-ken, and remembered by its bytes less its age and counters: a bridge read
    again (it reconnected) mostly holds flows read before. Raises ValueError for a reply
    that does not add up."""
    flows = []
    for part in parts:
        offset, end = ofp.OFP_MULTIPART_REPLY_SIZE, len(part)
        while offset < end:
            if end - offset < ofp.OFP_FLOW_STATS_SIZE:
                raise ValueError(f"a flow-stats entry cut short at byte {offset}")
            (length,) = _ENTRY_LENGTH.unpack_from(part, offset)
            if length < ofp.OFP_FLOW_STATS_SIZE or offset + length > end:
                raise ValueError(f"a flow-stats entry of {length} bytes at byte {offset} of {end}")
            entry = bytearray(part[offset:offset + length])
            entry[_AGE] = bytes(8)
            entry[_COUNTERS] = bytes(16)
            flows.append(_entry_flow(bytes(entry)))
            offset += length
    return flows


@lru_cache(maxsize=1 << 16)
def _entry_flow(entry: bytes) -> Flow:
    try:
        return read_flow(parser.OFPFlowStats.parser(entry, 0))
    except Exception as error:  # whatever os-ken's parser makes of bytes it cannot read
        raise ValueError(f"a flow-stats entry os-ken cannot read: {type(error).__name__}: {error}") from error


def _plain(value):
    return tuple(value) if isinstance(value, list) else value


@lru_cache(maxsize=1 << 16)
def encoded_flow_mod(rule: Flow, delete: bool) -> bytes:
    """The flow-mod's bytes (xid 0): an add (which replaces a flow of the same key, as
    OpenFlow's add does) or a strict delete of the flow's key. Byte for byte what os-ken
    encodes for the same OFPFlowMod, put together from parts each encoded once by os-ken:
    a match field, a flow's instructions.
    os-ken's encoder costs about 0.1 ms a message, too much for a switch-over or for ten
    emptied bridges to be filled again at once."""
    match = _match(rule.match)
    if delete:
        body = _FLOW_MOD.pack(0, 0, rule.table, ofp.OFPFC_DELETE_STRICT, 0, 0, rule.priority, ofp.OFP_NO_BUFFER,
                              ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0) + match
    else:
        body = (_FLOW_MOD.pack(rule.cookie, 0, rule.table, ofp.OFPFC_ADD, 0, 0, rule.priority, ofp.OFP_NO_BUFFER,
                               0, 0, 0, 0)
                + match + _instructions(rule.actions, rule.write_metadata, rule.goto))
    return _HEADER.pack(OFP_VERSION, ofp.OFPT_FLOW_MOD, _HEADER.size + len(body), 0) + body


def _match(fields: tuple[tuple[str, object], ...]) -> bytes:
    """An OXM match in os-ken's order (a stable sort by OXM type), padded to 8 bytes."""
    encoded = b"".join(tlv for _, tlv in sorted((_match_field(name, value) for name, value in fields),
                                                 key=lambda field: field[0]))
    length = _MATCH_HEADER.size + len(encoded)
    return _MATCH_HEADER.pack(ofp.OFPMT_OXM, length) + encoded + bytes(-length % 8)


@lru_cache(maxsize=1 << 16)
def _match_field(name: str, value) -> tuple[int, bytes]:
    """One match field's OXM type (what os-ken orders a match by) and its TLV."""
    match = parser.OFPMatch(**{name: value})
    buf = bytearray()
    match.serialize(buf, 0)
    kind = ofp.oxm_from_user(*ofp.oxm_normalize_user(name, value))[0]
    return (kind[0] if isinstance(kind, tuple) else kind), bytes(buf[_MATCH_HEADER.size:match.length])


@lru_cache(maxsize=1 << 14)
def _instructions(actions: tuple[Action, ...], write_metadata: tuple[int, int] | None, goto: int | None) -> bytes:
    buf = bytearray()
    offset = 0
    for instruction in instructions(actions, write_metadata, goto):
        instruction.serialize(buf, offset)
        offset += instruction.len
    return bytes(buf)


def bundle_adds(bundle_id: int, flags: int, xid: int, deletes: list[Flow], adds: list[Flow]) -> bytes:
    """Bundle-add messages wrapping the deletes, then the adds; inner xids equal the outer
    one, as OpenFlow 1.4 requires."""
    parts = []
    inner_xid = struct.pack("!I", xid)
    for rule, delete in [(r, True) for r in deletes] + [(r, False) for r in adds]:
        inner = encoded_flow_mod(rule, delete)
        length = _HEADER.size + _BUNDLE_ADD.size + len(inner)
        parts.append(_HEADER.pack(OFP_VERSION, ofp.OFPT_BUNDLE_ADD_MESSAGE, length, xid)
                     + _BUNDLE_ADD.pack(bundle_id, flags) + inner[:4] + inner_xid + inner[8:])
    return b"".join(parts)
