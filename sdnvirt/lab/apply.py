"""`sdnvirt apply`: a running lab changed to match an edited topology file, by difference.

The controller checks the file against what runs and owns the desired state,
guests included (it unplugs and plugs their NICs, it defines and undefines VMs);
the lab owns the namespaces, links and daemons that stand in for machines.
So a change goes in this order: the controller says what changes (refusing
it whole if any part cannot be done); new segments, hosts and netns guests'
namespaces are made; the controller takes the new topology (the fabric and
the guests follow it); new guests are started; the namespaces of guests that
went, and the hosts and segments that went, are taken down last, once nothing
uses them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sdnvirt.compute.image import build_image
from sdnvirt.lab.guest import NetnsGuest
from sdnvirt.lab.inventory import write_lab_inventory
from sdnvirt.lab.lab import Lab, LabError
from sdnvirt.lab.libvirtd import stop_domains
from sdnvirt.lab.process import is_running, stop
from sdnvirt.lab.record import LabRecord
from sdnvirt.lab.underlay import add_segment, remove_segment
from sdnvirt.linux import netns
from sdnvirt.model.loader import load_topology_text
from sdnvirt.model.topology import GuestKind, Topology


def plan(lab: Lab, source: Path) -> list[dict]:
    """What applying the file would change, as the controller sees it (`sdnvirt diff`)."""
    return lab.api().apply_topology(_read(source), str(source), dry_run=True)["changes"]


def apply(lab: Lab, source: Path) -> dict:
    """Change the lab to match the file; the controller's answer (generation, changes)."""
    text = _read(source)
    new = load_topology_text(text, str(source))
    planned = lab.api().apply_topology(text, str(source), dry_run=True)
    if not planned["changes"]:
        return planned
    old = lab.topology
    if any(g.kind == GuestKind.QEMU for g in new.guests.values()):
        build_image()
    record = LabRecord.load(lab.paths.record)
    lab.topology = new
    _build_segments_and_hosts(lab, old, new, record)
    for name in _new_netns_guests(old, new):
        NetnsGuest(new, new.guests[name]).build(record)
    write_lab_inventory(lab.paths, record, new)  # before the controller hears of the new hosts and guests
    applied = lab.api().apply_topology(text, str(source))
    shutil.copyfile(source, lab.paths.topology)
    lab.wait_for_bridges(list(new.hosts))
    started = [name for name in lab.autostarted() if name not in old.guests]
    lab.start_guests(started)
    for name, guest in sorted(old.guests.items()):
        if guest.kind == GuestKind.NETNS and name not in _netns_guests(new):
            NetnsGuest(old, guest).remove(record)
    _remove_hosts_and_segments(lab, old, new, record)
    lab.wait_converged()
    lab.wait_for_agents([name for name in started if new.guests[name].kind == GuestKind.QEMU])
    return applied


def _read(source: Path) -> str:
    try:
        return source.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise LabError(f"cannot read {source}: {error}") from None


def _netns_guests(topology: Topology) -> set[str]:
    return {name for name, guest in topology.guests.items() if guest.kind == GuestKind.NETNS}


def _new_netns_guests(old: Topology, new: Topology) -> list[str]:
    return sorted(_netns_guests(new) - _netns_guests(old))


def _build_segments_and_hosts(lab: Lab, old: Topology, new: Topology, record: LabRecord) -> list[str]:
    """New segments and hosts, in the lab's new topology (routes to every segment it has)."""
    new_segments = [new.segments[s] for s in sorted(set(new.segments) - set(old.segments))]
    for segment in new_segments:
        add_segment(new, segment)
    hosts = lab.hosts(record)
    added = sorted(set(new.hosts) - set(old.hosts))
    kept = sorted(set(new.hosts) & set(old.hosts))
    for name in kept:
        for segment in new_segments:
            hosts[name].route_to(segment)
    for name in added:
        hosts[name].build(record)
    if lab.vms():
        running = {p.name for p in record.processes if is_running(p)}
        for name in kept:
            if f"{name}/libvirtd" not in running:
                hosts[name].libvirtd.start(record)
    lab.check_underlay(hosts)
    lab.teach_tunnel_neighbours(hosts)
    return added


def _remove_hosts_and_segments(lab: Lab, old: Topology, new: Topology, record: LabRecord) -> None:
    """Once the controller has let go of them."""
    gone = lab.hosts(record, old)
    for name in sorted(set(old.hosts) - set(new.hosts)):
        host = gone[name]
        if any(p.name == f"{name}/libvirtd" for p in record.processes):
            stop_domains(host.libvirtd)
        for process in [p for p in record.processes if p.name.startswith(f"{name}/")]:
            stop(process)
            record.forget_process(process.name)
        netns.remove(host.namespace)
        record.forget_namespace(host.namespace)
        shutil.rmtree(host.paths.root, ignore_errors=True)
        record.management.pop(name, None)
        record.save()
    segments = [old.segments[s] for s in sorted(set(old.segments) - set(new.segments))]
    if segments:
        for host in lab.hosts(record).values():
            for segment in segments:
                host.unroute(segment)
        for segment in segments:
            remove_segment(old, segment.name)
