"""`lab down` of a lab folder that `lab up` left before its first record (no lab, no root)."""

from __future__ import annotations

import pytest

from sdnvirt.lab.lab import LabError, take_down
from sdnvirt.lab.paths import LabPaths


@pytest.fixture
def labs(tmp_path, monkeypatch):
    monkeypatch.setenv("SDNVIRT_LAB_ROOT", str(tmp_path / "labs"))
    (tmp_path / "labs").mkdir()
    return tmp_path / "labs"


@pytest.mark.parametrize("made", [[], ["topology.yaml"], ["topology.yaml", "lab.tmp"]])
def test_a_folder_without_a_record_is_removed(labs, made):
    paths = LabPaths.of("half")
    paths.root.mkdir()
    for name in made:
        (paths.root / name).write_text("")
    take_down(paths)
    assert list(labs.iterdir()) == []


def test_a_folder_with_other_files_is_left_alone(labs):
    paths = LabPaths.of("notalab")
    paths.root.mkdir()
    (paths.root / "notes.txt").write_text("mine")
    with pytest.raises(LabError, match="holds no lab record but other files"):
        take_down(paths)
    assert (paths.root / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["..", "../labs", "nosuchlab", "", "."])
def test_only_a_lab_folder_is_taken_down(labs, name):
    (labs.parent / "precious").write_text("kept")
    with pytest.raises(LabError, match="no lab named"):
        take_down(LabPaths.of(name))
    assert (labs.parent / "precious").read_text() == "kept"
