"""OVN on a running lab's hosts, beside sdnvirt: the migration benchmark's second baseline.

Debian's OVN 23.03 as its manuals describe it: NB and SB ovsdb-servers and
ovn-northd in a namespace of their own, one ovn-controller per host against
that host's Open vSwitch, Geneve between the hosts' underlay addresses. Its
integration bridge is br-ovn, so sdnvirt's br-int is never touched and both
run on the same hosts in the same run.

Everything it starts or makes is also written into the lab's record the
moment it exists, so `lab down` removes it should a benchmark crash; `stop`
removes it in the normal case and takes it out of the record again.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from netaddr import IPNetwork

from sdnvirt.lab import netns as lab_netns
from sdnvirt.lab.host import LabHost
from sdnvirt.lab.lab import Lab
from sdnvirt.lab.process import LabProcessError, control_plane, start_detaching, stop
from sdnvirt.lab.record import LabRecord, ProcessRecord
from sdnvirt.linux import netns
from sdnvirt.linux.netns import CommandError, NetworkNamespace, run_in_namespace
from sdnvirt.vswitch.names import interface_name

OVN_BRIDGE = "br-ovn"
SCHEMAS = {"nb": Path("/usr/share/ovn/ovn-nb.ovsschema"), "sb": Path("/usr/share/ovn/ovn-sb.ovsschema")}
START_TIMEOUT = 30.0
TERM_GRACE = 3.0  # seconds a daemon gets after SIGTERM (and again after SIGKILL)
POLL = 0.05
GUEST_NIC = "eth0"
LOG_TAIL = 2  # lines of each log an error quotes
# Open_vSwitch external_ids that make an ovn-controller a chassis (ovn-controller(8)).
CHASSIS_KEYS = ("system-id", "hostname", "ovn-remote", "ovn-encap-type", "ovn-encap-ip",
                "ovn-bridge", "ovn-bridge-datapath-type")


class OvnError(RuntimeError):
    """OVN could not be started, configured or removed; the message says why."""


class OvnFabric:
    """OVN on a running lab's hosts, on its own integration bridge br-ovn beside sdnvirt's br-int."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.hosts = lab.hosts()
        self.folder = lab.paths.root / "ovn"
        self.namespace = f"{lab.name}-ovn"
        self._made_folder = False
        self._processes: list[ProcessRecord] = []
        self._namespaces: list[str] = []
        self._chassis: list[str] = []  # hosts whose Open_vSwitch carries our external_ids

    def __enter__(self) -> OvnFabric:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Central services, then a chassis per host; all of it removed again if any step fails."""
        if self.folder.exists() or netns.exists(self.namespace):
            raise OvnError(f"OVN runs on lab {self.lab.name} already ({self.folder}, namespace {self.namespace})")
        try:
            self._start_central()
            for host in self.hosts.values():
                self._start_chassis(host)
            self._wait(f"every host to be a chassis with {OVN_BRIDGE} and Geneve tunnels", self._ready,
                       START_TIMEOUT)
        except Exception:
            self.stop()
            raise

    def _start_central(self) -> None:
        self.folder.mkdir()
        self._made_folder = True
        self._make_namespace(self.namespace)
        for db, schema in SCHEMAS.items():
            run_in_namespace(None, ["ovsdb-tool", "create", str(self._file(f"{db}.db")), str(schema)])
            self._start(f"ovn/ovsdb-server-{db}", self.namespace, [
                "ovsdb-server", str(self._file(f"{db}.db")), f"--remote=punix:{self._socket(db)}",
                f"--unixctl={self._file(f'ovsdb-server-{db}.ctl')}"], self.folder)
        self._start("ovn/northd", self.namespace, [
            "ovn-northd", f"--ovnnb-db=unix:{self._socket('nb')}", f"--ovnsb-db=unix:{self._socket('sb')}",
            f"--unixctl={self._file('northd.ctl')}"], self.folder)

    def _start_chassis(self, host: LabHost) -> None:
        """ovn-controller in the host's namespace, configured the way ovn-controller(8) says."""
        name = host.host.name
        taken = [key for key in CHASSIS_KEYS if self._open_vswitch_ids(host).get(key)]
        if taken:
            raise OvnError(f"{name}'s Open vSwitch is set up for OVN already ({', '.join(taken)})")
        self._chassis.append(name)
        ids = {"system-id": name, "hostname": host.namespace, "ovn-remote": f"unix:{self._socket('sb')}",
               "ovn-encap-type": "geneve", "ovn-encap-ip": str(host.host.address), "ovn-bridge": OVN_BRIDGE,
               "ovn-bridge-datapath-type": "netdev"}
        host.openvswitch.vsctl("set", "Open_vSwitch", ".", *(f'external_ids:{k}="{v}"' for k, v in ids.items()))
        # ovn-controller 23.03 has no --unixctl: its control socket goes to OVN_RUNDIR.
        run = self.folder / name
        run.mkdir()
        self._start(f"{name}/ovn-controller", host.namespace, ["ovn-controller", f"unix:{host.paths.ovsdb_socket}"],
                    run, {**host.openvswitch.env, "OVN_RUNDIR": str(run)})

    def _ready(self) -> bool:
        chassis = set(self.sbctl("--bare", "--columns=name", "list", "Chassis").split())
        return chassis >= set(self.hosts) and all(self._meshed(host) for host in self.hosts.values())

    def _meshed(self, host: LabHost) -> bool:
        """br-ovn is there with a Geneve tunnel to every other host (sdnvirt's are VXLAN)."""
        ovs = host.openvswitch
        tunnels = ovs.vsctl("--bare", "--columns=name", "find", "Interface", "type=geneve").split()
        return (len(tunnels) == len(self.hosts) - 1
                and bool(ovs.vsctl("--bare", "--columns=name", "find", "Bridge", f"name={OVN_BRIDGE}").strip()))

    def stop(self) -> None:
        """Remove all that start and plug_namespace made, newest first; safe to call again."""
        failures: list[str] = []
        stopped: list[ProcessRecord] = []
        removed: list[str] = []
        for process in reversed(self._processes):
            try:
                stop(process, timeout=TERM_GRACE)  # SIGTERM, then SIGKILL: checked gone, by pid
                stopped.append(process)
            except LabProcessError as error:
                failures.append(str(error))
        for name in reversed(list(self._chassis)):
            try:
                self._unconfigure(self.hosts[name])
                self._chassis.remove(name)
            except CommandError as error:  # ovs-vsctl failed or hung: the rest is removed all the same
                failures.append(f"{name}: {error}")
        for namespace in reversed(self._namespaces):
            try:
                netns.remove(namespace)
                removed.append(namespace)
            except OSError as error:
                failures.append(f"namespace {namespace}: {error}")
        self._forget(stopped, removed)
        if failures:
            raise OvnError("OVN was not removed completely: " + "; ".join(failures))
        if self._made_folder:
            shutil.rmtree(self.folder)
            self._made_folder = False

    def _unconfigure(self, host: LabHost) -> None:
        """With its ovn-controller gone (it would make the bridge again), br-ovn and our ids go."""
        host.openvswitch.vsctl("--if-exists", "del-br", OVN_BRIDGE,
                               "--", "remove", "Open_vSwitch", ".", "external_ids", *CHASSIS_KEYS)

    # -- logical network ---------------------------------------------------------------------------

    def add_switch(self, name: str) -> None:
        self.nbctl("ls-add", name)

    def add_port(self, switch: str, port: str, mac: str, ip: str) -> None:
        self.nbctl("lsp-add", switch, port, "--", "lsp-set-addresses", port, f"{mac} {ip}")

    def plug_namespace(self, host: str, namespace: str, port: str, mac: str, ip_with_prefix: str) -> None:
        """A namespace standing in for a VM, wired to br-ovn as libvirt wires one (iface-id), bound by OVN."""
        lab_host = self.hosts[host]
        vif = interface_name("ovn-", port)
        address = IPNetwork(ip_with_prefix)
        self._make_namespace(namespace)
        with NetworkNamespace(lab_host.namespace) as host_ns:
            host_ns.add_veth(vif, namespace, GUEST_NIC)
            host_ns.bring_up(vif)
        with NetworkNamespace(namespace) as guest:
            guest.bring_up(GUEST_NIC, mac=mac)
            guest.add_address(GUEST_NIC, str(address.ip), address.prefixlen)
        lab_host.openvswitch.vsctl(
            "add-port", OVN_BRIDGE, vif, "--", "set", "Interface", vif, f'external_ids:iface-id="{port}"',
            f'external_ids:attached-mac="{mac}"', "external_ids:iface-status=active")
        self.wait_bound(port, host)

    def wait_bound(self, port: str, host: str, timeout: float = 30) -> None:
        """Until the host's chassis holds the port (main or additional) and its flows are in."""
        self._wait(f"port {port} bound on {host}", lambda: self._bound(port, host), timeout)

    def _bound(self, port: str, host: str) -> bool:
        chassis = self.sbctl("--bare", "--columns=_uuid", "find", "Chassis", f'name="{host}"').strip()
        holders = self.sbctl("--bare", "--columns=chassis,additional_chassis", "find", "Port_Binding",
                             f'logical_port="{port}"').split()
        installed = self.hosts[host].openvswitch.vsctl(
            "--bare", "--columns=name", "find", "Interface", f'external_ids:iface-id="{port}"',
            'external_ids:ovn-installed="true"').strip()
        return bool(chassis) and chassis in holders and bool(installed)

    # -- live migration (ovn-nb(5), Logical_Switch_Port options) -----------------------------------

    def prepare_migration(self, port: str, source: str, destination: str) -> None:
        """Both chassis may bind the port; the destination's copy stays blocked until the VM's RARP."""
        self.nbctl("set", "Logical_Switch_Port", port, f'options:requested-chassis="{source},{destination}"',
                   "options:activation-strategy=rarp")

    def finish_migration(self, port: str, destination: str) -> None:
        self.nbctl("set", "Logical_Switch_Port", port, f'options:requested-chassis="{destination}"',
                   "--", "remove", "Logical_Switch_Port", port, "options", "activation-strategy")

    def port_options(self, port: str) -> dict[str, str]:
        return _map(self.nbctl("--format=json", "--columns=options", "list", "Logical_Switch_Port", port))

    # -- tools -------------------------------------------------------------------------------------

    def nbctl(self, *args: str) -> str:
        return run_in_namespace(None, ["ovn-nbctl", f"--db=unix:{self._socket('nb')}", "--timeout=10", *args]).stdout

    def sbctl(self, *args: str) -> str:
        return run_in_namespace(None, ["ovn-sbctl", f"--db=unix:{self._socket('sb')}", "--timeout=10", *args]).stdout

    def _file(self, name: str) -> Path:
        return self.folder / name

    def _socket(self, db: str) -> Path:
        return self._file(f"{db}.sock")

    def _start(self, name: str, namespace: str, argv: list[str], run: Path, env: dict[str, str] | None = None) -> None:
        """A detaching daemon with its pid file in `run`, its log in our folder, no default path of
        the machine's own OVS or OVN; recorded here and in the lab's record."""
        label = name.replace("/", "-")
        pidfile = run / f"{label}.pid"
        argv = [*argv, f"--pidfile={pidfile}", f"--log-file={self._file(f'{label}.log')}", "--detach", "--no-chdir"]
        folder = str(self.folder)
        env = {"OVS_RUNDIR": folder, "OVS_LOGDIR": folder, "OVS_DBDIR": folder, "OVN_RUNDIR": folder,
               "OVN_LOGDIR": folder, "OVN_DBDIR": folder, **(env or {})}
        process = start_detaching(name, namespace, control_plane(argv), pidfile, env)
        self._processes.append(process)
        self._lab_record().add_process(process)

    def _make_namespace(self, name: str) -> None:
        if netns.exists(name):
            raise OvnError(f"namespace {name} exists already")
        self._namespaces.append(name)
        lab_netns.create(self._lab_record(), name)  # IPv6 off, loopback up, recorded

    def _lab_record(self) -> LabRecord:
        return LabRecord.load(self.lab.paths.record)

    def _forget(self, processes: list[ProcessRecord], namespaces: list[str]) -> None:
        """Take what is gone out of the lab's record and ours; what is not gone stays for `lab down`."""
        self._processes = [p for p in self._processes if p not in processes]
        self._namespaces = [n for n in self._namespaces if n not in namespaces]
        if self.lab.paths.record.exists():
            record = self._lab_record()
            record.processes = [p for p in record.processes if p not in processes]
            record.namespaces = [n for n in record.namespaces if n not in namespaces]
            record.save()

    def _open_vswitch_ids(self, host: LabHost) -> dict[str, str]:
        return _map(host.openvswitch.vsctl("--format=json", "--columns=external_ids", "list", "Open_vSwitch", "."))

    def _wait(self, what: str, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise OvnError(f"OVN: waited {timeout:.0f}s for {what}; last logged: {self._last_logged()}")
            time.sleep(POLL)

    def _last_logged(self) -> str:
        """The end of each daemon's log, for the error: stop() removes the folder they are in."""
        return "; ".join(f"{log.name}: {' | '.join(log.read_text().splitlines()[-LOG_TAIL:])}"
                         for log in sorted(self.folder.glob("*.log")))


def _map(listing: str) -> dict[str, str]:
    """The one map column of one row, from `--format=json list` of ovs-vsctl or ovn-nbctl."""
    [[(_, pairs)]] = json.loads(listing)["data"]
    return dict(pairs)
