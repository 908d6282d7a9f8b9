"""Running commands inside a `qemu` guest through its agent, without the guest's network.

The guest agent (guest_init/agent) listens on the virtio-serial port
`org.sdnvirt.agent.0`; QEMU joins that port to a unix socket on the host
(libvirt: `<channel type='unix'><source mode='bind' path='SOCKET'/>
<target type='virtio' name='org.sdnvirt.agent.0'/></channel>`). The channel
is a plain byte stream that survives guest reboots and host reconnects, so
it can hold bytes nobody is waiting for any more; the protocol is lines of
ASCII that let each side skip those.

Host to guest, one request at a time::

    \\nREQ <id> <verb> <timeout> <payload>\\n

`id` is fresh lowercase hex for every request. `verb` is `ping` (payload
`-`) or `exec` (payload: the base64 of a command line the agent runs with
`sh -c`, stdin from /dev/null). `timeout` is whole seconds; the agent kills
the command (SIGKILL, so it reports status 137) when it runs longer. The
leading newline ends whatever partial line an earlier, abandoned request
left in the guest, which the agent then ignores.

Guest to host::

    BEGIN <id>\\n
    <the combined stdout and stderr, base64, any number of lines>\\n
    END <id> <exit status>\\n

A ping's output is `pong <agent version>`. The host discards every line
until `BEGIN` with the id it is waiting for, so a stale reply (a request the
host gave up on, or bytes from before a guest reboot) never passes for the
answer. A request the host gave up on may still run in the guest.

Only one client at a time: QEMU serves one connection on the socket.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import shlex
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

PORT_NAME = "org.sdnvirt.agent.0"
REPLY_MARGIN = 5.0  # seconds the host waits beyond a command's own timeout, for the reply to arrive


class AgentError(Exception):
    pass


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    output: bytes  # stdout and stderr, interleaved as written


def encode_request(request_id: str, verb: str, timeout: float, payload: bytes = b"") -> bytes:
    encoded = base64.b64encode(payload).decode() if payload else "-"
    return f"\nREQ {request_id} {verb} {max(1, math.ceil(timeout))} {encoded}\n".encode()


class ReplyDecoder:
    """Picks the reply to one request out of the lines the channel carries."""

    def __init__(self, request_id: str):
        self.request_id = request_id
        self._body: list[bytes] | None = None  # None until our BEGIN

    def feed(self, line: bytes) -> CommandResult | None:
        """The reply once its last line has been fed, else None."""
        words = line.split()
        ours = self.request_id.encode()
        if words[:2] == [b"BEGIN", ours]:
            self._body = []
        elif self._body is None or not words:
            return None  # bytes from before our reply began, or a blank line
        elif words[0] == b"BEGIN":
            self._body = None  # another request's reply began: ours was cut short
        elif words[:2] == [b"END", ours] and len(words) == 3 and words[2].isdigit():
            try:
                output = base64.b64decode(b"".join(self._body), validate=True)
            except binascii.Error as error:
                raise AgentError(f"the guest agent's reply to {self.request_id} is not valid base64") from error
            return CommandResult(int(words[2]), output)
        else:
            self._body.append(line.strip())
        return None


class GuestAgent:
    """The host's end of one guest's agent channel; reconnects after any failure."""

    def __init__(self, socket_path: Path):
        self.socket_path = socket_path
        self._socket: socket.socket | None = None
        self._lines: deque[bytes] = deque()  # received, not yet decoded
        self._partial = b""  # received after the last newline

    def ping(self, timeout: float = 5.0) -> str:
        """The agent's version, once it answers; lets the host wait for a booting guest."""
        result = self._request("ping", b"", timeout, timeout)
        words = result.output.split()
        if len(words) != 2 or words[0] != b"pong":
            raise AgentError(f"the guest agent answered ping with {result.output!r}")
        return words[1].decode()

    def exec(self, command: list[str], timeout: float = 30.0) -> CommandResult:
        """Run a command in the guest; the host waits at most `timeout` plus REPLY_MARGIN."""
        if not command:
            raise ValueError("no command to run")
        return self._request("exec", shlex.join(command).encode(), timeout, timeout + REPLY_MARGIN)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._lines.clear()
        self._partial = b""

    def __enter__(self) -> GuestAgent:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _request(self, verb: str, payload: bytes, timeout: float, wait: float) -> CommandResult:
        deadline = time.monotonic() + wait
        request_id = secrets.token_hex(8)
        decoder = ReplyDecoder(request_id)
        try:
            connection = self._connect(deadline)
            connection.settimeout(max(0.001, deadline - time.monotonic()))
            connection.sendall(encode_request(request_id, verb, timeout, payload))
            while True:
                result = decoder.feed(self._line(connection, deadline))
                if result is not None:
                    return result
        except TimeoutError as error:
            self.close()
            raise AgentError(f"the guest agent at {self.socket_path} did not answer {verb} within {wait:.0f} s") \
                from error
        except OSError as error:
            self.close()
            raise AgentError(f"cannot talk to the guest agent at {self.socket_path}: {error}") from error
        except AgentError:
            self.close()
            raise

    def _connect(self, deadline: float) -> socket.socket:
        if self._socket is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                connection.connect(str(self.socket_path))
            except OSError:
                connection.close()
                raise
            self._socket = connection
        return self._socket

    def _line(self, connection: socket.socket, deadline: float) -> bytes:
        while not self._lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            connection.settimeout(remaining)
            chunk = connection.recv(65536)
            if not chunk:
                raise AgentError(f"the guest agent's socket {self.socket_path} was closed")
            *complete, self._partial = (self._partial + chunk).split(b"\n")
            self._lines.extend(complete)
        return self._lines.popleft()
