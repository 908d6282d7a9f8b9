"""A topology file nested deeper than the loader allows is a problem placed in the file
(`sdnvirt topo validate` exits 2), never a RecursionError: YAML's composer recurses once
per level (ruamel's composer, which bounds it; libyaml's own, which the parse does not use,
crashes the process on a file of 100,000 levels), and such a file is a few hundred kilobytes."""

import pytest

from sdnvirt.cli.main import main
from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.problems import InputError, Problem
from sdnvirt.model.source import MAX_NESTING, parse_source

LEVELS = 200_000
MESSAGE = f"nesting deeper than {MAX_NESTING} levels"


@pytest.mark.parametrize("text, line, column", [
    # flow lists: the value of `vms` (column 6) is level 2, so the list one too deep opens MAX_NESTING - 1 further
    ("name: t\nvms: " + "[" * LEVELS + "]" * LEVELS + "\n", 2, 6 + MAX_NESTING - 1),
    ("name: t\nvms: " + "[" * LEVELS + "\n", 2, 6 + MAX_NESTING - 1),  # never closed: found before the end
    # flow mappings: a key is a level below its mapping, so the first key one too deep is the
    # one of the mapping at the last level allowed
    ("name: t\nvms: " + "{a: " * LEVELS + "1" + "}" * LEVELS + "\n", 2, 6 + 4 * (MAX_NESTING - 2) + 1),
    ("- " * LEVELS + "x\n", 1, 1 + 2 * MAX_NESTING),  # block lists inside block lists
    ("".join("  " * i + "a:\n" for i in range(1000)) + "  " * 1000 + "b: 1\n",
     MAX_NESTING, 1 + 2 * (MAX_NESTING - 1)),  # block mappings, one a line: the key of the last allowed
])
def test_a_file_nested_too_deep_is_one_placed_problem(text, line, column):
    with pytest.raises(InputError) as raised:
        load_topology_text(text, "deep.yaml")
    assert raised.value.problems == [Problem("deep.yaml", line, column, "", MESSAGE)]


def test_nesting_up_to_the_limit_is_read():
    levels = MAX_NESTING - 1  # the innermost scalar is a level too
    assert parse_source("[" * levels + "1" + "]" * levels, "t.yaml").data is not None
    with pytest.raises(InputError):
        parse_source("[" * (levels + 1) + "1" + "]" * (levels + 1), "t.yaml")


def test_topo_validate_says_where_and_exits_2(tmp_path, capsys):
    path = tmp_path / "deep.yaml"
    path.write_text("name: t\nvms: " + "[" * LEVELS + "]" * LEVELS + "\n")
    assert main(["topo", "validate", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}:2:{6 + MAX_NESTING - 1}: {MESSAGE}\n"
