"""How the controller reaches each host: its OVSDB server, its bridge's controller
target (and, over SSL, the name its bridge's certificate must carry), its
libvirtd, and where a VM's files live there.

They come from a host inventory file, the same for a lab (`lab up` writes it:
unix sockets in the lab folder, or SSL on the management network with `--ssl`)
and for real hosts (written by hand):

    hosts:
      hv1:
        ovsdb: ssl:10.0.0.11:6640
        openflow_target: ssl:10.0.0.10:6653
        openflow_certificate_name: hv1
        libvirt: qemu+tls://10.0.0.11/system
        migration_address: 10.0.0.11
        vm_files: /var/lib/sdnvirt/vms

`openflow_certificate_name` is the common name (CN) in the certificate the
host's bridge shows (`ovs-pki req+sign --unique hv1 switch` makes one named
hv1): a bridge that claims the host's datapath id with any other certificate
is refused, so one host's certificate cannot take another host's place. It
goes with an `ssl:` target, and only with one.

A lab adds, for its netns guests (namespaces standing in for VMs), each host's
network namespace (`netns:`) and, at the top, each netns guest's namespace
(`guest_namespaces: {web2: demo-vm-web2}`): the controller wires those guests
itself. Real hosts have no netns guests.

The controller reads it again whenever the topology changes, so hosts added
with `apply` are found once they are in the file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from ruamel.yaml import YAML, YAMLError


class InventoryError(RuntimeError):
    pass


@dataclass(frozen=True)
class HostEndpoints:
    ovsdb: str  # OVSDB remote, e.g. unix:/run/sdnvirt/demo/hosts/hv1/ovs/db.sock or ssl:IP:6640
    openflow_target: str  # what the host's bridge connects to
    libvirt: str  # libvirt URI
    migration_address: str  # where the host's libvirtd and QEMU take a migration
    vm_files: Path  # where a VM's console log and agent socket are on that host
    netns: str | None = None  # a lab host's network namespace, where its netns guests plug in
    openflow_certificate_name: str | None = None  # the CN the bridge's certificate must carry (ssl: targets)

    def console_log(self, vm: str) -> Path:
        return self.vm_files / f"{vm}.console.log"

    def agent_socket(self, vm: str) -> Path:
        return self.vm_files / f"{vm}.agent.sock"


class _Host(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ovsdb: str
    openflow_target: str
    libvirt: str
    migration_address: str
    vm_files: Path
    netns: str | None = None
    openflow_certificate_name: str | None = None

    @model_validator(mode="after")
    def _certificate_with_ssl(self) -> _Host:
        over_ssl = self.openflow_target.startswith("ssl:")
        if over_ssl and not self.openflow_certificate_name:
            raise ValueError("openflow_certificate_name is required with an ssl: openflow_target "
                             "(the common name in the certificate of the host's bridge)")
        if not over_ssl and self.openflow_certificate_name is not None:
            raise ValueError("openflow_certificate_name goes only with an ssl: openflow_target "
                             "(a bridge shows no certificate elsewhere)")
        return self


class _Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hosts: dict[str, _Host]
    guest_namespaces: dict[str, str] = {}


@dataclass(frozen=True)
class Inventory:
    hosts: dict[str, HostEndpoints]
    guest_namespaces: dict[str, str] = field(default_factory=dict)  # netns guest -> its namespace (labs)


def read_inventory(path: Path) -> Inventory:
    try:
        data = YAML(typ="safe").load(path.read_text())
        inventory = _Inventory.model_validate(data)
    except OSError as error:
        raise InventoryError(f"{path}: cannot read the host inventory: {error.strerror}") from None
    except YAMLError as error:
        raise InventoryError(f"{path}: not YAML: {error}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise InventoryError(f"{path}: {problems}") from None
    return Inventory({name: HostEndpoints(**host.model_dump()) for name, host in inventory.hosts.items()},
                     dict(inventory.guest_namespaces))


def write_inventory(path: Path, inventory: Inventory) -> None:
    hosts = {name: _fields(e) for name, e in sorted(inventory.hosts.items())}
    temporary = path.with_suffix(".tmp")
    yaml = YAML()
    yaml.width = 4096  # one line per value, as a person writes it
    with temporary.open("w") as out:
        yaml.dump({"hosts": hosts, "guest_namespaces": dict(sorted(inventory.guest_namespaces.items()))}, out)
    temporary.replace(path)  # the controller may read it at any moment: never half written


def _fields(endpoints: HostEndpoints) -> dict:
    """As a person writes them: paths as text, and no line for what is not given."""
    return {key: value for key, value in {**asdict(endpoints), "vm_files": str(endpoints.vm_files)}.items()
            if value is not None}
