"""Requests to one switch that wait for their answers.

os-ken delivers replies on its event thread; callers here (the reconcilers)
run on their own threads and block, bounded by a timeout, until the reply
with their xid arrives. xids come from our own counter, apart from the ones
os-ken uses for its handshake, so the two never collide. A flow dump's reply
is taken as bytes, before os-ken parses it (see listener.py): openflow.py
reads it faster.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_4 as ofp
from os_ken.ofproto import ofproto_v1_4_parser as parser

from sdnvirt.controller.fabric.flow import Flow
from sdnvirt.controller.fabric.listener import SwitchPeer
from sdnvirt.controller.fabric.openflow import bundle_adds, flow_dump_reply, read_flow_dump

XID_BASE = 0x80000000
BUNDLE_FLAGS = ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
DEFAULT_TIMEOUT = 10.0


class SwitchError(RuntimeError):
    """The switch refused a request, did not answer in time, or went away."""


def _last_part(reply) -> bool:
    """The last (or only) part of a multipart reply."""
    return not getattr(reply, "flags", 0) & ofp.OFPMPF_REPLY_MORE


def _committed(reply) -> bool:
    return isinstance(reply, parser.OFPBundleCtrlMsg) and reply.type == ofp.OFPBCT_COMMIT_REPLY


def _discarded(reply) -> bool:
    return isinstance(reply, parser.OFPBundleCtrlMsg) and reply.type == ofp.OFPBCT_DISCARD_REPLY


@dataclass
class _Pending:
    final: Callable[[object], bool]  # does this reply end the wait? (an error always does)
    replies: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    answered: float | None = None  # time.monotonic() when the reply that ended the wait came
    unattended: bool = False  # nobody waits: the reply that ends it forgets it
    raw: bool = False  # its replies are flow dump parts, taken as bytes


class SwitchChannel:
    def __init__(self, datapath):
        self.datapath = datapath
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._xids = itertools.count(XID_BASE)
        self.closed = False
        datapath.raw_taker = self.take_raw  # before anyone asks for a flow dump

    @property
    def dpid(self) -> int:
        return self.datapath.id

    @property
    def peer(self) -> SwitchPeer:
        """Who connected (listener.py gives os-ken this as the datapath's address)."""
        return self.datapath.address

    def _next_xid(self) -> int:
        with self._lock:
            return next(self._xids) & 0xFFFFFFFF

    def _send(self, msg, xid: int) -> None:
        msg.set_xid(xid)
        if self.closed or not self.datapath.send_msg(msg):
            raise SwitchError(f"switch {self.dpid:#x} is not connected")

    def _expect(self, xid: int, final: Callable[[object], bool] = _last_part, raw: bool = False) -> _Pending:
        pending = _Pending(final, raw=raw)
        with self._lock:
            self._pending[xid] = pending
        return pending

    def _wait(self, xid: int, pending: _Pending, timeout: float, what: str) -> _Pending:
        try:
            if not pending.done.wait(timeout):
                raise SwitchError(f"switch {self.dpid:#x} did not answer {what} within {timeout:.0f}s")
            if self.closed:
                raise SwitchError(f"switch {self.dpid:#x} disconnected during {what}")
            return pending
        finally:
            with self._lock:
                self._pending.pop(xid, None)

    def deliver(self, msg) -> bool:
        """Hand a reply or error from os-ken to whoever waits for it; False if nobody does."""
        with self._lock:
            pending = self._pending.get(msg.xid)
        if pending is None:
            return False
        if isinstance(msg, parser.OFPErrorMsg):
            pending.errors.append(msg)
        else:
            pending.replies.append(msg)
            if not pending.final(msg):
                return True
            pending.answered = time.monotonic()
        pending.done.set()
        if pending.unattended:
            with self._lock:
                self._pending.pop(msg.xid, None)
        return True

    def take_raw(self, msg_type: int, xid: int, message: bytearray) -> bool:
        """Take a part of a flow dump's reply as bytes, for whoever waits for it (the
        connection's raw taker); False for anything else, which os-ken parses."""
        with self._lock:
            pending = self._pending.get(xid)
        if pending is None or not pending.raw or msg_type == ofp.OFPT_ERROR:
            return False  # an error: os-ken parses it, and `deliver` hands it on
        dump, more = flow_dump_reply(msg_type, message)
        if dump:
            pending.replies.append(bytes(message))
        else:
            pending.errors.append(f"an answer of type {msg_type} where a flow dump's was due")
        if more and dump:
            return True
        pending.answered = time.monotonic()
        pending.done.set()
        return True

    def close(self) -> None:
        """The switch went away: wake everyone still waiting."""
        self.closed = True
        with self._lock:
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.done.set()

    def inject(self, in_port: int, frame: bytes) -> None:
        """Run a frame through the pipeline as if it had come in on `in_port` (packet-out to TABLE)."""
        message = parser.OFPPacketOut(self.datapath, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                                      actions=[parser.OFPActionOutput(ofp.OFPP_TABLE)], data=frame)
        self._send(message, self._next_xid())

    def flow_stats(self, timeout: float = DEFAULT_TIMEOUT, table: int = ofp.OFPTT_ALL) -> list:
        """Every flow on the switch (or in one table) as os-ken flow stats (with packet counters)."""
        return self._multipart(parser.OFPFlowStatsRequest(self.datapath, table_id=table), "a flow dump", timeout)

    def dump_flows(self, timeout: float = DEFAULT_TIMEOUT) -> list[Flow]:
        """Every flow on the switch, without counters."""
        parts = self._replies(parser.OFPFlowStatsRequest(self.datapath, table_id=ofp.OFPTT_ALL), "a flow dump",
                              timeout, raw=True)
        try:
            return read_flow_dump(parts)
        except ValueError as error:
            raise SwitchError(f"switch {self.dpid:#x} sent a flow dump that does not add up: {error}") from error

    def meter_configs(self, timeout: float = DEFAULT_TIMEOUT) -> list:
        """Every meter's configuration on the switch, as os-ken meter config stats."""
        return self._multipart(parser.OFPMeterConfigStatsRequest(self.datapath, 0, ofp.OFPM_ALL), "a meter dump",
                               timeout)

    def port_stats(self, timeout: float = DEFAULT_TIMEOUT) -> list:
        """Every port's counters (and age) as os-ken port stats."""
        return self._multipart(parser.OFPPortStatsRequest(self.datapath, 0, ofp.OFPP_ANY), "a port stats request",
                               timeout)

    def _multipart(self, request, what: str, timeout: float) -> list:
        return [entry for reply in self._replies(request, what, timeout) for entry in reply.body]

    def _replies(self, request, what: str, timeout: float, raw: bool = False) -> list:
        """Every part of a multipart reply: os-ken's messages, or with `raw` their bytes."""
        xid = self._next_xid()
        pending = self._expect(xid, raw=raw)
        try:
            self._send(request, xid)
        except SwitchError:
            with self._lock:
                self._pending.pop(xid, None)
            raise
        self._wait(xid, pending, timeout, what)
        if pending.errors:
            raise SwitchError(f"switch {self.dpid:#x} refused {what}: {pending.errors[0]}")
        return pending.replies

    def confirm(self, message, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Send a message and a barrier under one xid: returns once the switch has handled
        the message, raises if it refused it."""
        xid = self._next_xid()
        pending = self._expect(xid, lambda reply: isinstance(reply, parser.OFPBarrierReply))
        self._send(message, xid)
        self._send(parser.OFPBarrierRequest(self.datapath), xid)
        self._wait(xid, pending, timeout, f"a {type(message).__name__}")
        if pending.errors:
            raise SwitchError(f"switch {self.dpid:#x} refused a {type(message).__name__}: {pending.errors[0]}")

    def send_flows(self, deletes: list[Flow], adds: list[Flow]) -> Commit:
        """Send a bundle that deletes and adds flows atomically (all of them or none);
        `Commit.wait()` tells how it went.

        The whole bundle leaves in one write, every message under one xid. The switch
        handles them in order, so an error for any of them comes before the commit's
        answer: the commit reply means every flow is in.
        """
        xid = self._next_xid()
        pending = self._expect(xid, _committed)
        blob = (self._bundle_control(xid, ofp.OFPBCT_OPEN_REQUEST) + bundle_adds(xid, BUNDLE_FLAGS, xid, deletes, adds)
                + self._bundle_control(xid, ofp.OFPBCT_COMMIT_REQUEST))
        return Commit(self, xid, pending, self._send_bundle_messages(xid, blob))

    def stage_flows(self, deletes: list[Flow], adds: list[Flow], timeout: float = DEFAULT_TIMEOUT) -> StagedBundle:
        """Open a bundle with these deletes and adds and leave it open: the switch holds it,
        checked, and applies nothing until `StagedBundle.commit()`, a message of 16 bytes.
        Returns once the switch has taken every message; raises if it refused one (the bundle
        is discarded then). The switch forgets a bundle left idle (Open vSwitch: after 10 s)."""
        xid, barrier = self._next_xid(), self._next_xid()
        pending = self._expect(xid, _committed)
        blob = self._bundle_control(xid, ofp.OFPBCT_OPEN_REQUEST) + bundle_adds(xid, BUNDLE_FLAGS, xid, deletes, adds)
        self._send_bundle_messages(xid, blob)
        staged = StagedBundle(self, xid, pending, time.monotonic())
        took = self._expect(barrier, lambda reply: isinstance(reply, parser.OFPBarrierReply))
        try:
            self._send(parser.OFPBarrierRequest(self.datapath), barrier)
            self._wait(barrier, took, timeout, "a staged bundle")
        except SwitchError:
            with self._lock:
                self._pending.pop(barrier, None)  # a barrier never sent is waited for by nobody
            staged.discard()
            raise
        if pending.errors:  # errors of the bundle's messages come before the barrier's reply
            staged.discard()
            raise SwitchError(f"switch {self.dpid:#x} refused a staged bundle: {pending.errors[0]}")
        return staged

    def _bundle_control(self, bundle_id: int, kind: int) -> bytes:
        return self._encode(parser.OFPBundleCtrlMsg(self.datapath, bundle_id, kind, BUNDLE_FLAGS, []), bundle_id)

    def _send_bundle_messages(self, xid: int, blob: bytes, at_once: bool = False) -> float:
        """Hand a bundle's messages to the connection in one write (`at_once`: written by this
        thread, not queued for os-ken's sender); when (time.monotonic())."""
        sent = time.monotonic()  # before: the answer may come before this thread runs again
        if self.closed or not (self.datapath.send_now(blob) if at_once else self.datapath.send(blob)):
            with self._lock:
                self._pending.pop(xid, None)
            raise SwitchError(f"switch {self.dpid:#x} is not connected")
        return sent

    def commit_flows(self, deletes: list[Flow], adds: list[Flow], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.send_flows(deletes, adds).wait(timeout)

    @staticmethod
    def _encode(msg, xid: int) -> bytes:
        msg.set_xid(xid)
        msg.serialize()
        return bytes(msg.buf)


@dataclass
class StagedBundle:
    """A bundle the switch holds open: committed in one message, or discarded."""

    channel: SwitchChannel
    xid: int  # the bundle's id too
    pending: _Pending
    staged_at: float  # time.monotonic() when it was opened

    @property
    def usable(self) -> bool:
        """Still open on a live connection, and refused nothing (an expired bundle is refused)."""
        return not self.channel.closed and not self.pending.errors

    def commit(self) -> Commit:
        """Sent from the caller's thread at once: every message of the bundle is on the wire
        already (the switch answered the barrier behind them), so nothing queued comes before."""
        return Commit(self.channel, self.xid, self.pending, self.channel._send_bundle_messages(
            self.xid, self.channel._bundle_control(self.xid, ofp.OFPBCT_COMMIT_REQUEST), at_once=True))

    def discard(self) -> None:
        """Drop it, not waiting for the answer (none of the bundle's flows is applied)."""
        with self.channel._lock:
            self.pending.unattended = True
            self.pending.final = _discarded
        try:
            self.channel._send_bundle_messages(self.xid, self.channel._bundle_control(self.xid,
                                                                                      ofp.OFPBCT_DISCARD_REQUEST))
        except SwitchError:
            pass  # gone with its connection


@dataclass
class Commit:
    """A bundle on its way: wait() returns once the switch has applied it, or raises."""

    channel: SwitchChannel
    xid: int
    pending: _Pending
    sent: float  # time.monotonic() when it was handed to the connection

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.channel._wait(self.xid, self.pending, timeout, "a bundle")
        if self.pending.errors:
            raise SwitchError(f"switch {self.channel.dpid:#x} rejected a bundle: {self.pending.errors[0]}")

    @property
    def answered(self) -> float | None:
        """When (time.monotonic()) the switch said it had applied the bundle."""
        return self.pending.answered
