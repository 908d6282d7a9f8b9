"""Counters that several threads update at once (os-ken runs one receive thread per switch)
count every update. The threads give way inside the code under test at every bytecode, so
an update that no lock guards would lose counts here."""

from types import SimpleNamespace

from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.openflow_app import FabricApp
from sdnvirt.controller.state import MemoryStore

from helpers.fabric_views import PIPELINE, TOPOLOGY
from helpers.fake_switch import FakeSwitch
from helpers.interleaving import giving_way_in, run_in_threads

THREADS = 4
EACH = 100


class Datapath:
    """An os-ken datapath that no channel belongs to."""

    id = 0x99


def test_replies_nobody_waits_for_are_all_counted():
    app = FabricApp(fabric=None, on_packet_in=None)
    unknown = SimpleNamespace(msg=SimpleNamespace(datapath=Datapath(), xid=7))  # of no connected switch
    with giving_way_in(FabricApp._reply):
        run_in_threads(THREADS, lambda _: [app._reply(unknown) for _ in range(EACH)])
    assert app.unexpected_replies == THREADS * EACH


def test_switches_of_no_host_are_all_counted_when_they_connect_at_once():
    fabric = Fabric(MemoryStore(TOPOLOGY), PIPELINE, lambda host, owners: None, lambda host: None)
    strangers = [FakeSwitch(dpid) for dpid in range(1, THREADS * EACH + 1)]
    try:
        with giving_way_in(Fabric.switch_connected):
            run_in_threads(THREADS, lambda n: [fabric.switch_connected(s) for s in strangers[n::THREADS]])
    finally:
        fabric.stop()
    assert fabric.unknown_switches == len(strangers)
