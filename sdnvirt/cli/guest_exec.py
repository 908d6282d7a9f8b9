"""`sdnvirt exec GUEST -- CMD...`: run a command inside a guest, return its exit status.

The same command for both kinds of guest: a netns guest is entered directly,
a qemu guest is asked through its agent (so it works with the guest's
network down).
"""

from __future__ import annotations

import subprocess
import sys

from sdnvirt.cli.lab import lab_named
from sdnvirt.lab import naming
from sdnvirt.lab.lab import LabError
from sdnvirt.linux.netns import entering
from sdnvirt.model.topology import GuestKind


def register(verbs) -> None:
    run = verbs.add_parser("exec", help="run a command inside a guest")
    run.add_argument("--lab", help="the lab (default: the only one up)")
    run.add_argument("--timeout", type=float, default=30.0, help="seconds (qemu guests)")
    run.add_argument("guest")
    run.add_argument("command", nargs="+", help="-- CMD [ARG...]")
    run.set_defaults(run=run_in_guest)


def run_in_guest(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("no command given: sdnvirt exec GUEST -- CMD [ARG...]")
    lab = lab_named(args.lab)
    guest = lab.topology.guests.get(args.guest)
    if guest is None:
        raise LabError(f"lab {lab.name} has no guest {args.guest!r} "
                       f"(guests: {', '.join(sorted(lab.topology.guests))})")
    if guest.kind == GuestKind.NETNS:
        return subprocess.run(entering(naming.guest_namespace(lab.name, guest.name)) + command).returncode
    status, output = lab.api().exec(guest.name, command, args.timeout)
    sys.stdout.buffer.write(output)
    sys.stdout.flush()
    return status
