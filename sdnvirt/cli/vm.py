"""`sdnvirt vm ...`: the guests of a running lab, and the life of its qemu guests."""

from __future__ import annotations

import json

from sdnvirt.cli.guest_exec import EPILOG, add_exec_arguments
from sdnvirt.cli.lab import lab_named

ACTIONS = {
    "start": "start a qemu guest (restores it if it was saved)",
    "shutdown": "power the guest off from inside, and wait for it",
    "destroy": "stop the guest at once (power cut)",
    "reboot": "reboot the guest",
    "suspend": "pause the guest's CPUs",
    "resume": "let a paused guest run again",
    "save": "suspend the guest to disk",
    "restore": "bring a saved guest back",
}


def register(verbs) -> None:
    vm = verbs.add_parser("vm", help="guests: list, lifecycle, console, exec")
    sub = vm.add_subparsers(dest="vm_verb", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="every guest: host, state and since when, addresses")
    listing.add_argument("--lab", help="the lab (default: the only one up)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_list)

    for action, summary in ACTIONS.items():
        parser = sub.add_parser(action, help=summary)
        parser.add_argument("name")
        parser.add_argument("--lab", help="the lab (default: the only one up)")
        parser.set_defaults(run=_act, action=action)

    console = sub.add_parser("console", help="the last lines of a qemu guest's serial console")
    console.add_argument("name")
    console.add_argument("--lines", type=int, default=100)
    console.add_argument("--lab", help="the lab (default: the only one up)")
    console.set_defaults(run=_console)

    add_exec_arguments(sub.add_parser("exec", help="run a command in a guest (same as `sdnvirt exec`)",
                                      epilog=EPILOG))


def _since(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _list(args) -> int:
    vms = lab_named(args.lab).api().vms()
    if args.json:
        print(json.dumps(vms, indent=2))
        return 0
    print(f"{'NAME':<15} {'KIND':<6} {'HOST':<15} {'STATE':<13} {'SINCE':>6}  ADDRESSES")
    for vm in vms:
        addresses = ", ".join(f"{n['ip']} ({n['network']})" for n in vm["nics"])
        print(f"{vm['name']:<15} {vm['kind']:<6} {vm['host'] or '-':<15} {vm['state']:<13} "
              f"{_since(vm['since_s']):>6}  {addresses}")
    return 0


def _act(args) -> int:
    vm = lab_named(args.lab).api().vm_action(args.name, args.action)
    print(f"vm {vm['name']}: {vm['state']} on {vm['host'] or 'no host'}")
    return 0


def _console(args) -> int:
    print(lab_named(args.lab).api().console(args.name, args.lines))
    return 0
