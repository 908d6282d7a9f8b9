"""The os-ken application: switch connections in, replies routed to their waiters.

os-ken's own ofp_handler does the OpenFlow handshake; this app turns a
finished handshake into a SwitchChannel for the Fabric. Replies, errors and
packet-ins are handled right in the thread that reads them from the switch
(registered with os-ken's ofp_event service, as ofp_handler's own handlers
are), not queued to this app's event thread: a switch-over waits for them,
and every thread hop costs it time. So these handlers must never block, and
never raise: os-ken's receive loop does not catch what they raise, and the
switch's connection would end with it.

Each connected bridge gets its controller meter (see meters.py), set on a
thread of its own, so a switch's handshake never waits for another's. A
bridge the Fabric refuses is disconnected, and nothing it sends is heard.

Bridges come in through listener.py, not os-ken's own server: os-ken's
handshake app runs here without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls, set_ev_handler
from os_ken.controller.ofp_handler import OFPHandler

from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.channel import SwitchChannel, SwitchError
from sdnvirt.controller.fabric.listener import hang_up
from sdnvirt.controller.fabric.meters import ensure_controller_meter
from sdnvirt.controller.fabric.openflow import OFP_VERSION

LOG = logging.getLogger(__name__)

REPLIES = [
    ofp_event.EventOFPFlowStatsReply,
    ofp_event.EventOFPBundleCtrlMsg,
    ofp_event.EventOFPBarrierReply,
    ofp_event.EventOFPMeterConfigStatsReply,
    ofp_event.EventOFPPortStatsReply,
    ofp_event.EventOFPErrorMsg,
]


class FabricApp(app_manager.OSKenApp):
    OFP_VERSIONS = [OFP_VERSION]

    def __init__(self, *args, fabric: Fabric,
                 on_packet_in: Callable[[str | None, int | None, bytes, float], None], **kwargs):
        super().__init__(*args, **kwargs)
        self.fabric = fabric
        self._on_packet_in = on_packet_in
        self._channels: dict[object, SwitchChannel] = {}  # by os-ken Datapath
        self._counting = threading.Lock()  # replies come in on every switch's receive thread
        self.unexpected_replies = 0

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev) -> None:
        datapath = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            channel = SwitchChannel(datapath)
            if self.fabric.switch_connected(channel):
                self._channels[datapath] = channel
                threading.Thread(target=self._meter, args=(channel,), name=f"meter-{channel.dpid:#x}",
                                 daemon=True).start()
            else:
                hang_up(datapath)
        else:
            channel = self._channels.pop(datapath, None)
            if channel is not None:
                self.fabric.switch_disconnected(channel)

    def _meter(self, channel: SwitchChannel) -> None:
        host = self.fabric.host_of(channel.dpid)
        try:
            if ensure_controller_meter(channel):
                LOG.info("host %s: controller meter set", host)
        except SwitchError as error:
            LOG.warning("host %s: no controller meter, packet-ins are not rate-limited by the switch: %s",
                        host, error)

    def handle_in_receive_threads(self) -> None:
        """Take replies and packet-ins straight from each switch's receive thread."""
        service = app_manager.lookup_service_brick(ofp_event.NAME)
        for event, handler in [*((e, self._reply) for e in REPLIES), (ofp_event.EventOFPPacketIn, self._packet_in)]:
            service.register_handler(event, set_ev_handler(event, MAIN_DISPATCHER)(_Handler(handler)))

    def _reply(self, ev) -> None:
        channel = self._channels.get(ev.msg.datapath)
        if channel is None or not channel.deliver(ev.msg):
            with self._counting:
                self.unexpected_replies += 1
            LOG.debug("unexpected %s from %s", type(ev.msg).__name__, ev.msg.datapath.id)

    def _packet_in(self, ev) -> None:
        """Frames the pipeline sends up (QEMU's announcements), handed on with the time they came
        and where they came from, as far as it is known; the receiver judges them."""
        received = time.monotonic()
        msg = ev.msg
        in_port = msg.match.get("in_port")
        channel = self._channels.get(msg.datapath)  # None: a bridge the Fabric has not (or not yet) accepted
        self._on_packet_in(self.fabric.host_of(channel.dpid) if channel is not None else None,
                           in_port if isinstance(in_port, int) else None, bytes(msg.data or b""), received)


class _Handler:
    """A bound method as os-ken wants a handler: callable, able to carry `callers`, and
    never raising into os-ken's receive loop."""

    def __init__(self, method: Callable):
        self._method = method

    def __call__(self, ev) -> None:
        try:
            self._method(ev)
        except Exception:  # a bug here must cost one message, not the switch's connection
            LOG.exception("handling %s failed", type(ev.msg).__name__)


class _Handshake(OFPHandler):
    """os-ken's OpenFlow handshake (HELLO, FEATURES, port description, echo), without the
    server os-ken's own starts: bridges come in through listener.py."""

    def start(self):
        return app_manager.OSKenApp.start(self)


def start_fabric_app(fabric: Fabric, on_packet_in: Callable[[str | None, int | None, bytes, float], None]) -> FabricApp:
    """os-ken's handshake and the Fabric's app, running; bridges may connect from now on."""
    manager = app_manager.AppManager.get_instance()
    manager.instantiate(_Handshake).start()
    app = manager.instantiate(FabricApp, fabric=fabric, on_packet_in=on_packet_in)
    app.start()
    app.handle_in_receive_threads()
    return app
