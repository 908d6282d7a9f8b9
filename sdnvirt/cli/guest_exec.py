"""`sdnvirt exec GUEST -- CMD...`: run a command inside a guest, of any kind, through the controller.

A qemu guest is asked through its agent (so it works with the guest's network
down); a netns guest is entered by the controller. The command's output is
printed once it has finished, and its exit status is `sdnvirt exec`'s own (137:
killed at --timeout); 255 says that sdnvirt itself failed (no such lab or guest,
the controller or the guest unreachable).
"""

from __future__ import annotations

import sys

from sdnvirt.cli.exits import EXEC_FAILED, UsageError
from sdnvirt.cli.lab import lab_named
from sdnvirt.client.api import ApiError
from sdnvirt.lab.lab import LabError

EPILOG = ("exit status: the command's own (137: killed at --timeout); 255: sdnvirt failed "
          "(no such lab or guest, controller or guest unreachable); 2: bad arguments")


def add_exec_arguments(parser) -> None:
    parser.add_argument("--lab", help="the lab (default: the only one up)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before the command is killed")
    parser.add_argument("guest")
    parser.add_argument("command", nargs="+", help="-- CMD [ARG...]")
    parser.set_defaults(run=run_in_guest)


def register(verbs) -> None:
    add_exec_arguments(verbs.add_parser("exec", help="run a command inside a guest", epilog=EPILOG))


def run_in_guest(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("no command given: sdnvirt exec GUEST -- CMD [ARG...]")
    if not 0 < args.timeout <= 3600:
        raise UsageError(f"--timeout must be more than 0 and at most 3600 seconds, not {args.timeout:g}")
    try:
        status, output = lab_named(args.lab).api().exec(args.guest, command, args.timeout)
    except (LabError, ApiError) as error:
        print(f"sdnvirt: {error}", file=sys.stderr)
        return EXEC_FAILED
    sys.stdout.buffer.write(output)
    sys.stdout.flush()
    return status
