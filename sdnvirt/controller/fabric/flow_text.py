"""Flows as text, with table names: for flow dumps, the CLI and golden files."""

from __future__ import annotations

from sdnvirt.controller.fabric.flow import Flow
from sdnvirt.controller.fabric.pipeline import Pipeline


def table_name(pipeline: Pipeline, table_id: int) -> str:
    table = pipeline.by_id(table_id)
    return table.name if table else str(table_id)


def match_text(rule: Flow) -> dict[str, str]:
    """Field values as ovs-ofctl prints them: masked integers in hex."""
    return {name: _masked(value) if isinstance(value, tuple) else str(value) for name, value in rule.match}


def _masked(value: tuple) -> str:
    field, mask = value
    return f"{field:#x}/{mask:#x}" if isinstance(field, int) else f"{field}/{mask}"


def instructions_text(rule: Flow, pipeline: Pipeline) -> list[str]:
    """What the flow does, in order; `drop` when it does nothing."""
    steps = [str(a) for a in rule.actions]
    if rule.write_metadata is not None:
        steps.append(f"write_metadata:{rule.write_metadata[0]:#x}/{rule.write_metadata[1]:#x}")
    if rule.goto is not None:
        steps.append(f"goto:{table_name(pipeline, rule.goto)}")
    return steps or ["drop"]


def flow_line(rule: Flow, pipeline: Pipeline, owner: str) -> str:
    match = ",".join(f"{k}={v}" for k, v in match_text(rule).items()) or "*"
    return (f"{table_name(pipeline, rule.table)} priority={rule.priority} {match} "
            f"actions={','.join(instructions_text(rule, pipeline))} ({owner})")
