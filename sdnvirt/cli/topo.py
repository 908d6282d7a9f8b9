"""`sdnvirt topo validate|show|schema`: the topology file, without building anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sdnvirt.model.loader import load_topology
from sdnvirt.model.picture import render
from sdnvirt.model.schema import topology_json_schema


def register(verbs) -> None:
    topo = verbs.add_parser("topo", help="check and draw topology files")
    sub = topo.add_subparsers(dest="topo_verb", required=True, metavar="ACTION")

    validate = sub.add_parser("validate", help="report every problem in a topology file")
    validate.add_argument("file", type=Path)
    validate.set_defaults(run=_validate)

    show = sub.add_parser("show", help="print or draw a topology")
    show.add_argument("file", type=Path)
    show.add_argument("--format", choices=["text", "dot", "svg", "png"], default="text")
    show.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    show.set_defaults(run=_show)

    schema = sub.add_parser("schema", help="print the topology file's JSON schema (for editors)")
    schema.set_defaults(run=_schema)


def _validate(args) -> int:
    topology = load_topology(args.file)
    print(f"{args.file}: ok: {len(topology.segments)} segments, {len(topology.hosts)} hosts, "
          f"{len(topology.networks)} networks, {len(topology.guests)} guests")
    return 0


def _show(args) -> int:
    picture = render(load_topology(args.file), args.format)
    if args.output:
        if isinstance(picture, bytes):
            args.output.write_bytes(picture)
        else:
            args.output.write_text(picture)
    elif isinstance(picture, bytes):
        sys.stdout.buffer.write(picture)
    else:
        sys.stdout.write(picture if picture.endswith("\n") else picture + "\n")
    return 0


def _schema(args) -> int:
    print(json.dumps(topology_json_schema(), indent=2))
    return 0
