"""The topology file as YAML, with the place of every key and value in it.

Problems found later, in the model or in the semantic checks, name a field
path; this module turns that path back into a line and column, so a person
is sent to the exact spot in the file.

libyaml parses (ruamel.yaml.clib, four times faster than ruamel's own parser:
a file of 100,000 guests takes seconds, not a minute); ruamel composes,
resolves as YAML 1.2 and constructs. What libyaml, a YAML 1.1 parser, refuses
is read by ruamel's own parser, as YAML 1.2 allows more (a MAC address
unquoted in a flow mapping, `{mac: 02:00:00:00:00:01}`), and what that one
refuses is the problem reported. The places are not kept: they would cost
more than the data. A problem that needs one composes the file again, with
its places, through the parser that read it.

The composer recurses once per level of nesting; it is ruamel's, which bounds
nesting (MAX_NESTING) as each value is composed (libyaml's own composer has no
bound and overflows the C stack), so a deeply nested file is a problem placed
in the file, not a RecursionError or a crash. A topology file nests about six
levels deep."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, MaxDepthExceededError
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.cyaml import CParser
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.parser import ParserError
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scanner import ScannerError

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
    """A topology file's text and the name to blame in its problems; its data is parsed when
    first asked for, the place of each value only when a problem needs one."""

    filename: str
    text: str

    @property
    def data(self) -> Any:
        """Plain mappings, lists and scalars."""
        return self._parsed[0]

    @cached_property
    def _parsed(self) -> tuple[Any, type[_Reader]]:
        """The data, and the parser that could read it."""
        with _problems(self.filename):
            _check_characters(self.text, self.filename)
            try:
                return _Libyaml(self.text).data(), _Libyaml
            except (ScannerError, ParserError):  # what YAML 1.1 refuses: YAML 1.2 may take it
                return _Ruamel(self.text).data(), _Ruamel

    @cached_property
    def _nodes(self) -> Node | None:
        with _problems(self.filename):
            return self._parsed[1](self.text).nodes()

    def position(self, path: FieldPath, *, at_key: bool = False) -> tuple[int, int]:
        """1-based line and column of a field, or of its nearest existing parent.

        A scalar value is pointed at itself; a mapping or list, or a value left
        empty, at the key that opens it, which is where a reader looks for it.
        `at_key` points at the key even for a scalar, for problems with the key
        itself.
        """
        node = self._nodes
        if node is None:
            return 1, 1
        place = node.start_mark
        for depth, step in enumerate(path):
            found = _below(node, step)
            if found is None:
                break
            key, node = found
            place = (node if key is None or _written(node) and not (at_key and depth == len(path) - 1)
                     else key).start_mark
        return place.line + 1, place.column + 1

    def problem(self, path: FieldPath, message: str, *, at_key: bool = False) -> Problem:
        line, column = self.position(path, at_key=at_key)
        return Problem(self.filename, line, column, format_path(path), message)


def _written(node: Node) -> bool:
    """A scalar with text of its own."""
    return isinstance(node, ScalarNode) and node.value != ""


def _below(node: Node, step: str | int) -> tuple[Node | None, Node] | None:
    """The key (of a mapping's entry) and value one step below node; None when the step is not
    there (keys brought in by a YAML merge (<<) are not: they have no place of their own)."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(step):
                return key, value
    if isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value):
        return None, node.value[step]
    return None


def parse_source(text: str, filename: str) -> Source:
    """Parse YAML; a syntax error, a duplicate key or nesting deeper than MAX_NESTING is an
    InputError, not a traceback."""
    source = Source(filename, text)
    source.data  # noqa: B018 (parsed now: a problem in the YAML is raised here)
    return source


class _Reader(Protocol):
    def __init__(self, text: str) -> None: ...
    def data(self) -> Any: ...
    def nodes(self) -> Node | None: ...


class _Libyaml:
    """libyaml's parser with ruamel's composer (which bounds nesting), YAML 1.2 resolver and
    constructor: what ruamel's YAML(typ="safe") makes of libyaml, but for the composer, which
    there is libyaml's own."""

    allow_duplicate_keys = False
    max_depth = MAX_NESTING

    def __init__(self, text: str):
        self._parser = CParser(text)
        self._resolver = _Resolver(loadumper=self)
        self._composer = Composer(loader=self)
        self._constructor = _Constructor(loader=self)

    def data(self) -> Any:
        return self._constructor.get_single_data()

    def nodes(self) -> Node | None:
        return self._composer.get_single_node()


class _Resolver(VersionedResolver):
    """YAML 1.2's, said once: ruamel's asks the scanner for the document's version at every
    scalar (there is none with libyaml: an AttributeError each time, a tenth of the parse)."""

    processing_version = (1, 2)


class _Ruamel:
    """ruamel's own YAML 1.2 parser, with the same composer and constructor."""

    def __init__(self, text: str):
        self._text = text
        self._yaml = YAML(typ="safe", pure=True)
        self._yaml.Constructor = _Constructor
        self._yaml.max_depth = MAX_NESTING

    def data(self) -> Any:
        return self._yaml.load(self._text)

    def nodes(self) -> Node | None:
        return self._yaml.compose(self._text)


class _Constructor(SafeConstructor):
    """ruamel's safe constructor, where a scalar that does not fit its explicit tag (`!!int x`)
    and a mapping used as a key are placed problems instead of Python's ValueError and TypeError."""

    def construct_non_recursive_object(self, node: Node, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, TypeError) as error:
            raise ConstructorError(None, None, f"{node.tag} {node.value!r} cannot be read: {error}",
                                   node.start_mark) from None

    def check_mapping_key(self, node: Node, key_node: Node, mapping: Any, key: Any, value: Any) -> bool:
        try:
            return super().check_mapping_key(node, key_node, mapping, key, value)
        except TypeError:
            raise ConstructorError("while constructing a mapping", node.start_mark, "found unhashable key",
                                   key_node.start_mark) from None


# What YAML does not print (its c-printable set, less what cannot be encoded), and the line
# separators YAML 1.1 (libyaml) reads as line breaks but YAML 1.2 and editors do not: a file
# holding one is refused, placed, rather than read with its lines counted two ways.
_UNACCEPTABLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _check_characters(text: str, filename: str) -> None:
    if unacceptable := _UNACCEPTABLE.search(text):
        at = unacceptable.start()
        line, column = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        raise InputError([Problem(filename, line, column, "",
                                  f"unacceptable character U+{ord(unacceptable.group()):04X}: "
                                  "control characters, surrogates and line separators are not allowed")])


@contextmanager
def _problems(filename: str) -> Iterator[None]:
    """What the YAML itself gets wrong, as a placed problem."""
    try:
        yield
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
