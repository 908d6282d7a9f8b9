"""The pipeline of every integration bridge, loaded from flows/pipeline.yaml.

Table numbers and priority bands live in that one file; code asks for them by
name, so reordering or renumbering the pipeline is an edit of data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ruamel.yaml import YAML

from sdnvirt.resources import PIPELINE


@dataclass(frozen=True)
class PipelineTable:
    name: str
    id: int
    purpose: str
    priorities: dict[str, int]

    def priority(self, band: str) -> int:
        try:
            return self.priorities[band]
        except KeyError:
            raise KeyError(f"table {self.name} has no priority band {band!r}") from None


@dataclass(frozen=True)
class Pipeline:
    tables: tuple[PipelineTable, ...]

    def table(self, name: str) -> PipelineTable:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"no pipeline table {name!r}")

    def by_id(self, table_id: int) -> PipelineTable | None:
        return next((t for t in self.tables if t.id == table_id), None)


def parse_pipeline(text: str) -> Pipeline:
    data = YAML(typ="safe").load(text)
    tables = tuple(
        PipelineTable(name=t["name"], id=int(t["id"]), purpose=" ".join(t["purpose"].split()),
                      priorities={k: int(v) for k, v in t["priorities"].items()})
        for t in data["tables"]
    )
    ids = [t.id for t in tables]
    if ids != sorted(set(ids)):
        raise ValueError("pipeline table ids must be unique and ascending (goto only moves forward)")
    if len({t.name for t in tables}) != len(tables):
        raise ValueError("pipeline table names must be unique")
    return Pipeline(tables)


@cache
def load_pipeline(path: Path = PIPELINE) -> Pipeline:
    return parse_pipeline(path.read_text())
