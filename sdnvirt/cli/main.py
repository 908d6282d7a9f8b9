"""`sdnvirt`: one command, a few verbs that say what they do.

Errors reach the user as one message each: bad input (files, arguments)
exits with status 2, a failure of the lab or the controller with status 1.
"""

from __future__ import annotations

import argparse
import sys

from sdnvirt.cli import change, demo, events, guest_exec, image, lab, migrate, nb, pipeline, topo, vm
from sdnvirt.client.api import ApiError
from sdnvirt.compute.image import ImageError
from sdnvirt.lab.lab import LabError
from sdnvirt.model.problems import InputError
from sdnvirt.northbound.cluster import ClusterError
from sdnvirt.northbound.database import NorthboundError

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdnvirt", description="Migration-aware SDN controller for KVM/QEMU hosts.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for module in (topo, lab, change, vm, migrate, events, guest_exec, image, pipeline, nb, demo):
        module.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except InputError as error:
        print(error, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (LabError, ApiError, ImageError, ClusterError, NorthboundError) as error:
        print(f"sdnvirt: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
