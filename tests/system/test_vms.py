"""Real VMs (libvirtd per host, QEMU with TCG) on the controller's fabric, through their whole life."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import libvirt
import pytest

from sdnvirt.client.api import ApiError
from sdnvirt.controller.fabric.cookies import owner_cookie
from sdnvirt.lab.reachability import Endpoint, format_matrix, measure, measure_pairs

from helpers.access import NOBODY, connect_as, lab_sockets
from helpers.accounts import accounted, assert_counters_went_on
from helpers.guests import kept_events, nic, ping, vm_ping, wait_until
from helpers.migrations import slow_copy, wait_for_state


def flows_of(lab, host: str, guest: str) -> list[str]:
    """The lines of host's br-int that belong to the guest's logical port (its cookie)."""
    owner = owner_cookie(("port", nic(lab, guest).port_id))
    dump = lab.hosts()[host].openvswitch.ofctl("dump-flows", "br-int", f"cookie={owner:#x}/-1")
    return [line for line in dump.splitlines() if "actions=" in line]


def bridge_ports(lab, host: str) -> str:
    return lab.hosts()[host].openvswitch.vsctl("--columns=name,external_ids", "list", "Interface")


def state(lab, vm: str) -> str:
    return lab.api().vm(vm)["state"]


def test_a_vm_and_a_namespace_guest_of_one_tenant_reach_each_other_across_segments(vm_lab):
    assert vm_ping(vm_lab, "vm1", str(nic(vm_lab, "ns2").ip)) == 3
    assert ping(vm_lab, "ns2", str(nic(vm_lab, "vm1").ip)) == 3
    neighbour = vm_lab.api().exec("vm1", ["ip", "neigh", "show", str(nic(vm_lab, "ns2").ip)])[1].decode()
    assert str(nic(vm_lab, "ns2").mac) in neighbour  # blue's 10.0.0.12, not red's


def test_a_vm_of_another_tenant_with_the_same_address_is_not_reached(vm_lab):
    """vm3 (red) has vm1's address; ns2 (blue) reaches vm1 and never vm3, even aimed at its MAC."""
    source = Endpoint("ns2", nic(vm_lab, "ns2"))
    cells = measure_pairs(vm_lab, source, [Endpoint("vm1", nic(vm_lab, "vm1")),
                                                    Endpoint("vm3", nic(vm_lab, "vm3"))])
    assert {c.target.guest: c.reached for c in cells} == {"vm1": True, "vm3": False}
    assert ping(vm_lab, "ns4", str(nic(vm_lab, "vm3").ip)) == 3  # red reaches red's


def test_libvirt_plugged_the_vm_with_the_ids_the_controller_goes_by(vm_lab):
    ports = bridge_ports(vm_lab, "hv1")
    vm1 = nic(vm_lab, "vm1")
    assert f'iface-id="{vm1.port_id}"' in ports or f"iface-id={vm1.port_id}" in ports
    assert str(vm1.mac) in ports
    assert flows_of(vm_lab, "hv1", "vm1")


def test_vm_list_shows_host_state_and_since_when(vm_lab):
    vms = {vm["name"]: vm for vm in vm_lab.api().vms()}
    assert (vms["vm1"]["kind"], vms["vm1"]["host"], vms["vm1"]["state"]) == ("qemu", "hv1", "running")
    assert (vms["vm3"]["host"], vms["vm3"]["state"]) == ("hv2", "running")
    # spare never started: absent, or shut off once a test started and destroyed it, as hv2 says
    hv2 = libvirt.open(vm_lab.hosts()["hv2"].libvirtd.uri)
    try:
        defined = "spare" in {domain.name() for domain in hv2.listAllDomains()}
    finally:
        hv2.close()
    assert vms["spare"]["state"] == ("shut-off" if defined else "absent") and vms["ns2"]["state"] == "running"
    assert vms["vm1"]["since_s"] > 0 and vms["vm1"]["nics"][0]["ip"] == "10.0.0.11"


def test_exec_works_with_the_guest_network_down(vm_lab):
    api = vm_lab.api()
    try:
        assert api.exec("vm1", ["ip", "link", "set", "eth0", "down"])[0] == 0
        assert ping(vm_lab, "ns2", str(nic(vm_lab, "vm1").ip), count=2) == 0
        status, output = api.exec("vm1", ["sh", "-c", "cat /sys/class/net/eth0/operstate; exit 4"])
        assert (status, output.strip()) == (4, b"down")
    finally:
        api.exec("vm1", ["ip", "link", "set", "eth0", "up"])
    assert wait_until(lambda: ping(vm_lab, "ns2", str(nic(vm_lab, "vm1").ip), count=1) == 1, timeout=20)


def test_suspend_stops_traffic_and_resume_brings_it_back(vm_lab):
    address = str(nic(vm_lab, "vm1").ip)
    assert vm_lab.api().vm_action("vm1", "suspend")["state"] == "paused"
    try:
        assert ping(vm_lab, "ns2", address, count=3) == 0
    finally:
        assert vm_lab.api().vm_action("vm1", "resume")["state"] == "running"
    assert ping(vm_lab, "ns2", address, count=3) == 3


def test_save_then_restore_keeps_the_vm_reachable_at_its_addresses(vm_lab):
    api = vm_lab.api()
    assert api.exec("vm3", ["sh", "-c", "echo before-save > /tmp/mark"])[0] == 0
    before = accounted(vm_lab, "vm3")
    assert api.vm_action("vm3", "save")["state"] == "saved"
    assert ping(vm_lab, "ns4", str(nic(vm_lab, "vm3").ip), count=2) == 0
    assert not flows_of(vm_lab, "hv2", "vm3")  # its port left the bridge with QEMU
    assert api.vm_action("vm3", "restore")["state"] == "running"
    assert wait_until(lambda: ping(vm_lab, "ns4", str(nic(vm_lab, "vm3").ip), count=1) == 1, timeout=30)
    assert api.exec("vm3", ["cat", "/tmp/mark"])[1] == b"before-save\n"  # the same guest, memory and all
    after = accounted(vm_lab, "vm3")
    assert_counters_went_on(before, after)
    assert after["counters"]["received_packets"] > before["counters"]["received_packets"]  # the pings that came


@pytest.mark.parametrize("stop", ["shutdown", "destroy"])
def test_stop_start_cycle_leaves_no_stale_flows_and_brings_the_port_back(vm_lab, stop):
    api = vm_lab.api()
    before = sorted(flows_of(vm_lab, "hv1", "vm1"))
    assert api.vm_action("vm1", stop)["state"] == "shut-off"
    wait_until(lambda: not flows_of(vm_lab, "hv1", "vm1"), timeout=10)
    assert nic(vm_lab, "vm1").port_id not in bridge_ports(vm_lab, "hv1")
    # no host keeps a flow for its MAC either
    assert not flows_of(vm_lab, "hv2", "vm1")
    assert api.vm_action("vm1", "start")["state"] == "running"
    vm_lab.wait_for_agents(["vm1"])
    vm_lab.wait_converged()
    after = flows_of(vm_lab, "hv1", "vm1")
    assert len(after) == len(before)  # the same flows (the new tap may have a new ofport)
    assert vm_ping(vm_lab, "vm1", str(nic(vm_lab, "ns2").ip)) == 3


def reboots_since(lab, vm: str, since: float) -> list[dict]:
    """The reboots of `vm` the controller's event stream reported after `since` (epoch seconds),
    without their time, once the guest runs again. Read up to an event sure to come after any
    echo of the reboot (QEMU's second reset comes 78 ms after the first, the guest boots in
    seconds): the guest is suspended and resumed, and the stream read until it says so."""
    api = lab.api()
    api.vm_action(vm, "suspend")
    marked = time.time()
    api.vm_action(vm, "resume")

    def of_vm(events: list[dict], event: str, after: float) -> list[dict]:
        return [{k: v for k, v in e["data"].items() if k != "at"} for e in events
                if e["kind"] == "vm" and e["data"]["at"] >= after
                and e["data"].get("vm") == vm and e["data"].get("event") == event]
    return of_vm(kept_events(lab, lambda events: of_vm(events, "resumed", marked), timeout=60), "rebooted", since)


def test_reboot_comes_back_on_the_same_port(vm_lab):
    api = vm_lab.api()
    assert api.exec("vm1", ["sh", "-c", "echo up > /tmp/booted"])[0] == 0
    asked = time.time()
    api.vm_action("vm1", "reboot")
    vm_lab.wait_for_agents(["vm1"])
    assert api.exec("vm1", ["cat", "/tmp/booted"])[0] != 0  # a fresh boot: the initramfs is new
    assert wait_until(lambda: ping(vm_lab, "ns2", str(nic(vm_lab, "vm1").ip), count=1) == 1, timeout=30)
    assert reboots_since(vm_lab, "vm1", asked) == [{"vm": "vm1", "host": "hv1", "event": "rebooted",
                                                    "state": "running"}]


def test_a_guest_whose_kernel_panics_is_reported_rebooted_and_comes_back(vm_lab):
    """The guest boots with panic=-1 and its domain restarts on reboot: without the reboot event a
    panic would show only as a guest that lost its connections and its files."""
    api = vm_lab.api()
    panics = api.console("vm1", lines=10_000).count("Kernel panic")
    crashed = time.time()
    assert api.exec("vm1", ["sh", "-c", "(sleep 0.2; echo c > /proc/sysrq-trigger) </dev/null >/dev/null 2>&1 &"]
                    )[0] == 0
    wait_until(lambda: api.console("vm1", lines=10_000).count("Kernel panic") == panics + 1, timeout=30)
    vm_lab.wait_for_agents(["vm1"])  # the panic rebooted it
    assert reboots_since(vm_lab, "vm1", crashed) == [{"vm": "vm1", "host": "hv1", "event": "rebooted",
                                                      "state": "running"}]
    assert wait_until(lambda: ping(vm_lab, "ns2", str(nic(vm_lab, "vm1").ip), count=1) == 1, timeout=30)


def test_a_vm_the_host_cannot_hold_is_refused_and_nothing_is_left(vm_lab):
    with pytest.raises(ApiError) as refused:
        vm_lab.api().vm_action("huge", "start")
    assert refused.value.status == 507 and "cannot give vm huge 65536 MiB" in str(refused.value)
    conn = libvirt.open(vm_lab.hosts()["hv1"].libvirtd.uri)
    try:
        assert "huge" not in [d.name() for d in conn.listAllDomains()]
    finally:
        conn.close()
    assert state(vm_lab, "huge") == "absent"


def test_a_host_whose_libvirtd_is_down_gives_a_clear_error(vm_lab):
    vm_lab.stop_process("hv2/libvirtd")
    try:
        wait_until(lambda: vm_lab.api().status()["hosts"]["hv2"]["libvirt_connected"] is False, timeout=20)
        with pytest.raises(ApiError) as refused:
            vm_lab.api().vm_action("spare", "start")
        assert refused.value.status == 503 and "hv2's libvirtd" in str(refused.value)
        assert ping(vm_lab, "ns4", str(nic(vm_lab, "vm3").ip)) == 3  # its VM runs on without libvirtd
    finally:
        vm_lab.start_process("hv2/libvirtd")
    wait_until(lambda: vm_lab.api().status()["hosts"]["hv2"]["libvirt_connected"], timeout=20)
    assert state(vm_lab, "vm3") == "running"
    assert vm_lab.api().vm_action("spare", "start")["state"] == "running"
    vm_lab.api().vm_action("spare", "destroy")


def test_the_connectivity_matrix_includes_the_vms(vm_lab):
    cells = measure(vm_lab)
    assert not [c for c in cells if not c.ok], format_matrix(cells)
    assert {c.source.guest for c in cells} == {"vm1", "ns2", "vm3", "ns4"}  # not the stopped ones
    assert ("vm1", "ns2") in {(c.source.guest, c.target.guest) for c in cells if c.reached}


def test_sdnvirt_exec_is_the_same_command_for_netns_and_qemu_guests(vm_lab):
    sdnvirt = str(Path(sys.executable).parent / "sdnvirt")
    results = [subprocess.run([sdnvirt, "exec", "--lab", vm_lab.name, guest, "--", "sh", "-c", "echo hello; exit 3"],
                              capture_output=True, text=True, timeout=60) for guest in ("ns2", "vm1")]
    assert [(r.returncode, r.stdout) for r in results] == [(3, "hello\n"), (3, "hello\n")]


def test_no_socket_of_libvirtd_or_qemu_opens_to_another_user(vm_lab):
    """libvirtd's read-only socket is 0777 and QEMU's agent sockets follow the umask: the lab
    folder (0700) is what keeps other users out of them."""
    sockets = lab_sockets(vm_lab)
    names = {p.name for p in sockets}
    assert {"libvirt-sock", "libvirt-sock-ro", "libvirt-admin-sock", "vm1.agent.sock", "vm3.agent.sock"} <= names
    assert set(connect_as(NOBODY, sockets).values()) == {"EACCES"}


def refusal(call) -> tuple[int | None, str]:
    """The status and message the API refused a call with."""
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.status, str(refused.value)


def test_each_refusal_of_a_guest_request_names_the_real_object_at_fault(vm_lab):
    """Every 4xx about a guest or its migrations, asked of this lab's real guests, qemu and netns."""
    api = vm_lab.api()
    before = api.migrations()
    assert refusal(lambda: api.vm("nosuch")) == (404, "no guest named 'nosuch'")
    assert refusal(lambda: api.migrate("nosuch", "hv2")) == (404, "no guest named 'nosuch'")
    assert refusal(lambda: api.migrate("vm1", "hv9")) == (404, "no host named 'hv9'")
    assert refusal(lambda: api.migrate("vm1", "hv1")) == (409, "vm vm1 is on hv1 already")
    assert refusal(lambda: api.migrate("ns2", "hv1", offline=True)) == (422, "a netns guest has no offline migration")
    assert refusal(lambda: api.migration(999999)) == (404, "no migration 999999")
    assert refusal(lambda: api.cancel_migration(999999)) == (404, "no migration 999999")
    assert refusal(lambda: api.vm_action("vm1", "start")) == (409, "vm vm1 is already running on hv1")
    assert refusal(lambda: api.vm_action("vm1", "restore")) == (409, "vm vm1 has no saved state to restore")
    assert refusal(lambda: api.vm_action("ns2", "save")) == (422, "ns2 is a netns guest: it cannot save")
    assert refusal(lambda: api.console("ns2")) == (422, "ns2 is a netns guest: it has no console")
    assert api.migrations() == before  # none of it started anything
    assert (state(vm_lab, "vm1"), api.vm("ns2")["host"]) == ("running", "hv2")


def test_a_second_migration_of_a_migrating_vm_is_refused_and_a_cancel_after_the_end_changes_nothing(vm_lab):
    api = vm_lab.api()
    with slow_copy(vm_lab, "hv1", "vm1"):
        migration = api.migrate("vm1", "hv2")
        try:
            wait_for_state(vm_lab, migration["id"], "copying")
            assert refusal(lambda: api.migrate("vm1", "hv2")) == (
                409, f"vm vm1 is migrating already (migration {migration['id']})")
        finally:
            cancelled = api.cancel_migration(migration["id"])
    assert cancelled["result"] == "cancelled", cancelled
    assert api.cancel_migration(migration["id"]) == cancelled
    assert api.vm("vm1")["host"] == "hv1"
    # a netns guest's move is over in a moment: a cancel after it is answered with its end
    moved = api.migration(api.migrate("ns2", "hv1")["id"], wait=60)
    try:
        assert moved["result"] == "completed", moved
        assert api.cancel_migration(moved["id"]) == moved
    finally:
        api.migration(api.migrate("ns2", "hv2")["id"], wait=60)
    assert api.vm("ns2")["host"] == "hv2"


def cli(lab, *args: str) -> subprocess.CompletedProcess:
    """`sdnvirt ARGS --lab LAB` as a user runs it: never a traceback."""
    result = subprocess.run([str(Path(sys.executable).parent / "sdnvirt"), *args, "--lab", lab.name],
                            capture_output=True, text=True, timeout=200)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_the_vm_and_migrate_commands_on_real_guests(vm_lab):
    listed = {vm["name"]: (vm["kind"], vm["host"], vm["state"]) for vm in json.loads(cli(vm_lab, "vm", "list",
                                                                                           "--json").stdout)}
    assert (listed["vm1"], listed["ns2"]) == (("qemu", "hv1", "running"), ("netns", "hv2", "running"))
    try:
        assert cli(vm_lab, "vm", "suspend", "vm1").stdout == "vm vm1: paused on hv1\n"
    finally:
        assert cli(vm_lab, "vm", "resume", "vm1").stdout == "vm vm1: running on hv1\n"
    console = cli(vm_lab, "vm", "console", "vm1", "--lines", "5")
    assert console.returncode == 0 and 0 < len(console.stdout.splitlines()) <= 5
    for args, message in ((("vm", "restore", "vm1"), "vm vm1 has no saved state to restore"),
                          (("vm", "save", "ns2"), "ns2 is a netns guest: it cannot save"),
                          (("vm", "console", "ns2"), "ns2 is a netns guest: it has no console"),
                          (("migrate", "vm1", "--to", "hv9"), "no host named 'hv9'"),
                          (("migrate", "vm1", "--to", "hv1"), "vm vm1 is on hv1 already"),
                          (("migrate", "vm1", "--cancel"), "vm vm1 is not migrating")):
        refused = cli(vm_lab, *args)
        assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", f"sdnvirt: {message}\n"), args
    assert json.loads(cli(vm_lab, "migrations", "--json").stdout) == vm_lab.api().migrations()
