"""The exit statuses of `sdnvirt`, and the error a verb raises for arguments that make no sense.

0: done. 1: the lab, the controller or a host could not do it (the message says
why). 2: bad input: a topology file (FILE:LINE:COL: field: problem) or arguments.
`sdnvirt exec` passes the guest command's own status through, and uses 255 for
its own failures (as ssh does). 130: interrupted.
"""

from __future__ import annotations

OK = 0
FAILURE = 1
BAD_INPUT = 2
EXEC_FAILED = 255
INTERRUPTED = 130


class UsageError(Exception):
    """Arguments that make no sense together (exit 2)."""
