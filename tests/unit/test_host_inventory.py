"""The host inventory file: what the lab writes, the controller reads back; a file a
person got wrong is refused with the field named. A bridge that dials over SSL comes
with the name its certificate must carry; one on a unix socket shows none."""

from dataclasses import replace
from pathlib import Path

import pytest

from sdnvirt.controller.inventory import HostEndpoints, Inventory, InventoryError, read_inventory, write_inventory

HV1 = HostEndpoints(ovsdb="ssl:10.0.0.11:6640", openflow_target="ssl:10.0.0.10:6653",
                    libvirt="qemu+unix:///system?socket=/run/sdnvirt/lab/hosts/hv1/libvirt/sock/libvirt-sock",
                    migration_address="10.0.0.11", vm_files=Path("/var/lib/sdnvirt/vms"),
                    openflow_certificate_name="hv1")
HV2 = HostEndpoints(ovsdb="unix:/run/sdnvirt/lab/hosts/hv2/ovs/db.sock",
                    openflow_target="unix:/run/sdnvirt/lab/hosts/hv2/ovs/controller.sock",
                    libvirt="qemu+unix:///system?socket=/run/sdnvirt/lab/hosts/hv2/libvirt/sock/libvirt-sock",
                    migration_address="10.0.0.12", vm_files=Path("/run/sdnvirt/lab/hosts/hv2/vms"))


def test_what_is_written_is_read_back(tmp_path):
    path = tmp_path / "hosts.yaml"
    write_inventory(path, Inventory({"hv1": HV1, "hv2": HV2}))
    assert read_inventory(path) == Inventory({"hv1": HV1, "hv2": HV2})
    lines = path.read_text().splitlines()
    assert "qemu+unix:///system?socket=" in lines[4]  # one line, as a person writes it
    assert [line.strip() for line in lines if "certificate" in line] == ["openflow_certificate_name: hv1"]
    lab = Inventory({"hv1": replace(HV2, netns="lab-host-hv1")}, {"web2": "lab-vm-web2"})
    write_inventory(path, lab)
    assert read_inventory(path) == lab


@pytest.mark.parametrize("text, expected", [
    ("hosts:\n  hv1: {ovsdb: x}\n", "hosts.hv1.openflow_target: Field required"),
    ("hosts: {}\nextra: 1\n", "extra: Extra inputs are not permitted"),
    ("hosts: [", "not YAML"),
    ("hosts:\n  hv1: {ovsdb: x, openflow_target: 'ssl:10.0.0.10:6653', libvirt: x, migration_address: x, "
     "vm_files: /x}\n", "hosts.hv1: Value error, openflow_certificate_name is required with an ssl: openflow_target"),
    ("hosts:\n  hv1: {ovsdb: x, openflow_target: 'unix:/x', libvirt: x, migration_address: x, vm_files: /x, "
     "openflow_certificate_name: hv1}\n", "openflow_certificate_name goes only with an ssl: openflow_target"),
])
def test_a_wrong_file_is_refused_naming_the_field(tmp_path, text, expected):
    path = tmp_path / "hosts.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=expected):
        read_inventory(path)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(InventoryError, match="cannot read the host inventory"):
        read_inventory(tmp_path / "nope.yaml")
