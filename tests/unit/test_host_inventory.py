"""The host inventory file: what the lab writes, the controller reads back; a file a
person got wrong is refused with the field named."""

from dataclasses import replace
from pathlib import Path

import pytest

from sdnvirt.controller.inventory import HostEndpoints, Inventory, InventoryError, read_inventory, write_inventory

HV1 = HostEndpoints(ovsdb="ssl:10.0.0.11:6640", openflow_target="ssl:10.0.0.10:6653",
                    libvirt="qemu+unix:///system?socket=/run/sdnvirt/lab/hosts/hv1/libvirt/sock/libvirt-sock",
                    migration_address="10.0.0.11", vm_files=Path("/var/lib/sdnvirt/vms"))


def test_what_is_written_is_read_back(tmp_path):
    path = tmp_path / "hosts.yaml"
    write_inventory(path, Inventory({"hv1": HV1}))
    assert read_inventory(path) == Inventory({"hv1": HV1})
    assert "qemu+unix:///system?socket=" in path.read_text().splitlines()[4]  # one line, as a person writes it
    lab = Inventory({"hv1": replace(HV1, netns="lab-host-hv1")}, {"web2": "lab-vm-web2"})
    write_inventory(path, lab)
    assert read_inventory(path) == lab


@pytest.mark.parametrize("text, expected", [
    ("hosts:\n  hv1: {ovsdb: x}\n", "hosts.hv1.openflow_target: Field required"),
    ("hosts: {}\nextra: 1\n", "extra: Extra inputs are not permitted"),
    ("hosts: [", "not YAML"),
])
def test_a_wrong_file_is_refused_naming_the_field(tmp_path, text, expected):
    path = tmp_path / "hosts.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=expected):
        read_inventory(path)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(InventoryError, match="cannot read the host inventory"):
        read_inventory(tmp_path / "nope.yaml")
