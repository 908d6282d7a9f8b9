"""From a topology file to a resolved Topology, or to every problem in it at once."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from sdnvirt.model.allocation import Allocation, allocate
from sdnvirt.model.checks import check
from sdnvirt.model.problems import InputError, Problem
from sdnvirt.model.schema import Draft, TopologyFile, VmSpec, read_draft
from sdnvirt.model.source import Source, parse_source
from sdnvirt.model.topology import Guest, Host, Network, Nic, Segment, Topology, logical_port_id

# pydantic's error types, said the way a person editing the file thinks of them.
_EXPECTED = {
    "missing": "field required",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
}


def load_topology(path: Path) -> Topology:
    """Read and resolve a topology file; an unreadable file is a problem like any other."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise InputError([Problem(str(path), 0, 0, "", f"cannot read the topology file: {reason}")]) from None
    return load_topology_text(text, str(path), source=path)


def load_topology_text(text: str, filename: str, *, source: Path | None = None) -> Topology:
    """Resolve a topology given as text; raises InputError with all its problems."""
    document = parse_source(text, filename)
    draft = read_draft(document)
    allocation = allocate(draft)
    problems = [*_structure_problems(document), *check(draft), *allocation.problems]
    if problems:
        raise InputError(problems)
    return _topology(draft, allocation, source)


def _topology(draft: Draft, allocation: Allocation, source: Path | None) -> Topology:
    """Join what the file says with what was allocated; only for a draft without problems."""
    return Topology(
        name=draft.name,
        source=source,
        segments={
            name: Segment(name, segment.subnet, allocation.gateways[name])
            for name, segment in draft.segments.valid.items()
        },
        hosts={
            name: Host(name, host.segment, allocation.host_addresses[name]) for name, host in draft.hosts.valid.items()
        },
        networks={
            f"{tenant}/{name}": Network(tenant, name, network.subnet, allocation.vnis[f"{tenant}/{name}"])
            for tenant, networks in draft.tenants.valid.items()
            for name, network in networks.valid.items()
        },
        guests={name: _guest(draft.name, name, vm, allocation) for name, vm in draft.vms.valid.items()},
    )


def _guest(topology: str, name: str, vm: VmSpec, allocation: Allocation) -> Guest:
    nics = tuple(
        Nic(
            index=index,
            network=nic.network,
            ip=allocation.nic_ips[name, index],
            mac=allocation.macs[name, index],
            port_id=logical_port_id(topology, name, index),
        )
        for index, nic in enumerate(vm.nics)
    )
    return Guest(name, vm.host, vm.kind, vm.memory, vm.vcpus, nics, vm.autostart)


def _structure_problems(document: Source) -> list[Problem]:
    """Every place where the file does not fit the schema."""
    try:
        TopologyFile.model_validate(document.data if document.data is not None else {})
    except ValidationError as error:
        return [_problem(document, detail) for detail in error.errors(include_url=False)]
    return []


def _problem(document: Source, detail: ErrorDetails) -> Problem:
    loc = detail["loc"]
    if loc and loc[-1] == "[key]":  # the key of a mapping is itself wrong: a bad name
        return document.problem(loc[:-1], _message(detail), at_key=True)
    return document.problem(loc, _message(detail), at_key=detail["type"] == "extra_forbidden")


def _message(detail: ErrorDetails) -> str:
    kind, context = detail["type"], detail.get("ctx", {})
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind == "extra_forbidden":
        return f"unknown field '{detail['loc'][-1]}'"
    if kind == "value_error":
        return str(context["error"])
    if kind == "string_pattern_mismatch":
        return f"expected a name matching {context['pattern']}"
    if kind == "greater_than_equal":
        return f"expected at least {context['ge']}"
    if kind == "less_than_equal":
        return f"expected at most {context['le']}"
    if kind == "too_short":
        return f"expected at least {context['min_length']} item" + ("" if context["min_length"] == 1 else "s")
    if kind == "enum":
        return f"expected {context['expected']}"
    return detail["msg"]
