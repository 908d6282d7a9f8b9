"""A built wheel, installed outside the repository, gives a working `sdnvirt`.

The wheel is built from a copy of the tree as git sees it (so that no build/ folder of an
earlier build slips in modules the tree no longer has), installed with its dependencies from
the registry into a fresh virtualenv, and run from a folder outside the repository: `topo
validate`, `pipeline`, and a whole lab, whose controller then runs from the wheel too.

It builds a lab, so like every test here it runs under the lab lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdnvirt.lab.lab import Lab
from sdnvirt.lab.record import LabRecord

from helpers.guests import ping
from helpers.leftovers import lab_traces, remove_lab_leftovers

REPOSITORY = Path(__file__).resolve().parents[2]
# What a built sdnvirt must carry beside its code: where the wheel has it <- where it is edited
DATA = {
    "sdnvirt/data/pipeline.yaml": "flows/pipeline.yaml",
    "sdnvirt/data/sdnvirt.ovsschema": "ovs/sdnvirt.ovsschema",
    "sdnvirt/data/demo.yaml": "topologies/demo.yaml",
    "sdnvirt/compute/guest_init/init": "sdnvirt/compute/guest_init/init",
    "sdnvirt/compute/guest_init/agent": "sdnvirt/compute/guest_init/agent",
}
LAB = "wheel"
TOPOLOGY = f"""\
name: {LAB}
segments:
  rack1: {{subnet: 100.64.1.0/24}}
hosts:
  hv1: {{segment: rack1}}
  hv2: {{segment: rack1}}
tenants:
  blue: {{networks: {{web: {{subnet: 10.0.0.0/24}}}}}}
vms:
  a1: {{host: hv1, nics: [{{network: blue/web, ip: 10.0.0.11}}]}}
  a2: {{host: hv2, nics: [{{network: blue/web, ip: 10.0.0.12}}]}}
"""
# Nothing of the repository or of the tests' own virtualenv may reach the installed sdnvirt.
ENVIRONMENT = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def run(argv: list[str | Path], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=ENVIRONMENT, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, argv))}: {done.stderr}"
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("wheel")
    yield folder
    shutil.rmtree(folder)  # a virtualenv is some 200 MB


@pytest.fixture(scope="module")
def wheel(work) -> Path:
    """`pip wheel --no-deps` of a copy of the tree: the files git tracks or would track."""
    source = work / "source"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPOSITORY, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        original, copy = REPOSITORY / name, source / name
        if not original.is_symlink() and not original.exists():
            continue  # deleted in the work tree
        copy.parent.mkdir(parents=True, exist_ok=True)
        if original.is_symlink():  # sdnvirt/data/: links to flows/, ovs/, topologies/
            copy.symlink_to(os.readlink(original))
        else:
            shutil.copy2(original, copy)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", source], cwd=work)
    (built,) = (work / "dist").glob("sdnvirt-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(work, wheel) -> Path:
    """The bin folder of a fresh virtualenv that has the wheel, its dependencies from the registry."""
    venv = work / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=work)
    run([venv / "bin" / "pip", "install", "-q", wheel], cwd=work)
    return venv / "bin"


@pytest.fixture(scope="module")
def outside(work) -> Path:
    """A folder outside the repository with a topology file in it, where the user runs sdnvirt."""
    folder = work / "elsewhere"
    folder.mkdir()
    (folder / f"{LAB}.yaml").write_text(TOPOLOGY)
    return folder


def test_the_wheel_holds_every_module_and_the_data_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(REPOSITORY)) for p in (REPOSITORY / "sdnvirt").rglob("*.py")}
    assert sorted(modules - names) == []
    with zipfile.ZipFile(wheel) as archive:
        for inside, edited in DATA.items():
            assert archive.read(inside) == (REPOSITORY / edited).read_bytes(), inside


def test_topo_validate_and_pipeline_from_the_wheel(installed, outside):
    validated = run([installed / "sdnvirt", "topo", "validate", f"{LAB}.yaml"], cwd=outside)
    assert validated.stdout.strip() == f"{LAB}.yaml: ok: 1 segments, 2 hosts, 1 networks, 2 guests"
    pipeline = run([installed / "sdnvirt", "pipeline"], cwd=outside).stdout
    tables = [line.split()[2] for line in pipeline.splitlines() if line.startswith("table")]
    assert tables[:3] == ["classify", "port_security", "arp_responder"], pipeline


def test_a_lab_from_the_wheel(installed, outside):
    """`lab up` converges, a guest reaches the other, the lab's controller runs the wheel's
    sdnvirt, and `lab down` leaves nothing."""
    remove_lab_leftovers(LAB)  # of an interrupted run
    try:
        run([installed / "sdnvirt", "lab", "up", f"{LAB}.yaml"], cwd=outside, timeout=300)
        status = json.loads(run([installed / "sdnvirt", "lab", "status", LAB, "--json"], cwd=outside).stdout)
        assert status["complete"] and status["controller"]["converged"], status
        lab = Lab.open(LAB)
        assert ping(lab, "a1", "10.0.0.12") == 3
        assert ping(lab, "a2", "10.0.0.11") == 3
        assert controller_sdnvirt(lab).is_relative_to(installed.parent)
        before = lab_traces(LAB)
        run([installed / "sdnvirt", "lab", "down", LAB], cwd=outside, timeout=120)
        assert lab_traces(LAB, set(before.namespaces.values())).nothing
    finally:
        remove_lab_leftovers(LAB)


def controller_sdnvirt(lab: Lab) -> Path:
    """Where the lab's controller process imports sdnvirt from: its own interpreter, asked in
    the controller's own working folder and environment."""
    (controller,) = [p for p in LabRecord.load(lab.paths.record).processes if p.name == "controller"]
    proc = Path(f"/proc/{controller.pid}")
    argv = proc.joinpath("cmdline").read_bytes().decode().split("\0")
    assert argv[1:3] == ["-m", "sdnvirt.controller"], argv
    environ = dict(v.split("=", 1) for v in proc.joinpath("environ").read_bytes().decode().split("\0") if "=" in v)
    asked = subprocess.run([argv[0], "-c", "import sdnvirt.controller; print(sdnvirt.controller.__file__)"],
                           cwd=proc.joinpath("cwd").resolve(), env=environ, capture_output=True, text=True,
                           timeout=60, check=True)
    return Path(asked.stdout.strip())
