"""A controller stopped with SIGTERM while the northbound database does not answer lets its last
writes land once the database answers again, within its drain deadline: the database, and so
the controller started next, holds exactly what the stopped one knew."""

from __future__ import annotations

import os
import signal
import threading

from sdnvirt.lab.lab import CONTROLLER
from sdnvirt.lab.northbound_server import NORTHBOUND, northbound_remote
from sdnvirt.lab.process import is_running
from sdnvirt.lab.record import LabRecord
from sdnvirt.northbound.database import Northbound

from helpers.guests import nic, ping, wait_until

WAIT = 30.0
# Two ports that go away while the database is stopped: the first one's write is sent (the
# server reads it once it runs again), the second waits in the controller.
GONE = {"hv1": "a1", "hv2": "a3"}


def northbound_interfaces(lab) -> set[str]:
    """The interfaces of every Binding row in the northbound database."""
    northbound = Northbound(northbound_remote(lab.paths), timeout=WAIT)
    northbound.connect()
    try:
        return {r["interface"] for r in northbound.rows("Binding")}
    finally:
        northbound.close()


def interface_of(lab, host: str, guest: str) -> str:
    """The name of the guest's interface on its host, found as the controller finds it: by iface-id."""
    return lab.hosts()[host].openvswitch.vsctl("--bare", "--columns=name", "find", "Interface",
                                               f"external_ids:iface-id={nic(lab, guest).port_id}").strip()


def set_status(lab, status: str) -> None:
    for host, guest in GONE.items():
        lab.hosts()[host].openvswitch.vsctl("set", "Interface", interface_of(lab, host, guest),
                                            f"external_ids:iface-status={status}")


def test_a_stopped_controller_lands_its_last_writes_before_it_exits(fabric_lab):
    lab = fabric_lab
    lab.wait_converged()
    interfaces = {interface_of(lab, host, guest) for host, guest in GONE.items()}
    bound = sum(h["bindings"] for h in lab.api().status()["hosts"].values())
    assert interfaces <= northbound_interfaces(lab)
    processes = {p.name: p for p in LabRecord.load(lab.paths.record).processes}
    database, controller = processes[NORTHBOUND], processes[CONTROLLER]
    log = lab.paths.controller_log
    logged = log.stat().st_size
    stopping = threading.Thread(target=lab.stop_process, args=("controller",), daemon=True)
    try:
        os.kill(database.pid, signal.SIGSTOP)  # the database stops answering; its connections stay
        set_status(lab, "inactive")
        wait_until(lambda: (s := lab.api().status())["northbound_writes"]["waiting"] >= 2
                   and sum(h["bindings"] for h in s["hosts"].values()) == bound - 2, timeout=WAIT)
        stopping.start()  # SIGTERM
        # The database answers again only once the controller has stopped all but its writer
        # (or has exited): whatever lands now lands because the writer waited for it.
        wait_until(lambda: "northbound writes to land" in log.read_text()[logged:] or not is_running(controller),
                   timeout=WAIT)
        os.kill(database.pid, signal.SIGCONT)
        stopping.join(WAIT)
        assert not stopping.is_alive()
        said = log.read_text()[logged:]
        assert "every northbound write landed" in said, said[-2000:]
        assert not interfaces & northbound_interfaces(lab)
    finally:
        if is_running(database):
            os.kill(database.pid, signal.SIGCONT)
        if stopping.ident is not None:
            stopping.join(WAIT)
        lab.start_process("controller")
        set_status(lab, "active")
        lab.wait_converged()
    assert interfaces <= northbound_interfaces(lab)
    assert ping(lab, "a1", str(nic(lab, "a4").ip)) == 3  # hv1 to hv3: the flows are back too
