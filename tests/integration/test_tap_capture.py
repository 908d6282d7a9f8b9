"""The capture a migration's flight recorder runs on a guest's port, on a real link: each frame
with the kernel's time and its way (into the guest or out of it), the first or last ones kept
within the bound, and what it saw kept when its interface goes away (a source's tap does)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sdnvirt.linux import netns
from sdnvirt.linux.netns import NetworkNamespace, entering, run_in_namespace

HOST, GUEST = "captest-host", "captest-guest"
HOST_IP, GUEST_IP = "10.9.2.1", "10.9.2.5"


@pytest.fixture
def port():
    """A 'guest' namespace linked to a 'host' namespace by a veth: `port` on the host's side (where
    a guest's tap would be), eth0 on the guest's."""
    for name in (HOST, GUEST):
        netns.remove(name)  # of an interrupted run
        netns.make(name)
    try:
        with NetworkNamespace(HOST) as host:
            host.add_veth("port", GUEST, "eth0")
            host.bring_up("port")
            host.add_address("port", HOST_IP, 24)
        with NetworkNamespace(GUEST) as guest:
            guest.bring_up("eth0")
            guest.add_address("eth0", GUEST_IP, 24)
        yield "port"
    finally:
        netns.remove(GUEST)
        netns.remove(HOST)


@contextmanager
def capturing(interface: str, *options: str) -> Iterator[list]:
    """A capture on the host's side while the block runs; the list gets what it said at the end."""
    process = subprocess.Popen([*entering(HOST), sys.executable, "-m", "sdnvirt.compute.tap_capture", interface,
                                *options], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    said: list = []
    try:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()
        yield said
    finally:
        out, err = process.communicate("stop\n", timeout=10)
    assert process.returncode == 0, err
    said.append(json.loads(out))


def ping(count: int) -> None:
    result = run_in_namespace(HOST, ["ping", "-c", str(count), "-i", "0.01", "-W", "2", GUEST_IP])
    assert result.returncode == 0, result.stdout


def test_each_frame_has_its_time_its_way_and_its_kind(port):
    before = time.time()
    with capturing(port, "--keep", "first") as said:
        ping(3)
    [seen] = said
    assert seen["error"] is None and seen["seen"] == len(seen["frames"])
    kinds = [(way, kind) for _, way, _, kind in seen["frames"]]
    # the host asks the guest's MAC, then three requests go in and three replies come out
    assert kinds.count(("to-guest", "icmp-request")) == 3 and kinds.count(("from-guest", "icmp-reply")) == 3
    assert ("to-guest", "arp") in kinds and ("from-guest", "arp") in kinds
    stamps = [frame[0] for frame in seen["frames"]]
    assert stamps == sorted(stamps) and before < stamps[0] and stamps[-1] < time.time()
    requests = [f for f in seen["frames"] if f[3] == "icmp-request"]
    replies = [f for f in seen["frames"] if f[3] == "icmp-reply"]
    assert all(request[0] < reply[0] for request, reply in zip(requests, replies, strict=True))
    assert all(length >= 98 for _, _, length, kind in seen["frames"] if kind.startswith("icmp"))


def test_the_first_or_the_last_frames_are_kept_within_the_bound(port):
    with capturing(port, "--keep", "first", "--frames", "3") as first, capturing(port, "--keep", "last",
                                                                                  "--frames", "3") as last:
        ping(5)
    [first], [last] = first, last
    assert first["seen"] == last["seen"] >= 10  # 5 requests, 5 replies, and the ARP
    assert len(first["frames"]) == len(last["frames"]) == 3
    assert first["frames"][-1][0] < last["frames"][0][0]
    assert [kind for *_, kind in last["frames"]][-2:] == ["icmp-request", "icmp-reply"]


def test_an_interface_that_goes_away_ends_the_capture_with_what_it_saw(port):
    with capturing(port, "--keep", "last") as said:
        ping(2)
        with NetworkNamespace(HOST) as host:
            host.delete_link(port)  # as a source's tap goes when its QEMU exits
        time.sleep(0.2)
    [seen] = said
    assert seen["error"] is not None and port in seen["error"]
    assert [kind for *_, kind in seen["frames"]].count("icmp-reply") == 2


def test_a_missing_interface_is_said_at_once():
    result = subprocess.run([sys.executable, "-m", "sdnvirt.compute.tap_capture", "no-such-port", "--keep", "first"],
                            input="", capture_output=True, text=True, timeout=10)
    assert result.returncode == 0 and json.loads(result.stdout) == {
        "frames": [], "seen": 0, "error": "no-such-port: No such device"}


# In the host's namespace: a capture on `port` whose start the machine stalls between making its
# socket and binding it, while another link of the host carries frames all that time.
STALLED_START = """
import json, os, socket, sys, threading, time
from sdnvirt.compute import tap_capture

sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
sender.bind(("other", 0))
made = socket.socket

def stalled(*args, **kwargs):
    sock = made(*args, **kwargs)
    for _ in range(30):  # 0.3 s, a frame every 10 ms on the other link
        sender.send(bytes.fromhex("ffffffffffff020000000001080045") + bytes(45))
        time.sleep(0.01)
    return sock

socket.socket = stalled
told, tell = os.pipe()
threading.Timer(0.5, os.write, (tell, b"stop\\n")).start()  # told to stop once it has read a while
print(json.dumps(tap_capture.capture(sys.argv[1], "first", 100, 5.0, os.fdopen(told))))
"""


def test_a_capture_takes_no_frame_of_another_link_for_its_own(port):
    """As a fresh-check run saw: a capture whose socket heard every link of the namespace until
    it was bound had a probe's request to another guest first among 'its' guest's frames."""
    with NetworkNamespace(HOST) as host:
        host.add_veth("other", HOST, "otherpeer")
        host.bring_up("other")
        host.bring_up("otherpeer")
    said = run_in_namespace(HOST, [sys.executable, "-c", STALLED_START, port]).stdout
    seen = json.loads(said.splitlines()[-1])
    assert seen["error"] is None and seen["frames"] == [], seen
