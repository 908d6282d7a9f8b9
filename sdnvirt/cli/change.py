"""`sdnvirt diff FILE` and `sdnvirt apply FILE`: a running lab changed to match an edited file."""

from __future__ import annotations

import json
from pathlib import Path

from sdnvirt.lab.apply import apply, plan
from sdnvirt.lab.lab import Lab
from sdnvirt.model.loader import load_topology


def register(verbs) -> None:
    diff = verbs.add_parser("diff", help="what `apply FILE` would change in the running lab")
    diff.add_argument("file", type=Path, help="the edited topology file (its name names the lab)")
    diff.add_argument("--json", action="store_true", help="print the changes as JSON")
    diff.set_defaults(run=_diff)

    change = verbs.add_parser("apply", help="change the running lab to match an edited topology file")
    change.add_argument("file", type=Path, help="the edited topology file (its name names the lab)")
    change.add_argument("--json", action="store_true", help="print the controller's answer as JSON")
    change.set_defaults(run=_apply)


def _lab_of(file: Path) -> Lab:
    return Lab.open(load_topology(file).name)


def _print(changes: list[dict], as_json: bool, empty: str) -> None:
    if as_json:
        print(json.dumps(changes, indent=2))
    elif not changes:
        print(empty)
    for change in [] if as_json else changes:
        print(change["text"])


def _diff(args) -> int:
    _print(plan(_lab_of(args.file), args.file), args.json, "no changes")
    return 0


def _apply(args) -> int:
    answer = apply(_lab_of(args.file), args.file)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    _print(answer["changes"], False, "no changes: the lab matches the file")
    if answer["changes"]:
        print(f"applied: topology generation {answer['generation']}")
    return 0
