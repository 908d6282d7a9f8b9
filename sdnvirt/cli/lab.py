"""`sdnvirt lab up|down|status`: a topology built on this machine."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from sdnvirt.lab.lab import Lab, LabError, running_labs, take_down
from sdnvirt.lab.paths import LabPaths
from sdnvirt.model.loader import load_topology


def register(verbs) -> None:
    lab = verbs.add_parser("lab", help="build, inspect and remove a lab on this machine")
    sub = lab.add_subparsers(dest="lab_verb", required=True, metavar="ACTION")

    up = sub.add_parser("up", help="build the topology here: hosts, OVS, controller, guests")
    up.add_argument("file", type=Path)
    up.add_argument("--ssl", action="store_true",
                    help="as on real hosts: OVSDB and OpenFlow over SSL (ovs-pki certificates) on the management "
                         "network, and the API there on HTTPS with a token")
    up.set_defaults(run=_up)

    down = sub.add_parser("down", help="remove a lab and everything it made")
    down.add_argument("name", nargs="?", help="the lab (default: the only one up)")
    down.set_defaults(run=_down)

    status = sub.add_parser("status", help="what a lab runs and whether the fabric is in sync")
    status.add_argument("name", nargs="?", help="the lab (default: the only one up)")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(run=_status)


def lab_named(name: str | None) -> Lab:
    """The named lab, or the only one that is up."""
    if name is None:
        labs = running_labs()
        if len(labs) != 1:
            raise LabError("no lab is up" if not labs else f"several labs are up ({', '.join(labs)}): name one")
        name = labs[0]
    return Lab.open(name)


def _up(args) -> int:
    interrupted = _interrupted_by(signal.SIGINT, signal.SIGTERM)
    topology = load_topology(args.file)
    lab = Lab(topology, LabPaths.of(topology.name))
    build(lab, args.file, args.ssl, interrupted)
    print(f"lab {lab.name} is up: {len(topology.hosts)} hosts, {len(topology.guests)} guests "
          f"(folder {lab.paths.root}{', over SSL' if args.ssl else ''})")
    return 0


def build(lab: Lab, source: Path, ssl: bool, interrupted: threading.Event) -> None:
    """`lab up`, all or nothing, whatever the interruption. Python ignores an exception raised
    where it cannot be passed on (a weakref callback, a __del__): an interruption raised there
    is lost and the build goes on to its end. It is taken down then, as if it had been stopped."""
    lab.up(source, ssl=ssl)
    if interrupted.is_set():
        lab.down()
        raise KeyboardInterrupt


def _interrupted_by(*signals: signal.Signals) -> threading.Event:
    """Ctrl-C, and SIGTERM (from `timeout`, a CI runner), stop `lab up` through its cleanup; the
    event says it happened, should the KeyboardInterrupt be lost (see build). A process forked
    from it (pyroute2 forks helpers, and stops them with SIGTERM; a terminal's Ctrl-C reaches
    them too) just ends, as it would have without this handler."""
    builder = os.getpid()
    interrupted = threading.Event()

    def interrupt(number: int, _frame) -> None:
        if os.getpid() != builder:
            os._exit(128 + number)
        interrupted.set()
        raise KeyboardInterrupt

    for number in signals:
        signal.signal(number, interrupt)
    return interrupted


def _down(args) -> int:
    name = args.name or lab_named(None).name  # a named lab may be half made: no record, no topology
    take_down(LabPaths.of(name))
    print(f"lab {name} removed")
    return 0


def _status(args) -> int:
    lab = lab_named(args.name)
    status = lab.status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"lab {status['name']} ({status['folder']}){'' if status['complete'] else ' [incomplete]'}")
    controller = status["controller"]
    if "error" in controller:
        print(f"  controller: unreachable: {controller['error']}")
    else:
        state = "converged" if controller["converged"] else "converging"
        print(f"  controller: {state}, up {controller['uptime_s']}s")
        writes = controller["northbound_writes"]
        if writes["waiting"] or writes["dropped"] or writes["error"]:
            print(f"  northbound: {writes['waiting']} writes WAITING, {writes['dropped']} DROPPED "
                  f"({writes['error'] or 'on their way'})")
        for host, h in controller["hosts"].items():
            links = ("ovsdb " + ("up" if h["ovsdb_connected"] else "DOWN")
                     + ", openflow " + ("up" if h["openflow_connected"] else "DOWN"))
            sync = h["sync_state"].replace("_", " ")
            if h["sync_error"]:
                sync = f"{sync.upper()} ({h['sync_error']})"
            print(f"  host {host}: {links}, {h['bindings']} ports bound, {sync}, {h['flow_mods_sent']} flow-mods sent")
    for name, process in status["processes"].items():
        print(f"  process {name}: pid {process['pid']} {'running' if process['running'] else 'NOT RUNNING'}")
    for name, guest in status["guests"].items():
        nics = ", ".join(f"{n['network']} {n['ip']}" for n in guest["nics"])
        print(f"  guest {name} on {guest['host']} ({guest['kind']}): {nics}")
    return 0
