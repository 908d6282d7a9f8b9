"""A whole lab on this machine: `lab up`, `lab down`, `lab status`.

`up` is all-or-nothing: every namespace is recorded before it is made and
every process as it starts, and any failure (Ctrl-C too) removes them again
before the error is reported. `down` removes exactly what the record names,
also after `up` was killed at any point: the processes by the pids it
recorded and whatever else runs in the lab's namespaces, then the
namespaces, then the folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sdnvirt.client.api import ApiClient, ApiError
from sdnvirt.compute.image import build_image
from sdnvirt.lab import naming
from sdnvirt.lab import netns as lab_netns
from sdnvirt.lab.guest import NetnsGuest
from sdnvirt.lab.host import LabHost
from sdnvirt.lab.inventory import write_lab_inventory
from sdnvirt.lab.northbound_server import NORTHBOUND, northbound_remote, start_northbound
from sdnvirt.lab.paths import SUN_PATH_MAX, LabPaths, labs_root
from sdnvirt.lab.pki import LabPki
from sdnvirt.lab.process import (
    LabProcessError,
    NamespaceId,
    control_plane,
    is_running,
    namespace_id,
    running_in,
    start_background,
    stop,
    stop_all,
)
from sdnvirt.lab.record import LabRecord
from sdnvirt.lab.underlay import (
    API_PORT,
    CONTROLLER_MANAGEMENT_ADDRESS,
    build_underlay,
    gateway_macs,
    management_address,
    plug_management,
)
from sdnvirt.linux import netns
from sdnvirt.model.loader import load_topology
from sdnvirt.model.topology import GuestKind, Topology
from sdnvirt.northbound.database import Northbound
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE, OPENFLOW_PORT

CONTROLLER = "controller"
CONTROLLER_START_TIMEOUT = 30.0
CONVERGE_TIMEOUT = 60.0
VM_BOOT_TIMEOUT = 120.0
POLL_INTERVAL = 0.05
STOP_ROUNDS = 3  # a stopping daemon may start a helper (libvirtd its hooks); so may that one


class LabError(RuntimeError):
    """The lab could not be built or removed; the message says why."""


@dataclass
class Lab:
    topology: Topology
    paths: LabPaths

    @classmethod
    def open(cls, name: str) -> Lab:
        """A lab that is up, by name."""
        paths = LabPaths.of(name)
        if not paths.record.exists():
            raise LabError(f"no lab named {name!r} is up (labs: {', '.join(running_labs()) or 'none'})")
        return cls(load_topology(paths.topology), paths)

    @property
    def name(self) -> str:
        return self.topology.name

    def hosts(self, record: LabRecord | None = None, topology: Topology | None = None) -> dict[str, LabHost]:
        """The lab's hosts (or those of another topology of it, while it changes); `record`:
        the one being written now, so that new management addresses go into it."""
        record = record or LabRecord.load(self.paths.record)
        topology = topology or self.topology
        pki = LabPki(self.paths.pki) if record.ssl else None
        return {name: LabHost(topology, host, self.paths, management_address(record, name), pki)
                for name, host in topology.hosts.items()}

    def guests(self) -> dict[str, NetnsGuest]:
        """The netns guests' machines (their namespaces)."""
        return {name: NetnsGuest(self.topology, guest)
                for name, guest in self.topology.guests.items() if guest.kind == GuestKind.NETNS}

    def api(self) -> ApiClient:
        return ApiClient(self.paths.api_socket)

    def vms(self) -> list[str]:
        return [name for name, guest in self.topology.guests.items() if guest.kind == GuestKind.QEMU]

    def autostarted(self) -> list[str]:
        """The guests `lab up` starts, of every kind."""
        return [name for name, guest in self.topology.guests.items() if guest.autostart]

    def autostarted_vms(self) -> list[str]:
        return [name for name in self.vms() if self.topology.guests[name].autostart]

    def up(self, source: Path, ssl: bool = False) -> None:
        """Build the lab; with `ssl`, the controller reaches the hosts' OVSDB and their
        bridges reach it over SSL on the management network, with certificates from
        ovs-pki, and it serves its API there too (HTTPS, with a token), as on real hosts."""
        self._check_free()
        builder = os.getpid()
        if self.vms():
            build_image()  # before anything is made: it may have to fetch packages
        self.paths.root.mkdir(mode=0o700, parents=True)  # root's alone: every socket of the lab is in it
        shutil.copyfile(source, self.paths.topology)
        record = LabRecord(self.name, self.paths.record, ssl=ssl)
        record.save()
        try:
            if ssl:
                LabPki(self.paths.pki).create(list(self.topology.hosts))
                self.paths.api_token.touch(mode=0o600)
                self.paths.api_token.write_text(secrets.token_urlsafe(32))
            build_underlay(self.topology, record)
            hosts = self.hosts(record)
            for host in hosts.values():
                host.build(record)
            self.check_underlay(hosts)
            self.teach_tunnel_neighbours(hosts)
            self._start_control_plane(record, source.read_text())
            self.wait_for_bridges(list(self.topology.hosts))
            for guest in self.guests().values():
                guest.build(record)
            self.start_guests(self.autostarted())
            self.wait_converged()
            self.wait_for_agents(self.autostarted_vms())
            record.complete = True
            record.save()
        except BaseException as error:
            if os.getpid() != builder:
                raise  # a process forked part way (pyroute2 forks helpers) leaves the lab to its builder
            cause = str(error) or type(error).__name__
            try:
                self.down()
            except LabError as cleanup:
                cause += f"; cleaning up also failed: {cleanup}"
            if not isinstance(error, Exception):
                raise  # Ctrl-C: stopped as asked, with nothing left behind
            raise LabError(f"lab {self.name} could not be built: {cause}") from error

    def _check_free(self) -> None:
        if self.paths.record.exists():
            if not any(is_running(p) for p in LabRecord.load(self.paths.record).processes):
                raise LabError(f"lab {self.name} was left behind by a run that ended without `lab down` (none of "
                               f"its processes runs); `sdnvirt lab down {self.name}` removes it")
            raise LabError(f"lab {self.name} is already up; `sdnvirt lab down {self.name}` removes it")
        if self.paths.root.exists():
            raise LabError(f"{self.paths.root} exists but holds no lab record (a `lab up` stopped at its "
                           f"start); `sdnvirt lab down {self.name}` removes it")
        longest = self.paths.longest_socket(list(self.topology.hosts), list(self.topology.guests))
        if len(str(longest).encode()) > SUN_PATH_MAX:
            raise LabError(f"socket path {longest} is longer than {SUN_PATH_MAX} bytes; "
                           "use a shorter lab name or SDNVIRT_LAB_ROOT")
        taken = [ns for ns in self._namespaces() if netns.exists(ns)]
        if taken:
            raise LabError(f"namespaces of lab {self.name} exist already: {', '.join(taken)}")

    def _namespaces(self) -> list[str]:
        lab = self.name
        return ([naming.fabric_namespace(lab), naming.controller_namespace(lab)]
                + [naming.host_namespace(lab, h) for h in self.topology.hosts]
                + [naming.guest_namespace(lab, g) for g in self.topology.guests])

    def _start_control_plane(self, record: LabRecord, source: str) -> None:
        """The northbound database, filled with the topology, then the controller that reads it."""
        namespace = naming.controller_namespace(self.name)
        lab_netns.create(record, namespace)
        if record.ssl:
            plug_management(self.name, naming.CONTROLLER_UPLINK, namespace, CONTROLLER_MANAGEMENT_ADDRESS)
        start_northbound(self.paths, namespace, record)
        northbound = Northbound(northbound_remote(self.paths))
        northbound.connect()
        try:
            northbound.load_topology(self.topology, source)
        finally:
            northbound.close()
        self._launch_controller(record)

    def _launch_controller(self, record: LabRecord) -> None:
        write_lab_inventory(self.paths, record, self.topology)
        argv = [sys.executable, "-m", "sdnvirt.controller", "--northbound", northbound_remote(self.paths),
                "--hosts", str(self.paths.inventory), "--openflow-socket", str(self.paths.openflow_socket),
                "--api-socket", str(self.paths.api_socket)]
        if record.ssl:
            credentials = LabPki(self.paths.pki).controller()
            argv += ["--private-key", str(credentials.private_key), "--certificate", str(credentials.certificate),
                     "--ca-cert", str(credentials.peer_ca),
                     "--openflow-listen", f"{CONTROLLER_MANAGEMENT_ADDRESS}:{OPENFLOW_PORT}",
                     "--api-listen", f"{CONTROLLER_MANAGEMENT_ADDRESS}:{API_PORT}",
                     "--token-file", str(self.paths.api_token)]
        record.add_process(start_background(
            CONTROLLER, naming.controller_namespace(self.name), control_plane(argv),
            self.paths.controller_pidfile, self.paths.controller_log))
        deadline = time.monotonic() + CONTROLLER_START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.api().status()
                return
            except ApiError:
                time.sleep(POLL_INTERVAL)
        raise LabError(f"the controller did not answer within {CONTROLLER_START_TIMEOUT:.0f}s; "
                       f"see {self.paths.controller_log}")

    def stop_process(self, name: str, kill: bool = False) -> None:
        """Stop one of the lab's daemons (e.g. `hv1/libvirtd`, `controller`), by its recorded pid;
        `kill` sends SIGKILL at once, as a crash would."""
        record = LabRecord.load(self.paths.record)
        found = [p for p in record.processes if p.name == name]
        if not found:
            raise LabError(f"lab {self.name} runs no process {name!r} "
                           f"(it runs: {', '.join(p.name for p in record.processes)})")
        for process in found:
            stop(process, kill=kill)
        record.forget_process(name)

    def start_process(self, name: str) -> None:
        """Start one of the lab's daemons again, as `lab up` did."""
        record = LabRecord.load(self.paths.record)
        if any(p.name == name and is_running(p) for p in record.processes):
            raise LabError(f"{name} is running already")
        record.forget_process(name)
        host_name, _, daemon = name.rpartition("/")
        host = self.hosts().get(host_name)
        starters = {CONTROLLER: lambda: self._launch_controller(record),
                    NORTHBOUND: lambda: start_northbound(self.paths, naming.controller_namespace(self.name),
                                                         record, create=False)}
        if host is not None:
            starters.update({
                f"{host_name}/ovsdb-server": lambda: host.openvswitch.start_ovsdb_server(record),
                f"{host_name}/ovs-vswitchd": lambda: host.openvswitch.start_vswitchd(record),
                f"{host_name}/libvirtd": lambda: host.libvirtd.start(record),
            })
        if name not in starters:
            raise LabError(f"lab {self.name} has no process {name!r} to start")
        starters[name]()

    def restart_process(self, name: str, kill: bool = False) -> None:
        self.stop_process(name, kill=kill)
        self.start_process(name)

    def check_underlay(self, hosts: dict[str, LabHost]) -> None:
        """Every host reaches every other over the underlay."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            missing = dict(zip(hosts, pool.map(lambda h: hosts[h].unreachable_peers(), hosts), strict=True))
        unreachable = [f"{source}->{target}" for source, targets in missing.items() for target in targets]
        if unreachable:
            raise LabError(f"the underlay does not connect {', '.join(unreachable)}")

    def teach_tunnel_neighbours(self, hosts: dict[str, LabHost]) -> None:
        gateways = gateway_macs(self.topology)
        macs = {name: host.underlay_mac() for name, host in hosts.items()}
        for name, host in hosts.items():
            segment = self.topology.segments[host.host.segment]
            neighbours = {str(segment.gateway): gateways[segment.name]}
            neighbours.update({str(other.address): macs[other.name] for other in self.topology.hosts.values()
                               if other.segment == segment.name and other.name != name})
            host.set_tunnel_neighbours(neighbours)

    def wait_for_bridges(self, hosts: list[str]) -> None:
        """Guests plug into br-int, which the controller makes, with its tunnels, on each host."""
        peers = len(self.topology.hosts) - 1
        deadline = time.monotonic() + CONTROLLER_START_TIMEOUT
        waiting = set(hosts)
        while waiting and time.monotonic() < deadline:
            hosts = self.api().status()["hosts"]
            waiting = {h for h in waiting if not (hosts[h]["ovsdb_connected"] and hosts[h]["tunnels"] == peers)}
            if waiting:
                time.sleep(POLL_INTERVAL)
        if waiting:
            raise LabError(f"the controller made no {INTEGRATION_BRIDGE} with tunnels on "
                           f"{', '.join(sorted(waiting))}; see {self.paths.controller_log}")

    def start_guests(self, names: list[str]) -> None:
        """Start guests of every kind, a few at once, through the controller (which asks each
        host's libvirtd for a VM, and wires a netns guest itself)."""
        api = self.api()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda name: api.vm_action(name, "start"), names))

    def wait_for_agents(self, vms: list[str], timeout: float = VM_BOOT_TIMEOUT) -> None:
        """Until each VM has booted and its guest agent answers."""
        deadline = time.monotonic() + timeout
        waiting = set(vms)
        while waiting and time.monotonic() < deadline:
            for name in sorted(waiting):
                try:
                    if self.api().exec(name, ["true"], timeout=2)[0] == 0:
                        waiting.discard(name)
                except ApiError:
                    pass
            if waiting:
                time.sleep(POLL_INTERVAL)
        if waiting:
            raise LabError(f"no guest agent answered in {', '.join(sorted(waiting))} within {timeout:.0f}s; "
                           f"see `sdnvirt vm console NAME`")

    def wait_converged(self, timeout: float = CONVERGE_TIMEOUT) -> dict:
        """Until every bridge is connected and holds exactly its flows, and every port of a
        guest that runs is bound once (guests may have moved since the lab came up)."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            status = self.api().status()
            running = [vm for vm in self.api().vms() if vm["state"] == "running"]
            expected = sum(len(vm["nics"]) for vm in running)
            if status["converged"] and sum(h["bindings"] for h in status["hosts"].values()) == expected:
                return status
            time.sleep(POLL_INTERVAL)
        raise LabError(f"the fabric did not converge within {timeout:.0f}s: {status}")

    def down(self) -> None:
        take_down(self.paths)

    def status(self) -> dict:
        record = LabRecord.load(self.paths.record)
        processes = {p.name: {"pid": p.pid, "running": is_running(p)} for p in record.processes}
        try:
            controller = self.api().status()
        except ApiError as error:
            controller = {"error": str(error)}
        guests = {
            name: {"host": g.host, "kind": g.kind.value, "namespace": naming.guest_namespace(self.name, name),
                   "nics": [{"network": n.network, "ip": str(n.ip), "mac": str(n.mac)} for n in g.nics]}
            for name, g in self.topology.guests.items()
        }
        return {
            "name": self.name,
            "folder": str(self.paths.root),
            "complete": record.complete,
            "namespaces": {ns: netns.exists(ns) for ns in record.namespaces},
            "processes": processes,
            "controller": controller,
            "guests": guests,
        }


def running_labs() -> list[str]:
    root = labs_root()
    return sorted(p.parent.name for p in root.glob("*/lab.json")) if root.exists() else []


def take_down(paths: LabPaths) -> None:
    """Remove the lab in `paths`, whatever state `lab up` left it in: every process it started
    (also one it did not live to record), then its namespaces, then its folder. A lab that
    cannot be removed whole keeps its record, so that `lab down` can try again."""
    if paths.root.resolve().parent != labs_root().resolve() or not paths.root.is_dir():
        raise LabError(f"no lab named {paths.root.name!r} is up (labs: {', '.join(running_labs()) or 'none'})")
    if not paths.record.exists():
        # `lab up` stopped before its first record; it made nothing else than these.
        made = {paths.topology.name, paths.record.with_suffix(".tmp").name}
        if not {p.name for p in paths.root.iterdir()} <= made:
            raise LabError(f"{paths.root} holds no lab record but other files; it is not a lab's folder")
        shutil.rmtree(paths.root)
        return
    record = LabRecord.load(paths.record)
    namespaces = lab_netns.identities(record.namespaces)
    failures = _stop_processes(record, set(namespaces.values()))
    # A namespace that still holds a process stays, or the process could never be found again.
    holding = {namespace_id(f"/proc/{p.pid}/ns/net") for p in running_in(set(namespaces.values()))}
    for namespace in reversed(record.namespaces):
        if namespace in namespaces and namespaces[namespace] in holding:
            continue
        try:
            netns.remove(namespace)
        except OSError as error:
            failures.append(f"namespace {namespace}: {error}")
    if failures:
        raise LabError("; ".join(failures))
    shutil.rmtree(paths.root)


def _stop_processes(record: LabRecord, namespaces: set[NamespaceId]) -> list[str]:
    """The controller first, while the northbound database still takes its last writes (the
    accounts); then the other recorded processes and everything else that runs in the lab's
    namespaces (QEMU, which outlives libvirtd; a daemon started just before `lab up` was
    killed), all at once; again for any that a stopping process started meanwhile (a bounded
    number of rounds)."""
    try:
        stop_all([p for p in record.processes if p.name == CONTROLLER])
    except LabProcessError as error:
        return [str(error)]
    stopping = [p for p in record.processes if is_running(p)]
    for _ in range(STOP_ROUNDS):
        known = {p.pid for p in stopping}
        stopping += [p for p in running_in(namespaces) if p.pid not in known]
        if not stopping:
            return []
        try:
            stop_all(stopping)
        except LabProcessError as error:
            return [str(error)]
        stopping = []
    left = running_in(namespaces)
    return [f"processes keep starting in the lab's namespaces: {', '.join(p.name for p in left)}"] if left else []
