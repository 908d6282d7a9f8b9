"""Which connection the Fabric takes for a host's bridge: its datapath id names the host,
and the certificate it showed must be the one the host inventory names for that host
(none for a bridge on a unix socket). Everything else is refused and counted, and never
becomes the host's channel."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.listener import SwitchPeer
from sdnvirt.controller.fabric.pipeline import load_pipeline
from sdnvirt.controller.state import MemoryStore
from sdnvirt.model.loader import load_topology_text
from sdnvirt.vswitch.names import datapath_id

TOPOLOGY = load_topology_text("""\
name: t
segments: {rack1: {subnet: 100.64.1.0/24}}
hosts: {hv1: {segment: rack1}, hv2: {segment: rack1}, hv3: {segment: rack1}}
""", "t.yaml")
CERTIFICATES = {"hv1": "hv1", "hv2": "hv2", "hv3": None}  # hv3's bridge dials a unix socket


@pytest.fixture
def fabric():
    fabric = Fabric(MemoryStore(TOPOLOGY), load_pipeline(), lambda host, owners: None, CERTIFICATES.get)
    yield fabric
    fabric.stop()


def connection(dpid: int, certificate: str | None) -> SimpleNamespace:
    return SimpleNamespace(dpid=dpid, peer=SwitchPeer("100.64.1.9:40000", certificate))


@pytest.mark.parametrize("host, certificate", [("hv1", "hv1"), ("hv3", None)])
def test_a_bridge_with_its_hosts_certificate_is_taken(fabric, host, certificate):
    channel = connection(datapath_id("t", host), certificate)
    assert fabric.switch_connected(channel)
    assert fabric.syncs[host].channel is channel
    assert (fabric.unknown_switches, fabric.wrong_certificate_switches) == (0, 0)


@pytest.mark.parametrize("host, certificate", [
    ("hv1", "hv2"),  # another host's certificate
    ("hv1", None),  # no certificate where the inventory names one (a unix socket, plain TCP)
    ("hv3", "hv3"),  # a certificate where the inventory expects the bridge on a unix socket
])
def test_a_bridge_showing_another_certificate_is_refused(fabric, host, certificate):
    assert not fabric.switch_connected(connection(datapath_id("t", host), certificate))
    assert fabric.syncs[host].channel is None
    assert (fabric.unknown_switches, fabric.wrong_certificate_switches) == (0, 1)


def test_a_taken_bridge_keeps_its_channel_when_another_certificate_claims_it(fabric):
    ours = connection(datapath_id("t", "hv1"), "hv1")
    assert fabric.switch_connected(ours)
    assert not fabric.switch_connected(connection(datapath_id("t", "hv1"), "hv2"))
    assert fabric.syncs["hv1"].channel is ours


def test_an_unknown_datapath_is_refused_whatever_its_certificate(fabric):
    assert not fabric.switch_connected(connection(datapath_id("t", "hv9"), "hv1"))
    assert all(sync.channel is None for sync in fabric.syncs.values())
    assert (fabric.unknown_switches, fabric.wrong_certificate_switches) == (1, 0)
