"""`sdnvirt events`: follow the controller's event stream (VM lifecycle, bindings,
switch-overs, migrations, topology changes)."""

from __future__ import annotations

import argparse
import itertools
import json
import time

from sdnvirt.cli.lab import lab_named
from sdnvirt.controller.events import KINDS


def register(verbs) -> None:
    events = verbs.add_parser("events", help="follow the controller's events as they happen")
    events.add_argument("--kind", action="append", choices=KINDS, help="only these kinds (repeatable)")
    events.add_argument("--count", type=_count, metavar="N", help="stop after N events")
    events.add_argument("--after", type=int, metavar="ID", help="first the kept events after this id")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--lab", help="the lab (default: the only one up)")
    events.set_defaults(run=_follow)


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a number of events, 1 or more, not {text!r}")
    return count


def _follow(args) -> int:
    stream = lab_named(args.lab).api().events(args.kind, args.after)
    for event in itertools.islice(stream, args.count):
        if args.json:
            print(json.dumps(event), flush=True)
            continue
        data = dict(event["data"])
        at = time.strftime("%H:%M:%S", time.localtime(data.pop("at")))
        print(f"{at} {event['kind']:<11} " + " ".join(f"{k}={v}" for k, v in data.items()), flush=True)
    return 0
