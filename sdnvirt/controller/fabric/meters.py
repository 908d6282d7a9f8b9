"""Every bridge's controller meter: the switch itself drops packet-ins beyond a rate.

Packet-ins are how a guest's frames reach the controller (QEMU's announcements,
see the compiler), so a guest flooding them must not flood the controller.
OpenFlow's virtual meter OFPM_CONTROLLER applies to everything a bridge sends
to its controller, whichever flow sends it; its drop band counts what it
dropped (`ovs-ofctl -O OpenFlow14 meter-stats br-int`, meter:controller).
Like the flows, the meter is read first and written only when it differs, so a
controller restart sends nothing.
"""

from __future__ import annotations

from os_ken.ofproto import ofproto_v1_4 as ofp
from os_ken.ofproto import ofproto_v1_4_parser as parser

from sdnvirt.controller.fabric.channel import SwitchChannel

RATE = 200  # packet-ins a second, per bridge: QEMU sends 5 per NIC and migration
BURST = 100  # packet-ins let through at once after a quiet spell: many VMs landing together
FLAGS = ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS


def _shape(flags: int, bands) -> tuple:
    """What makes two meter configurations the same."""
    return flags & FLAGS, tuple((type(b).__name__, b.rate, b.burst_size) for b in bands)


def ensure_controller_meter(channel: SwitchChannel) -> bool:
    """Give the switch its controller meter unless it holds it already; True if it was sent.
    Raises SwitchError if the switch refuses it (e.g. it has no meters)."""
    bands = [parser.OFPMeterBandDrop(rate=RATE, burst_size=BURST)]
    current = next((c for c in channel.meter_configs() if c.meter_id == ofp.OFPM_CONTROLLER), None)
    if current is not None and _shape(current.flags, current.bands) == _shape(FLAGS, bands):
        return False
    command = ofp.OFPMC_ADD if current is None else ofp.OFPMC_MODIFY
    channel.confirm(parser.OFPMeterMod(channel.datapath, command=command, flags=FLAGS,
                                       meter_id=ofp.OFPM_CONTROLLER, bands=bands))
    return True
