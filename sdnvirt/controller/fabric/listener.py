"""Bridges' OpenFlow connections: accepted here, then handed to os-ken.

os-ken's own server is not used, for three reasons. On a unix socket its
Datapath trips on setting TCP_NODELAY, which only TCP sockets have. Its SSL
handshake has no deadline, so a peer that connects and says nothing holds a
thread for ever. And it does not say who the peer is: here the name in the
switch's certificate goes along with the connection (as os-ken's
`Datapath.address`), and the Fabric checks it against the host inventory.

A connection that has not got through its SSL handshake and told which
datapath it is (OpenFlow's HELLO, FEATURES_REPLY and port description) within
HANDSHAKE_TIMEOUT of being accepted is dropped. One address may have at most
PENDING_PER_PEER SSL handshakes under way at once: a peer that opens many
connections and says nothing holds a few threads for a few seconds, and
never keeps another peer out. A connection is over, its thread ended and the
apps told, as soon as either side hangs up (see _Datapath).

Messages are read off the connection here too, not by os-ken's receive loop:
os-ken parses every message into objects before anyone sees it, about 40 us
an entry of a flow dump (16 ms for a bridge of 425 flows), on every reconnect.
A datapath's `raw_taker` is offered each message's bytes first; what it takes
os-ken never parses (openflow.py reads a flow dump's entries, each once).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from os_ken.base import app_manager  # noqa: F401  (first: os-ken's controller module needs it loaded)
from os_ken.controller import ofp_event
from os_ken.controller.controller import Datapath
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, HANDSHAKE_DISPATCHER
from os_ken.ofproto import ofproto_parser

from sdnvirt.linux.unix_sockets import owner_only_socket

LOG = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # seconds from accept until the switch has said which datapath it is
PENDING_PER_PEER = 8  # SSL handshakes one address may have under way at once
BACKLOG = 128
ACCEPT_RETRY = 0.5  # seconds before accepting again after accept failed (out of file descriptors, say)
RECEIVE_SIZE = 1 << 16  # bytes asked of the connection at a time
_HEADER = struct.Struct("!BBHI")  # OpenFlow's header: version, type, length, xid

# Offered a message's type, xid and bytes before os-ken parses it: True if it took the message.
# It runs in the receive thread: it must not block, and must not raise.
RawTaker = Callable[[int, int, bytearray], bool]


@dataclass(frozen=True)
class SwitchPeer:
    """The other end of a bridge's connection, as far as the controller knows it."""

    address: str  # IP:PORT, or the unix socket's path
    certificate_name: str | None = None  # the common name in the certificate it showed (SSL only)

    def __str__(self) -> str:
        if self.certificate_name is None:
            return self.address
        return f"{self.address} (certificate {self.certificate_name!r})"


def switch_tls(private_key: Path, certificate: Path, ca_cert: Path) -> ssl.SSLContext:
    """What the controller shows switches, and the authority that must have signed theirs."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(certificate, private_key)
    context.load_verify_locations(ca_cert)
    return context


class _UnixStream:
    """A unix socket that accepts (and ignores) TCP-level socket options."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if level != socket.IPPROTO_TCP:
            self._sock.setsockopt(level, option, value)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class _WholeWrites:
    """A switch's connection written one whole message at a time, by os-ken's sender thread or
    by a caller that must not wait behind it (`_Datapath.send_now`)."""

    def __init__(self, stream):
        self._stream = stream
        self._writing = threading.Lock()

    def sendall(self, data: bytes) -> None:
        with self._writing:
            self._stream.sendall(data)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class OpenFlowListener:
    """Bridges' connections on a unix socket (`where` a path, mode 0600) or on TCP (`where`
    an (IP, PORT)), over SSL when given `tls`; each connection on a thread of its own."""

    def __init__(self, where: Path | tuple[str, int], tls: ssl.SSLContext | None = None):
        self.where = where
        self._tls = tls
        self._server: socket.socket | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._handshaking: Counter[str] = Counter()  # SSL handshakes under way, by peer IP

    def __str__(self) -> str:
        if isinstance(self.where, Path):
            return f"unix:{self.where}"
        host, port = self.where
        return f"{'ssl' if self._tls else 'tcp'}:{host}:{port}"

    def start(self) -> None:
        if isinstance(self.where, Path):
            self._server = owner_only_socket(self.where)
            self._server.listen(BACKLOG)
        else:
            family = socket.AF_INET6 if ":" in self.where[0] else socket.AF_INET
            self._server = socket.create_server(self.where, family=family, backlog=BACKLOG)
        threading.Thread(target=self._accept_loop, name="openflow-listener", daemon=True).start()
        LOG.info("taking bridges on %s", self)

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, address = self._server.accept()
            except OSError as error:
                if self._closing.is_set():
                    return
                LOG.warning("%s: accepting a connection failed: %s", self, error)
                self._closing.wait(ACCEPT_RETRY)
                continue
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT
            if isinstance(self.where, Path):
                work, args = _serve, (_UnixStream(conn), SwitchPeer(str(self.where)), deadline)
            elif self._tls is None:
                work, args = _serve, (conn, SwitchPeer(_text(address)), deadline)
            else:
                work, args = self._secure, (conn, address, deadline)
            try:
                threading.Thread(target=work, args=args, name="openflow-switch", daemon=True).start()
            except RuntimeError as error:  # no thread to be had: this connection is lost, not the listener
                LOG.error("%s: cannot serve %s: %s", self, _text(address) if address else self.where, error)
                conn.close()

    def _secure(self, conn: socket.socket, address: tuple, deadline: float) -> None:
        """The SSL handshake, over by the deadline whatever the peer does, then OpenFlow."""
        ip = address[0]
        with self._lock:
            admitted = self._handshaking[ip] < PENDING_PER_PEER
            if admitted:
                self._handshaking[ip] += 1
        if not admitted:
            LOG.debug("%s: refusing %s: %d SSL handshakes of it under way", self, _text(address), PENDING_PER_PEER)
            conn.close()
            return
        try:
            # The whole handshake, not each read of it, is bounded by the socket's timeout.
            conn.settimeout(max(deadline - time.monotonic(), 0.001))
            stream = self._tls.wrap_socket(conn, server_side=True)
        except OSError as error:  # SSLError and TimeoutError are OSErrors
            LOG.warning("%s: no SSL handshake with %s: %s", self, _text(address), str(error) or type(error).__name__)
            conn.close()
            return
        finally:
            with self._lock:
                self._handshaking[ip] -= 1
                if not self._handshaking[ip]:
                    del self._handshaking[ip]
        _serve(stream, SwitchPeer(_text(address), _common_name(stream.getpeercert())), deadline)

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept loop
            self._server.close()
        if isinstance(self.where, Path):
            self.where.unlink(missing_ok=True)


class _Datapath(Datapath):
    """os-ken's Datapath, over as soon as its connection is. On os-ken's native threads,
    `serve` ends only once its sender thread does, and the sender waits for something to
    send: on a switch that went away the apps would hear of it at the next message sent
    to it, and on one the controller refused (nothing is ever sent to it) never."""

    raw_taker: RawTaker | None = None

    def _recv_loop(self) -> None:
        try:
            self._receive()
        finally:
            with contextlib.suppress(OSError):
                self.socket.close()
            self.close()  # the apps hear that the switch is gone, now
            self.send(b"", close_socket=True)  # and the sender wakes, and ends

    def _receive(self) -> None:
        """Whole messages off the connection until either side ends it, each offered to the
        raw taker, else parsed by os-ken and handed to its handlers."""
        buf = bytearray()
        while self.state != DEAD_DISPATCHER:
            try:
                data = self.socket.recv(RECEIVE_SIZE)
            except TimeoutError:
                continue  # the socket's timeout only bounds each wait; the switch's echoes bound its silence
            except OSError:  # SSL's errors too
                return
            if not data:
                return
            buf += data
            offset = 0
            while len(buf) - offset >= _HEADER.size:
                version, msg_type, length, xid = _HEADER.unpack_from(buf, offset)
                length = max(length, _HEADER.size)  # a length shorter than the header: skip the header
                if len(buf) - offset < length:
                    break
                message = buf[offset:offset + length]
                offset += length
                taker = self.raw_taker
                if taker is None or not taker(msg_type, xid, message):
                    self._dispatch(version, msg_type, length, xid, message)
            del buf[:offset]

    def _dispatch(self, version: int, msg_type: int, length: int, xid: int, message: bytearray) -> None:
        """os-ken's parse of one message, and its handlers for it in this state."""
        msg = ofproto_parser.msg(self, version, msg_type, length, xid, message)
        if not msg or self.ofp_brick is None:
            return
        ev = ofp_event.ofp_msg_to_ev(msg)
        self.ofp_brick.send_event_to_observers(ev, self.state)
        for handler in self.ofp_brick.get_handlers(ev):
            if self.state in handler.callers[ev.__class__].dispatchers:
                handler(ev)

    def send_now(self, buf: bytes) -> bool:
        """Write from the caller's thread, not queued for os-ken's sender, which may take
        milliseconds to be scheduled: for a message that cannot wait (a switch-over's commit).
        It may overtake what is queued: the caller must depend on nothing still queued. False
        if the connection is gone (or the write timed out)."""
        if self.state == DEAD_DISPATCHER:
            return False
        try:
            self.socket.sendall(buf)
        except OSError:
            return False
        return True


def _serve(stream, peer: SwitchPeer, deadline: float) -> None:
    """os-ken's datapath_connection_factory, with a deadline for the switch to say which
    datapath it is."""
    try:
        with contextlib.closing(_Datapath(_WholeWrites(stream), peer)) as datapath:
            timer = threading.Timer(max(deadline - time.monotonic(), 0.0), _drop_if_unnamed, args=(datapath,))
            timer.daemon = True
            timer.start()
            try:
                datapath.serve()
            finally:
                timer.cancel()
    except Exception:  # a switch that broke the protocol: its connection ends, nothing else
        LOG.exception("bridge connection from %s failed", peer)
        with contextlib.suppress(OSError):
            stream.close()


def hang_up(datapath: Datapath) -> None:
    """End a switch's connection from the controller's side, now."""
    datapath.close()  # os-ken's own ending: nothing more is sent
    with contextlib.suppress(OSError):
        datapath.socket.shutdown(socket.SHUT_RD)  # and its receive loop ends now, not at its next timeout


def _drop_if_unnamed(datapath: Datapath) -> None:
    if datapath.state in (HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER):
        LOG.warning("%s: no OpenFlow handshake within %.0fs: dropped", datapath.address, HANDSHAKE_TIMEOUT)
        hang_up(datapath)


def _common_name(certificate: dict) -> str | None:
    """The subject's common name; None unless there is exactly one."""
    names = [value for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"]
    return names[0] if len(names) == 1 else None


def _text(address: tuple) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
