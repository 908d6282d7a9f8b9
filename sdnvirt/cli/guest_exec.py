"""`sdnvirt exec GUEST -- CMD...`: run a command inside a guest, return its status."""

from __future__ import annotations

import argparse
import subprocess

from sdnvirt.cli.lab import lab_named
from sdnvirt.lab import naming
from sdnvirt.lab.lab import LabError
from sdnvirt.lab.process import entering


def register(verbs) -> None:
    run = verbs.add_parser("exec", help="run a command inside a guest")
    run.add_argument("--lab", help="the lab (default: the only one up)")
    run.add_argument("guest")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
    run.set_defaults(run=_exec)


def _exec(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("no command given: sdnvirt exec GUEST -- CMD [ARG...]")
    lab = lab_named(args.lab)
    if args.guest not in lab.topology.guests:
        raise LabError(f"lab {lab.name} has no guest {args.guest!r} "
                       f"(guests: {', '.join(sorted(lab.topology.guests))})")
    return subprocess.run(entering(naming.guest_namespace(lab.name, args.guest)) + command).returncode
