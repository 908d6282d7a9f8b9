"""The frames a migration speaks: QEMU's RARP announcement in, gratuitous ARP out.

A guest's frames are untrusted input: parsing never raises, it answers None
for anything that is not exactly an announcement.
"""

from __future__ import annotations

import struct

from netaddr import EUI, IPAddress, mac_unix_expanded

ETH_RARP = 0x8035
ETH_ARP = 0x0806
ETH_HEADER = struct.Struct("!6s6sH")
ARP_BODY = struct.Struct("!HHBBH6s4s6s4s")  # htype ptype hlen plen op sha spa tha tpa
RARP_REQUEST_REVERSE = 3
ARP_REQUEST = 1
BROADCAST = b"\xff" * 6


def _mac(raw: bytes) -> str:
    return str(EUI(raw.hex(), dialect=mac_unix_expanded))


def announced_mac(frame: bytes) -> str | None:
    """The MAC a RARP announcement (as QEMU sends after a migration) announces, or None."""
    if len(frame) < ETH_HEADER.size + ARP_BODY.size:
        return None
    _, source, ethertype = ETH_HEADER.unpack_from(frame)
    if ethertype != ETH_RARP:
        return None
    htype, ptype, hlen, plen, op, sha, _, tha, _ = ARP_BODY.unpack_from(frame, ETH_HEADER.size)
    if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, RARP_REQUEST_REVERSE) or sha != source:
        return None
    return _mac(source)


def gratuitous_arp(mac: str, ip: str) -> bytes:
    """An ARP request for the guest's own address, from the guest: neighbours learn where it is."""
    hw = EUI(mac).packed
    address = IPAddress(ip).packed
    return (ETH_HEADER.pack(BROADCAST, hw, ETH_ARP)
            + ARP_BODY.pack(1, 0x0800, 6, 4, ARP_REQUEST, hw, address, b"\x00" * 6, address))
