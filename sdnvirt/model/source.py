"""The topology file as YAML, with the place of every key and value in it.

Problems found later, in the model or in the semantic checks, name a field
path; this module turns that path back into a line and column, so a person
is sent to the exact spot in the file.

ruamel composes nested lists and mappings recursively: nesting is bounded
(MAX_NESTING), so a deeply nested file is a problem placed in the file, not a
RecursionError. A topology file nests about six levels deep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from sdnvirt.model.problems import InputError, Problem

FieldPath = tuple[str | int, ...]
MAX_NESTING = 32  # levels of values inside values, counting the innermost (scalar) one


def format_path(path: FieldPath) -> str:
    """The path as a person writes it: vms.web1.nics[0].ip."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else str(step)
    return text


@dataclass(frozen=True)
class Source:
    """The parsed document and the name to blame in problems."""

    filename: str
    data: Any  # ruamel round-trip nodes: CommentedMap, CommentedSeq, scalars

    def position(self, path: FieldPath, *, at_key: bool = False) -> tuple[int, int]:
        """1-based line and column of a field, or of its nearest existing parent.

        A scalar value is pointed at itself; a mapping or list at the key that
        opens it, which is where a reader looks for it. `at_key` points at the
        key even for a scalar, for problems with the key itself.
        """
        node = self.data
        line, column = (node.lc.line, node.lc.col) if isinstance(node, CommentedMap | CommentedSeq) else (0, 0)
        for depth, step in enumerate(path):
            place = _place_of(node, step, key=at_key and depth == len(path) - 1)
            if place is None:
                break
            node = node[step]
            line, column = place
        return line + 1, column + 1

    def problem(self, path: FieldPath, message: str, *, at_key: bool = False) -> Problem:
        line, column = self.position(path, at_key=at_key)
        return Problem(self.filename, line, column, format_path(path), message)


def _place_of(node: Any, step: str | int, *, key: bool) -> tuple[int, int] | None:
    """0-based place of one step below node; None when the step is not there."""
    try:
        if isinstance(node, CommentedMap) and step in node:
            if key or isinstance(node[step], CommentedMap | CommentedSeq):
                return node.lc.key(step)
            return node.lc.value(step)
        if isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
            return node.lc.item(step)
    except KeyError:  # keys brought in by a YAML merge (<<) have no place of their own
        return None
    return None


def parse_source(text: str, filename: str) -> Source:
    """Parse YAML; a syntax error, a duplicate key or nesting deeper than MAX_NESTING is an
    InputError, not a traceback."""
    yaml = YAML(typ="rt")
    yaml.max_depth = MAX_NESTING  # checked as each value is composed, before going deeper
    try:
        return Source(filename, yaml.load(text))
    except MaxDepthExceededError as error:
        line, column = error.problem_mark.line + 1, error.problem_mark.column + 1
        raise InputError([Problem(filename, line, column, "", f"nesting deeper than {MAX_NESTING} levels")]) from None
    except MarkedYAMLError as error:
        raise InputError([_syntax_problem(error, filename)]) from None
    except YAMLError as error:
        raise InputError([Problem(filename, 0, 0, "", " ".join(str(error).split()))]) from None


def _syntax_problem(error: MarkedYAMLError, filename: str) -> Problem:
    """Place the problem where the parser stopped, and say what it was reading."""
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    message = error.problem or error.context or "invalid YAML"
    if error.problem and error.context and error.context_mark:
        where = error.context_mark
        message += f" ({error.context} at line {where.line + 1}, column {where.column + 1})"
    return Problem(filename, line, column, "", message)
