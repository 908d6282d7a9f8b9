"""Who may reach a lab, and how much a request may make its controller read.

Only root opens the lab's unix sockets: the API's is 0600 (uvicorn would make
it 0666) and the lab folder 0700, and each alone keeps other users out. The
API refuses a body over its limit with 413 before reading more of it than the
limit, whether the client announced its length or sends it in chunks, and a
topology nested too deep with 422 and its place in the file.
"""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sdnvirt.controller.api.body_limit import MAX_BODY
from sdnvirt.model.source import MAX_NESTING

from helpers.access import NOBODY, connect_as, lab_sockets
from helpers.labs import build_lab

# GET /status on the API's unix socket: prints the response's status line, or the error
# that kept the request from being made.
GET_STATUS = """
import socket, sys
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
    try:
        client.connect(sys.argv[1])
    except OSError as error:
        sys.exit(print(type(error).__name__))
    client.sendall(b"GET /status HTTP/1.1\\r\\nHost: sdnvirt\\r\\nConnection: close\\r\\n\\r\\n")
    print(client.recv(64).split(b"\\r\\n")[0].decode())
"""
CHUNK = 64 << 10  # bytes
ANSWER_TIMEOUT = 10  # seconds for the controller to answer a request it must refuse at once


@pytest.fixture(scope="module")
def lab():
    yield from build_lab(Path(__file__).parent / "topologies" / "small.yaml")


def get_status(lab, user: list[str]) -> str:
    result = subprocess.run([*user, sys.executable, "-c", GET_STATUS, str(lab.paths.api_socket)],
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip()


def test_the_api_answers_root_and_no_one_else(lab):
    assert stat.S_IMODE(lab.paths.api_socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(lab.paths.root.stat().st_mode) == 0o700
    assert get_status(lab, []) == "HTTP/1.1 200 OK"
    assert get_status(lab, NOBODY) == "PermissionError"
    lab.paths.root.chmod(0o755)  # the socket's own mode keeps others out as well
    try:
        assert get_status(lab, NOBODY) == "PermissionError"
        assert get_status(lab, []) == "HTTP/1.1 200 OK"
    finally:
        lab.paths.root.chmod(0o700)


def test_no_socket_of_the_lab_opens_to_another_user(lab):
    sockets = lab_sockets(lab)
    names = {p.name for p in sockets}
    assert {"api.sock", "openflow.sock", "nb.sock", "db.sock", "br-int.mgmt"} <= names, names
    assert set(connect_as(NOBODY, sockets).values()) == {"EACCES"}
    controller_made = [lab.paths.api_socket, lab.paths.openflow_socket]
    assert {stat.S_IMODE(p.stat().st_mode) for p in controller_made} == {0o600}


def exchange(lab, head: str, parts: list[bytes]) -> tuple[int, dict]:
    """Send a request's head, then as much of `parts` as the controller takes; the status and
    JSON body of its answer, read until it closes the connection (which it must, within
    ANSWER_TIMEOUT: the read raises otherwise)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(ANSWER_TIMEOUT)
        client.connect(str(lab.paths.api_socket))
        client.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        try:
            for part in parts:
                client.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it stopped reading: what it answered is still there to read
        answer = b""
        while chunk := client.recv(CHUNK):
            answer += chunk
    head_text, _, body = answer.partition(b"\r\n\r\n")
    return int(head_text.split()[1]), json.loads(body)


def test_a_body_announced_over_the_limit_is_refused_before_it_is_sent(lab):
    head = f"POST /topology HTTP/1.1\nHost: sdnvirt\nContent-Type: application/json\nContent-Length: {1 << 30}\n"
    status, body = exchange(lab, head, [])  # not one byte of the gigabyte follows
    assert (status, body) == (413, {"detail": {"field": "body", "message": f"the request body is over {MAX_BODY} "
                                                                           "bytes"}})


def test_a_chunked_body_is_refused_at_the_first_chunk_over_the_limit(lab):
    head = "POST /topology HTTP/1.1\nHost: sdnvirt\nContent-Type: application/json\nTransfer-Encoding: chunked\n"
    chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
    # Just over the limit, and never the last (empty) chunk: a server that waited for
    # the whole body would not answer at all.
    status, body = exchange(lab, head, [chunk] * (MAX_BODY // CHUNK + 1))
    assert (status, body["detail"]["field"]) == (413, "body")


def test_a_body_under_the_limit_reaches_its_route(lab):
    source = "#" * ((1 << 20) + 1)  # one byte over the topology route's own limit, well under the body's
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(lab.paths.api_socket)), base_url="http://sdnvirt",
                      timeout=30) as client:
        response = client.post("/topology", json={"source": source, "dry_run": True})
    assert len(response.request.content) < MAX_BODY
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == "body.source"


def test_a_topology_nested_too_deep_is_refused_with_its_place(lab):
    levels = 10_000
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(lab.paths.api_socket)), base_url="http://sdnvirt",
                      timeout=60) as client:
        response = client.post("/topology", json={"source": "name: itest2\nvms: " + "[" * levels + "]" * levels,
                                                  "filename": "deep.yaml", "dry_run": True})
    assert response.status_code == 422
    assert response.json()["detail"]["problems"] == [
        {"file": "deep.yaml", "line": 2, "column": 6 + MAX_NESTING - 1, "path": "",
         "message": f"nesting deeper than {MAX_NESTING} levels"}]
    assert lab.api().status()["converged"]
