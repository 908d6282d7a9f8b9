"""Errors as values with a location, until the CLI turns them into a message."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with an input, where it is and what was expected."""

    file: str
    line: int  # 1-based; 0 when the problem has no place in the file
    column: int  # 1-based; 0 when unknown
    path: str  # dotted field path, e.g. "vms.web1.nics[0].ip"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class InputError(Exception):
    """Bad input, with every problem found; the CLI exits with status 2."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
