"""A built wheel holds all of sdnvirt, checked against setup.cfg itself (the wheel is built and
run for real in tests/integration/test_wheel.py).

setup.cfg keeps `packages = find:`, which takes only folders with an __init__.py; rather than
`find_namespace:`, which would take any folder (sdnvirt/data and the guest scripts' folder too)
and turn a forgotten __init__.py into a namespace package that imports only by accident. So
every folder holding Python code must be a regular package: that is checked here.
"""

from __future__ import annotations

import configparser
import fnmatch
from pathlib import Path

from setuptools import find_packages

import sdnvirt
from sdnvirt import resources
from sdnvirt.compute import image

PACKAGE = Path(sdnvirt.__file__).parent
REPOSITORY = PACKAGE.parent
SETUP = configparser.ConfigParser()
SETUP.read(REPOSITORY / "setup.cfg")


def packaged() -> dict[str, Path]:
    """The packages the build takes, by setup.cfg's own rule, and their folders."""
    include = SETUP["options.packages.find"]["include"].split()
    return {name: REPOSITORY.joinpath(*name.split(".")) for name in find_packages(REPOSITORY, include=include)}


def test_every_folder_holding_python_code_is_a_package_the_build_takes():
    with_code = {path.parent for path in PACKAGE.rglob("*.py")}
    assert sorted(map(str, with_code - set(packaged().values()))) == []


def test_every_data_file_sdnvirt_reads_is_package_data():
    package_data = {name: patterns.split() for name, patterns in SETUP["options.package_data"].items()}
    folders = {folder: name for name, folder in packaged().items()}
    for data in (resources.PIPELINE, resources.NORTHBOUND_SCHEMA, resources.DEMO_TOPOLOGY,
                 image.INIT_SCRIPT, image.AGENT_SCRIPT):
        assert data.resolve().is_file(), data
        package = next(folder for folder in data.parents if folder in folders)
        relative = str(data.relative_to(package))
        assert any(fnmatch.fnmatch(relative, p) for p in package_data.get(folders[package], [])), data
