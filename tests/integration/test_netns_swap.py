"""A moving netns guest's side of the move (netns_swap) on real links: every NIC's staged
link takes its old link's name, MAC and address, the old links go, the guest answers on
the new links, and it tells when they were up on the clock the controller reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from sdnvirt.controller.guests.netns_swap import staged_name
from sdnvirt.linux import netns
from sdnvirt.linux.netns import NetworkNamespace, entering, run_in_namespace

GUEST, PEER = "swaptest-guest", "swaptest-peer"
# index, the guest's MAC and address, the peer's address on that network
NICS = [(0, "02:00:00:5a:00:01", "10.9.0.5", "10.9.0.1"), (1, "02:00:00:5a:00:02", "10.9.1.5", "10.9.1.1")]


@pytest.fixture
def guest():
    """A guest namespace with eth0/eth1 up (its links to the source) and mig0/mig1 staged (to
    the destination), all of them veths to one peer namespace: old{i} and new{i} there."""
    for name in (GUEST, PEER):
        netns.remove(name)  # of an interrupted run
        netns.make(name)
    try:
        with NetworkNamespace(PEER) as peer:
            for index, _, _, peer_address in NICS:
                peer.add_veth(f"old{index}", GUEST, f"eth{index}")
                peer.add_veth(f"new{index}", GUEST, staged_name(index))
                peer.bring_up(f"old{index}")
                peer.bring_up(f"new{index}")
                peer.add_address(f"new{index}", peer_address, 24)
        with NetworkNamespace(GUEST) as ns:
            for index, mac, address, _ in NICS:
                ns.bring_up(f"eth{index}", mac=mac)
                ns.add_address(f"eth{index}", address, 24)
        yield
    finally:
        netns.remove(GUEST)
        netns.remove(PEER)


def links(namespace: str) -> set[str]:
    return {line.split(":")[1].strip().split("@")[0]
            for line in run_in_namespace(namespace, ["ip", "-o", "link", "show"]).stdout.splitlines()}


def test_every_nic_moves_to_its_staged_link(guest):
    before = time.monotonic()
    swap = subprocess.run([*entering(GUEST), sys.executable, "-m", "sdnvirt.controller.guests.netns_swap",
                           *(f"{i},{mac},{address}/24" for i, mac, address, _ in NICS)],
                          input="go\n", capture_output=True, text=True, timeout=30)
    assert swap.returncode == 0, swap.stderr
    lines = swap.stdout.splitlines()
    assert lines[0] == "ready"
    said = json.loads(lines[1])
    assert before < said["down_at"] < said["up_at"] < time.monotonic()
    assert links(GUEST) == {"lo", "eth0", "eth1"}
    assert links(PEER) == {"lo", "new0", "new1"}  # the old links' peers went with them
    for index, mac, address, _ in NICS:
        shown = run_in_namespace(GUEST, ["ip", "-o", "addr", "show", "dev", f"eth{index}"]).stdout
        assert f"inet {address}/24" in shown
        with NetworkNamespace(GUEST) as ns:
            assert ns.mac(f"eth{index}") == mac
        # answered over the link that was staged: the peer's address is only on new{index}
        assert run_in_namespace(PEER, ["ping", "-c", "1", "-W", "2", "-I", f"new{index}", address]).returncode == 0


def test_the_guest_keeps_its_neighbours_on_the_links_that_took_their_place(guest):
    """A VM keeps its ARP cache when it moves; a netns guest's new links start empty, so its
    first answers after the move would wait for an ARP round trip unless the swap carries the
    cache over."""
    known = {index: (peer_address, f"02:00:00:5a:ff:0{index}") for index, _, _, peer_address in NICS}
    for index, (peer_address, mac) in known.items():
        run_in_namespace(GUEST, ["ip", "neigh", "replace", peer_address, "lladdr", mac, "dev", f"eth{index}",
                                 "nud", "reachable"])
    swap = subprocess.run([*entering(GUEST), sys.executable, "-m", "sdnvirt.controller.guests.netns_swap",
                           *(f"{i},{mac},{address}/24" for i, mac, address, _ in NICS)],
                          input="go\n", capture_output=True, text=True, timeout=30)
    assert swap.returncode == 0, swap.stderr
    for index, (peer_address, mac) in known.items():
        shown = json.loads(run_in_namespace(GUEST, ["ip", "-json", "neigh", "show", "dev", f"eth{index}"]).stdout)
        assert [(n["dst"], n["lladdr"]) for n in shown if "lladdr" in n] == [(peer_address, mac)], shown
