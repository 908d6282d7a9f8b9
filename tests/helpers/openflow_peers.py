"""Peers of the controller's OpenFlow listener that are not real bridges, run inside a lab
namespace by the tests.

    python openflow_peers.py switch IP PORT CA CERT KEY DPID
        Connect over SSL with the certificate CERT (key KEY), checking the controller's
        against CA, and go through OpenFlow 1.4's handshake as datapath DPID: HELLO, a
        FEATURES_REPLY, an empty port description, echo replies. Print JSON: what the
        controller asked for besides HELLO and echoes ("asked"), and how it ended ("end"):
        "closed" (by the controller), "accepted" (it asked for more than the handshake:
        it took this for a bridge of its own), "silent" or "refused" (no SSL).
    python openflow_peers.py silent IP PORT COUNT SECONDS
        Open COUNT TCP connections that say nothing, print "ready", then print JSON: for
        each, the seconds from its connect until the controller closed it (null: still open
        after SECONDS).
"""

import json
import select
import socket
import ssl
import struct
import sys
import time

from os_ken.ofproto import ofproto_v1_4 as ofp

TIMEOUT = 15.0  # seconds the fake switch waits for the controller's next word
NAMES = {value: name for name, value in vars(ofp).items() if name.startswith("OFPT_")}
MULTIPART_NAMES = {value: name for name, value in vars(ofp).items() if name.startswith("OFPMP_")}


def send(stream, kind: int, xid: int, body: bytes = b"") -> None:
    stream.sendall(struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, kind, ofp.OFP_HEADER_SIZE + len(body), xid)
                   + body)


def receive(stream) -> tuple[int, int, bytes] | None:
    """The next message (type, xid, body); None once the controller has closed."""
    head = read(stream, ofp.OFP_HEADER_SIZE)
    if head is None:
        return None
    _, kind, length, xid = struct.unpack(ofp.OFP_HEADER_PACK_STR, head)
    body = read(stream, length - ofp.OFP_HEADER_SIZE)
    return None if body is None else (kind, xid, body)


def read(stream, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = stream.recv(size - len(data))
        except (ssl.SSLEOFError, ConnectionResetError):
            return None
        if not chunk:
            return None
        data += chunk
    return data


def switch(ip: str, port: str, ca: str, cert: str, key: str, dpid: str) -> dict:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(ca)
    context.load_cert_chain(cert, key)
    asked: list[str] = []
    try:
        with socket.create_connection((ip, int(port)), timeout=TIMEOUT) as raw, context.wrap_socket(raw) as stream:
            send(stream, ofp.OFPT_HELLO, 0)
            while True:
                message = receive(stream)
                if message is None:
                    return {"asked": asked, "end": "closed"}
                kind, xid, body = message
                if kind == ofp.OFPT_ECHO_REQUEST:
                    send(stream, ofp.OFPT_ECHO_REPLY, xid, body)
                elif kind == ofp.OFPT_FEATURES_REQUEST:
                    asked.append(NAMES[kind])
                    send(stream, ofp.OFPT_FEATURES_REPLY, xid,
                         struct.pack(ofp.OFP_SWITCH_FEATURES_PACK_STR, int(dpid), 0, 254, 0, 0, 0))
                elif kind == ofp.OFPT_MULTIPART_REQUEST and body[:2] == struct.pack("!H", ofp.OFPMP_PORT_DESC):
                    asked.append(MULTIPART_NAMES[ofp.OFPMP_PORT_DESC])
                    send(stream, ofp.OFPT_MULTIPART_REPLY, xid,
                         struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, ofp.OFPMP_PORT_DESC, 0))
                elif kind != ofp.OFPT_HELLO:
                    if kind == ofp.OFPT_MULTIPART_REQUEST:
                        asked.append(MULTIPART_NAMES.get(struct.unpack("!H", body[:2])[0], "OFPMP_?"))
                    else:
                        asked.append(NAMES.get(kind, str(kind)))
                    return {"asked": asked, "end": "accepted"}
    except TimeoutError:
        return {"asked": asked, "end": "silent"}
    except (ssl.SSLError, OSError) as error:
        return {"asked": asked, "end": "refused", "error": str(error)}


def silent(ip: str, port: str, count: str, seconds: str) -> list[float | None]:
    connections = []
    for _ in range(int(count)):
        connections.append((socket.create_connection((ip, int(port)), timeout=5), time.monotonic()))
    print("ready", flush=True)
    closed: list[float | None] = [None] * len(connections)
    deadline = time.monotonic() + float(seconds)
    while None in closed and time.monotonic() < deadline:
        waiting = {c.fileno(): i for i, (c, _) in enumerate(connections) if closed[i] is None}
        readable, _, _ = select.select(list(waiting), [], [], max(deadline - time.monotonic(), 0))
        now = time.monotonic()
        for fileno in readable:
            index = waiting[fileno]
            connection, opened = connections[index]
            try:
                said = connection.recv(1)
            except ConnectionResetError:
                said = b""
            closed[index] = now - opened if not said else -1.0  # -1: the controller spoke first
    for connection, _ in connections:
        connection.close()
    return closed


def main() -> None:
    verb, args = sys.argv[1], sys.argv[2:]
    print(json.dumps(switch(*args) if verb == "switch" else silent(*args)), flush=True)


if __name__ == "__main__":
    main()
