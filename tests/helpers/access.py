"""What a user other than root can reach of a lab: its unix sockets, tried as `nobody`."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from sdnvirt.lab.lab import Lab

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# Connects to each unix socket named; prints, by path, "connected" or the errno's name.
CONNECT = """
import errno, json, socket, sys
results = {}
for path in sys.argv[1:]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(path)
            results[path] = "connected"
        except OSError as error:
            results[path] = errno.errorcode.get(error.errno, str(error))
print(json.dumps(results))
"""


def lab_sockets(lab: Lab) -> list[Path]:
    """Every unix socket in the lab's folder (symbolic links not followed)."""
    return sorted(p for p in lab.paths.root.rglob("*") if not p.is_symlink() and stat.S_ISSOCK(p.lstat().st_mode))


def connect_as(user: list[str], sockets: list[Path]) -> dict[str, str]:
    """What connecting to each socket gives `user` (a command prefix: NOBODY, or [] for root)."""
    result = subprocess.run([*user, sys.executable, "-c", CONNECT, *map(str, sockets)], capture_output=True,
                            text=True, timeout=30, check=True)
    return json.loads(result.stdout)
