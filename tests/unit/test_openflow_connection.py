"""Bridge connections as the controller's listener serves them, on a unix socket of the
test's own: a connection is over (its thread ended) as soon as the switch hangs up, and a
peer that never says which datapath it is, is dropped at the handshake deadline. (os-ken's
own serving, on its native threads, waited for something to send before it ended: for
ever, for a switch the controller had refused.)"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from os_ken.ofproto import ofproto_v1_4 as ofp

from sdnvirt.controller.fabric import listener
from sdnvirt.controller.fabric.listener import OpenFlowListener

DEADLINE = 0.5  # seconds: the handshake timeout here
ENDED_WITHIN = 2.0  # seconds: nothing here waits for a timeout of its own


def serving() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "openflow-switch" and t.is_alive()]


def wait_for(condition, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


@pytest.fixture
def switch_socket(tmp_path, monkeypatch):
    monkeypatch.setattr(listener, "HANDSHAKE_TIMEOUT", DEADLINE)
    server = OpenFlowListener(tmp_path / "openflow.sock")
    server.start()
    yield server.where
    server.stop()
    wait_for(lambda: not serving(), ENDED_WITHIN)


def connect(path) -> socket.socket:
    """A peer, past the controller's HELLO (the controller speaks first)."""
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    peer.settimeout(ENDED_WITHIN + DEADLINE)
    peer.connect(str(path))
    assert peer.recv(ofp.OFP_HEADER_SIZE)[1] == ofp.OFPT_HELLO
    return peer


def test_a_connection_is_over_as_soon_as_the_switch_hangs_up(switch_socket):
    with connect(switch_socket):
        assert len(serving()) == 1
    wait_for(lambda: not serving(), ENDED_WITHIN)


def test_a_peer_that_never_says_which_datapath_it_is_is_dropped_at_the_deadline(switch_socket):
    began = time.monotonic()
    with connect(switch_socket) as peer:
        assert peer.recv(1) == b""  # nothing more, then closed
        assert DEADLINE <= time.monotonic() - began < ENDED_WITHIN
    wait_for(lambda: not serving(), ENDED_WITHIN)


def test_the_socket_is_its_owners_alone(switch_socket):
    assert switch_socket.stat().st_mode & 0o777 == 0o600


def test_two_threads_writing_to_a_switch_never_interleave_their_messages():
    """os-ken's sender and a switch-over's commit (`send_now`) write to one connection: each
    message goes whole, whichever thread writes it and however the socket splits a write."""
    ours, theirs = socket.socketpair()
    ours.settimeout(ENDED_WITHIN)
    theirs.settimeout(ENDED_WITHIN)
    connection = listener._WholeWrites(ours)
    size, count = 48 * 1024, 60  # each larger than the socket's buffer: every write is split

    def write(fill: int) -> None:
        for _ in range(count):
            connection.sendall(bytes([fill]) * size)

    writers = [threading.Thread(target=write, args=(fill,)) for fill in (1, 2)]
    for writer in writers:
        writer.start()
    received = bytearray()
    while len(received) < 2 * count * size:
        received += theirs.recv(1 << 16)
    for writer in writers:
        writer.join(ENDED_WITHIN)
    messages = [received[i:i + size] for i in range(0, len(received), size)]
    assert all(m == bytes([m[0]]) * size for m in messages)
    assert sorted(m[0] for m in messages) == [1] * count + [2] * count
    ours.close()
    theirs.close()


def openflow_message(msg_type: int, xid: int, body: bytes) -> bytes:
    return struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, msg_type, ofp.OFP_HEADER_SIZE + len(body), xid) + body


def test_every_message_reaches_the_raw_taker_whole_however_the_connection_splits_it():
    """The receive loop frames messages itself: many in one read, one over several reads,
    each offered whole and in order; what the taker refuses goes on to os-ken's parser."""
    ours, theirs = socket.socketpair()
    theirs.settimeout(ENDED_WITHIN)
    datapath = listener._Datapath(listener._UnixStream(ours), listener.SwitchPeer("test"))
    taken, refused = [], []

    def taker(msg_type: int, xid: int, message: bytearray) -> bool:
        (taken if xid % 2 else refused).append((msg_type, xid, bytes(message)))
        return bool(xid % 2)

    datapath.raw_taker = taker
    parsed = []
    datapath._dispatch = lambda version, msg_type, length, xid, message: parsed.append(xid)
    messages = [openflow_message(ofp.OFPT_MULTIPART_REPLY, xid, bytes([xid]) * (xid * 3000)) for xid in range(1, 21)]
    stream = b"".join(messages)
    receiving = threading.Thread(target=datapath._receive)
    receiving.start()
    for offset in range(0, len(stream), 4099):  # writes that cut headers and bodies alike
        theirs.sendall(stream[offset:offset + 4099])
    theirs.shutdown(socket.SHUT_WR)
    receiving.join(ENDED_WITHIN)
    assert not receiving.is_alive()
    assert [m for _, _, m in taken] == messages[0::2]
    assert [xid for _, xid, _ in refused] == parsed == list(range(2, 21, 2))
    ours.close()
    theirs.close()


@pytest.mark.parametrize("garbage", [
    bytes([0x63, ofp.OFPT_HELLO, 0, 8, 0, 0, 0, 1]),  # a version nobody speaks
    bytes([ofp.OFP_VERSION, ofp.OFPT_ECHO_REQUEST, 0, 0, 0, 0, 0, 1]) * 3,  # lengths shorter than a header
    bytes([ofp.OFP_VERSION, 0xEE, 0, 12, 0, 0, 0, 1, 1, 2, 3, 4]),  # a type OpenFlow 1.4 has not
], ids=["version", "length", "type"])
def test_a_peer_sending_garbage_costs_its_own_connection_at_most(switch_socket, garbage):
    with connect(switch_socket) as peer:
        peer.sendall(garbage)
        with connect(switch_socket):  # the listener serves the next one as ever
            pass
    wait_for(lambda: not serving(), ENDED_WITHIN)
