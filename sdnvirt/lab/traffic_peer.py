"""Run inside a netns guest: its end of a TCP or UDP check (sdnvirt.lab.traffic).

    python -m sdnvirt.lab.traffic_peer udp echo PORT SECONDS
    python -m sdnvirt.lab.traffic_peer udp send HOST PORT COUNT SIZE [WAIT_MS]
    python -m sdnvirt.lab.traffic_peer tcp receive PORT SECONDS
    python -m sdnvirt.lab.traffic_peer tcp send HOST PORT BYTES [BYTES_PER_SECOND]
    python -m sdnvirt.lab.traffic_peer echo PORT SECONDS

`udp` is the twin of the qemu guests' sdnvirt-udp (sdnvirt/compute/guest_init/sdnvirt-udp.c):
the same arguments, datagrams and output, so a netns guest and a VM check each other.
`tcp receive` prints "ready" once listening, takes one connection, reads it to its end and
prints "BYTES SHA256" of what arrived; `tcp send` sends BYTES random bytes (at most
BYTES_PER_SECOND), closes its half and waits for the receiver to close, and prints "BYTES
SHA256" of what it sent. `echo` answers the connectivity matrix: TCP and UDP on PORT, each
sent back as it came, until nothing came for SECONDS. Every wait here is bounded.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import select
import socket
import struct
import sys
import threading
import time

HEADER = 4
GIVE_UP = 5  # datagrams in a row without their echo after which a sender stops
MAX_DATAGRAM = 65507
CHUNK = 65536
CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 30.0  # seconds the sender waits for the receiver to take the last bytes and close


def datagram(number: int, size: int) -> bytes:
    """Datagram `number` of an exchange, byte for byte as sdnvirt-udp makes it."""
    return struct.pack("!I", number) + bytes((number * 131 + i * 7) & 0xFF for i in range(HEADER, size))


def figures(sent: int, echoed: int, corrupt: int, size: int, ms: int) -> str:
    return f"sent={sent} echoed={echoed} corrupt={corrupt} size={size} ms={ms}"


def udp_echo(port: int, seconds: float) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", port))
        print("ready", flush=True)
        echoed = 0
        while select.select([sock], [], [], seconds)[0]:
            data, sender = sock.recvfrom(MAX_DATAGRAM)
            if sock.sendto(data, sender) == len(data):
                echoed += 1
    return f"echoed {echoed}"


def udp_send(host: str, port: int, count: int, size: int, wait_ms: int = 1000) -> str:
    """Each datagram waits for its echo (or `wait_ms`) before the next leaves."""
    began = time.monotonic()
    sent, echoed, corrupt = exchange_datagrams(host, port, count, size, wait_ms)
    return figures(sent, echoed, corrupt, size, round((time.monotonic() - began) * 1000))


def exchange_datagrams(host: str, port: int, count: int, size: int, wait_ms: int) -> tuple[int, int, int]:
    """The datagrams sent (all, unless GIVE_UP in a row went unechoed: a dead path), those
    echoed byte-identical (each once), and the echoes that match none sent."""
    expected = {n: datagram(n, size) for n in range(count)}
    back: set[int] = set()
    corrupt = sent = missed = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for number in range(count):
            if missed == GIVE_UP:
                break
            sent += 1
            try:
                sock.sendto(expected[number], (host, port))
            except OSError:
                pass  # one that cannot leave (no route, no neighbour) is simply not echoed
            deadline = time.monotonic() + wait_ms / 1000
            while number not in back:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    break
                data, sender = sock.recvfrom(MAX_DATAGRAM + 1)
                if sender != (host, port):
                    continue
                echoed_number = struct.unpack("!I", data[:HEADER])[0] if len(data) >= HEADER else -1
                if expected.get(echoed_number) == data:
                    back.add(echoed_number)
                else:
                    corrupt += 1
            missed = 0 if number in back else missed + 1
    return sent, len(back), corrupt


def tcp_echoes(host: str, port: int, payload: bytes, timeout: float) -> bool:
    """Whether an echo service at host:port sends `payload` back byte for byte, within `timeout`."""
    deadline = time.monotonic() + timeout
    echoed = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(payload)
            connection.shutdown(socket.SHUT_WR)
            while len(echoed) <= len(payload):
                connection.settimeout(max(0.001, deadline - time.monotonic()))
                data = connection.recv(CHUNK)
                if not data:
                    break
                echoed += data
    except OSError:
        return False
    return echoed == payload


def tcp_receive(port: int, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    digest, count = hashlib.sha256(), 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(1)
        print("ready", flush=True)
        listener.settimeout(seconds)
        connection, _ = listener.accept()
        with connection:
            while True:
                connection.settimeout(max(0.001, deadline - time.monotonic()))
                data = connection.recv(CHUNK)
                if not data:
                    break
                digest.update(data)
                count += len(data)
    return f"{count} {digest.hexdigest()}"


def tcp_send(host: str, port: int, size: int, rate: float | None = None) -> str:
    """Random bytes, paced to `rate` bytes a second when given; returns what left."""
    digest, count = hashlib.sha256(), 0
    began = time.monotonic()
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as connection:
        while count < size:
            if rate:
                time.sleep(max(0.0, began + count / rate - time.monotonic()))
            chunk = os.urandom(min(CHUNK, size - count))
            connection.sendall(chunk)
            digest.update(chunk)
            count += len(chunk)
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(CLOSE_TIMEOUT)
        while connection.recv(CHUNK):  # the receiver closes once it has read everything
            pass
    return f"{count} {digest.hexdigest()}"


def echo_service(port: int, seconds: float) -> None:
    """TCP and UDP echo on `port` (RFC 862) for the connectivity matrix, until silent for `seconds`."""
    heard = [time.monotonic()]

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(seconds)
            while data := connection.recv(CHUNK):
                connection.sendall(data)

    with (socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
          socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp):
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("0.0.0.0", port))
        tcp.listen(64)
        udp.bind(("0.0.0.0", port))
        print("ready", flush=True)
        while time.monotonic() - heard[0] < seconds:
            for sock in select.select([tcp, udp], [], [], seconds)[0]:
                heard[0] = time.monotonic()
                if sock is udp:
                    data, sender = udp.recvfrom(MAX_DATAGRAM)
                    udp.sendto(data, sender)
                else:
                    threading.Thread(target=answer, args=(tcp.accept()[0],), daemon=True).start()


# What each verb runs, and its arguments in order ("?": may be left out).
VERBS = {
    ("udp", "echo"): (udp_echo, {"port": int, "seconds": float}),
    ("udp", "send"): (udp_send, {"host": str, "port": int, "count": int, "size": int, "wait_ms?": int}),
    ("tcp", "receive"): (tcp_receive, {"port": int, "seconds": float}),
    ("tcp", "send"): (tcp_send, {"host": str, "port": int, "size": int, "rate?": float}),
    ("echo",): (echo_service, {"port": int, "seconds": float}),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sdnvirt.lab.traffic_peer")
    protocols = parser.add_subparsers(dest="protocol", required=True)
    actions = {}  # protocol: its verbs
    for verb, (_, arguments) in VERBS.items():
        if len(verb) == 1:
            command = protocols.add_parser(verb[0])
        else:
            if verb[0] not in actions:
                actions[verb[0]] = protocols.add_parser(verb[0]).add_subparsers(dest="action", required=True)
            command = actions[verb[0]].add_parser(verb[1])
        for name, kind in arguments.items():
            command.add_argument(name.rstrip("?"), type=kind, **({"nargs": "?"} if name.endswith("?") else {}))
    args = vars(parser.parse_args())
    run, arguments = VERBS[tuple(filter(None, (args.pop("protocol"), args.pop("action", None))))]
    if run is udp_send and not HEADER <= args["size"] <= MAX_DATAGRAM:
        parser.error(f"SIZE must be from {HEADER} to {MAX_DATAGRAM}")
    try:
        result = run(**{name: value for name, value in args.items() if value is not None})
    except OSError as error:  # what the network said, without a traceback
        sys.exit(f"{run.__name__}: {error}")
    if result is not None:
        print(result, flush=True)


if __name__ == "__main__":
    main()
