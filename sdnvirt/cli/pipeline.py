"""`sdnvirt pipeline` and `sdnvirt flows HOST`: the OpenFlow pipeline and a bridge's flows."""

from __future__ import annotations

import json
import textwrap

from sdnvirt.cli.lab import lab_named
from sdnvirt.controller.fabric.pipeline import load_pipeline


def register(verbs) -> None:
    pipeline = verbs.add_parser("pipeline", help="print the integration bridge's pipeline")
    pipeline.add_argument("--json", action="store_true")
    pipeline.set_defaults(run=_pipeline)

    flows = verbs.add_parser("flows", help="a host's flows, with owners and packet counts")
    flows.add_argument("host")
    flows.add_argument("--lab", help="the lab (default: the only one up)")
    flows.add_argument("--json", action="store_true")
    flows.set_defaults(run=_flows)


def _pipeline(args) -> int:
    tables = load_pipeline().tables
    if args.json:
        print(json.dumps([{"id": t.id, "name": t.name, "purpose": t.purpose, "priorities": t.priorities}
                          for t in tables], indent=2))
        return 0
    for table in tables:
        bands = ", ".join(f"{band}={priority}" for band, priority in table.priorities.items())
        print(f"table {table.id:3d} {table.name}  [{bands}]")
        print(textwrap.indent(textwrap.fill(table.purpose, 74), "    "))
    return 0


def _flows(args) -> int:
    lab = lab_named(args.lab)
    entries = lab.api().flows(args.host)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for e in entries:
        match = ",".join(f"{k}={v}" for k, v in e["match"].items()) or "*"
        print(f"{e['table']:>13} prio={e['priority']:<4} n={e['packets']:<6} {match} "
              f"-> {','.join(e['actions'])}  ({e['owner']})")
    return 0
