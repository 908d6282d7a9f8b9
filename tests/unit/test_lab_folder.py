"""`lab down` of a lab folder that `lab up` left before its first record (no lab, no root), and
`lab up` over a lab left behind: running, or dead with its run."""

from __future__ import annotations

import os

import pytest

from sdnvirt.lab.lab import Lab, LabError, take_down
from sdnvirt.lab.paths import LabPaths
from sdnvirt.lab.process import ProcessRecord, start_time
from sdnvirt.lab.record import LabRecord
from sdnvirt.model.loader import load_topology_text


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


def left_behind(processes: list[ProcessRecord]) -> Lab:
    topology = load_topology_text("name: old\nsegments: {rack1: {subnet: 100.64.1.0/24}}\n"
                                  "hosts: {hv1: {segment: rack1}}\n", "old.yaml")
    paths = LabPaths.of("old")
    paths.root.mkdir()
    LabRecord("old", paths.record, processes=processes).save()
    return Lab(topology, paths)


def test_a_lab_whose_processes_run_is_up(labs):
    me = ProcessRecord("controller", os.getpid(), start_time(os.getpid()))
    with pytest.raises(LabError, match="lab old is already up; `sdnvirt lab down old` removes it"):
        left_behind([me]).up(labs / "old.yaml")


def test_a_lab_whose_processes_all_ended_was_left_behind(labs):
    gone = ProcessRecord("controller", 2**22 + 1, 1)  # above pid_max: no such process
    with pytest.raises(LabError, match="left behind by a run that ended without `lab down`"):
        left_behind([gone]).up(labs / "old.yaml")
