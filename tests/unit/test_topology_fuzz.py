"""The topology loader against generated input: whatever the text, it either resolves a
topology or refuses with problems placed in the file; it never raises anything else,
never loops, and never reports a place that is not in the file."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.problems import InputError
from sdnvirt.model.topology import Topology

GOOD = yaml.safe_load((Path(__file__).parent / "topologies" / "two-racks.yaml").read_text())
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["10.0.0.0/24", "10.0.0.1", "qemu", "netns", "hv1",
                                                           "blue/web", "aa:bb:cc:dd:ee:ff", "", "~", "*a"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


def loads_or_refuses(text: str) -> None:
    lines = text.count("\n") + 1
    try:
        assert isinstance(load_topology_text(text, "fuzz.yaml"), Topology)
    except InputError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.file == "fuzz.yaml" and problem.message
            assert 0 <= problem.line <= lines + 1, (problem, text)


@FUZZ
@given(st.text(max_size=400))
def test_any_text_is_loaded_or_refused_with_placed_problems(text):
    loads_or_refuses(text)


def paths(document, prefix=()):
    """Every place in a document: keys of mappings and indexes of lists."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths(value, (*prefix, index))


PLACES = [p for p in paths(GOOD) if p]


def mutate(document, place, action: str, value):
    changed = copy.deepcopy(document)
    *parent_path, last = place
    parent = changed
    for step in parent_path:
        parent = parent[step]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif isinstance(parent[last], dict):  # "add": an extra key where one does not belong
        parent[last]["unexpected"] = value
    else:
        parent[last] = value
    return changed


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PLACES), st.sampled_from(["delete", "replace", "add"]), values),
                min_size=1, max_size=4))
def test_a_good_file_broken_anywhere_is_refused_or_still_good(mutations):
    document = GOOD
    for place, action, value in mutations:
        try:
            document = mutate(document, place, action, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed that place
    loads_or_refuses(yaml.safe_dump(document, allow_unicode=True))


def test_an_alias_bomb_is_refused_without_being_expanded():
    """Nine levels of nine-fold YAML aliases would be 387 million strings if expanded."""
    levels = ["a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    text = "name: bomb\nsegments:\n" + "".join(f"  {line}\n" for line in levels)
    loads_or_refuses(text)
