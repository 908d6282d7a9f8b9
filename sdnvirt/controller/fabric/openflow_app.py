"""The os-ken application: switch connections in, replies routed to their waiters.

os-ken's own ofp_handler does the OpenFlow handshake; this app turns a
finished handshake into a SwitchChannel for the Fabric, hands every reply and
error to the channel that waits for it, and packet-ins to the controller
(which must not block here: this thread also delivers the replies).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls

from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.channel import SwitchChannel
from sdnvirt.controller.fabric.openflow import OFP_VERSION

LOG = logging.getLogger(__name__)

REPLIES = [
    ofp_event.EventOFPFlowStatsReply,
    ofp_event.EventOFPBundleCtrlMsg,
    ofp_event.EventOFPBarrierReply,
    ofp_event.EventOFPErrorMsg,
]


class FabricApp(app_manager.OSKenApp):
    OFP_VERSIONS = [OFP_VERSION]

    def __init__(self, *args, fabric: Fabric, on_packet_in: Callable[[str, int, bytes, float], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.fabric = fabric
        self._on_packet_in = on_packet_in
        self._channels: dict[object, SwitchChannel] = {}  # by os-ken Datapath
        self.unexpected_replies = 0

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev) -> None:
        datapath = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            channel = SwitchChannel(datapath)
            if self.fabric.switch_connected(channel):
                self._channels[datapath] = channel
        else:
            channel = self._channels.pop(datapath, None)
            if channel is not None:
                self.fabric.switch_disconnected(channel)

    @set_ev_cls(REPLIES, MAIN_DISPATCHER)
    def _reply(self, ev) -> None:
        channel = self._channels.get(ev.msg.datapath)
        if channel is None or not channel.deliver(ev.msg):
            self.unexpected_replies += 1
            LOG.debug("unexpected %s from %s", type(ev.msg).__name__, ev.msg.datapath.id)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev) -> None:
        """Frames the pipeline sends up (QEMU's announcements), handed on with the time they came."""
        received = time.monotonic()
        msg = ev.msg
        host = self.fabric.host_of(msg.datapath.id)
        in_port = msg.match.get("in_port")
        if host is not None and isinstance(in_port, int):
            self._on_packet_in(host, in_port, bytes(msg.data), received)
