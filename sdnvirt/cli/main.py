"""`sdnvirt`: one command, a few verbs that say what they do.

Errors reach the user as one message each, never a traceback: bad input (a
topology file, arguments) exits with status 2, a failure of the lab, the
controller or a host with status 1 (see exits.py; `sdnvirt exec` has its own).
"""

from __future__ import annotations

import argparse
import sys

from sdnvirt.cli import change, demo, events, exits, guest_exec, image, lab, migrate, nb, pipeline, top, topo, vm
from sdnvirt.client.api import ApiError
from sdnvirt.compute.image import ImageError
from sdnvirt.errors import SdnvirtError
from sdnvirt.lab.lab import LabError
from sdnvirt.lab.process import LabProcessError
from sdnvirt.linux.netns import CommandError
from sdnvirt.model.problems import InputError
from sdnvirt.northbound.cluster import ClusterError
from sdnvirt.northbound.database import NorthboundError

OPERATIONAL = (LabError, ApiError, ImageError, ClusterError, NorthboundError, LabProcessError, CommandError,
               SdnvirtError, OSError)
EXIT_STATUSES = "exit status: 0 done; 1 the lab, the controller or a host failed; 2 bad input (file, arguments)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdnvirt", description="Migration-aware SDN controller for KVM/QEMU hosts.",
        epilog=f"{EXIT_STATUSES}; exec: the guest command's own status, 255 when sdnvirt failed")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for module in (topo, lab, change, vm, migrate, events, top, guest_exec, image, pipeline, nb, demo):
        module.register(verbs)
    _document_exits(parser)
    return parser


def _document_exits(parser: argparse.ArgumentParser) -> None:
    """Every command's --help ends with its exit statuses (the usual ones, unless it says its own)."""
    for action in parser._subparsers._group_actions if parser._subparsers else []:  # argparse keeps them there
        for command in action.choices.values():
            command.epilog = command.epilog or EXIT_STATUSES
            _document_exits(command)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or exits.OK
    except InputError as error:
        print(error, file=sys.stderr)
        return exits.BAD_INPUT
    except exits.UsageError as error:
        parser.print_usage(sys.stderr)
        print(f"sdnvirt: {error}", file=sys.stderr)
        return exits.BAD_INPUT
    except OPERATIONAL as error:
        print(f"sdnvirt: {error}", file=sys.stderr)
        return exits.FAILURE
    except KeyboardInterrupt:
        return exits.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
