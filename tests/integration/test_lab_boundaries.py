"""Who may reach a lab.

Only root opens the lab's unix sockets: the API's is 0600 (uvicorn would make
it 0666) and the lab folder 0700, and each alone keeps other users out.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

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
