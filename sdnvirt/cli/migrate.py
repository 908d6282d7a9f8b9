"""`sdnvirt migrate VM --to HOST` and `sdnvirt migrations`: moving guests, and the reports."""

from __future__ import annotations

import json
import time

from sdnvirt.cli.lab import lab_named
from sdnvirt.client.api import ApiError
from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab, LabError
from sdnvirt.lab.migration_probe import MigrationProbe
from sdnvirt.model.topology import GuestKind

WAIT_STEP = 30.0  # seconds per long poll
MIGRATION_TIMEOUT = 600.0
PROBE_TAIL = 1.0  # seconds the probe goes on after the migration, to see traffic settle


def register(verbs) -> None:
    migrate = verbs.add_parser("migrate", help="move a guest to another host, live (or --offline)")
    migrate.add_argument("vm")
    target = migrate.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="HOST", help="the destination host")
    target.add_argument("--cancel", action="store_true", help="cancel the VM's migration under way")
    migrate.add_argument("--offline", action="store_true", help="shut down, move, start")
    migrate.add_argument("--probe", metavar="GUEST", help="a netns guest that pings the VM every 5 ms meanwhile")
    migrate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    migrate.add_argument("--lab", help="the lab (default: the only one up)")
    migrate.set_defaults(run=_migrate)

    listing = verbs.add_parser("migrations", help="past and running migrations, with their reports")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--lab", help="the lab (default: the only one up)")
    listing.set_defaults(run=_list)


def probe_target(lab: Lab, vm: str, probe: str) -> str:
    """The VM's address on the first network it shares with the probe guest."""
    guest, prober = lab.topology.guests.get(vm), lab.topology.guests.get(probe)
    if guest is None or prober is None:
        raise LabError(f"no guest named {vm if guest is None else probe!r}")
    if prober.kind != GuestKind.NETNS:
        raise LabError(f"the probe must be a netns guest; {probe} is {prober.kind.value}")
    networks = {nic.network for nic in prober.nics}
    shared = next((nic for nic in guest.nics if nic.network in networks), None)
    if shared is None:
        raise LabError(f"{probe} shares no network with {vm}: it cannot probe it")
    return str(shared.ip)


def run_migration(lab: Lab, vm: str, destination: str, offline: bool = False, probe: str | None = None) -> dict:
    """Migrate, with a probe if asked; the report, probe figures included."""
    api = lab.api()
    watcher = MigrationProbe(naming.guest_namespace(lab.name, probe), probe_target(lab, vm, probe)) if probe else None
    migration = None
    try:
        migration = api.migrate(vm, destination, offline)
        if migration["kind"] == "netns":
            lab.move_guest(vm, destination, migration["id"])
        deadline = time.monotonic() + MIGRATION_TIMEOUT
        while migration["result"] == "running" and time.monotonic() < deadline:
            migration = api.migration(migration["id"], wait=WAIT_STEP)
    finally:
        if watcher is not None:
            time.sleep(PROBE_TAIL)
            figures = watcher.stop()
            if migration is not None:
                migration = api.attach_probe(migration["id"], figures)
    return migration


def _migrate(args) -> int:
    lab = lab_named(args.lab)
    if args.cancel:
        running = [m for m in lab.api().migrations() if m["vm"] == args.vm and m["result"] == "running"]
        if not running:
            raise LabError(f"vm {args.vm} is not migrating")
        print(json.dumps(lab.api().cancel_migration(running[0]["id"])) if args.json
              else f"cancelling the migration of {args.vm}")
        return 0
    report = run_migration(lab, args.vm, args.to, args.offline, args.probe)
    print(json.dumps(report, indent=2) if args.json else describe(report))
    return 0 if report["result"] == "completed" else 1


def describe(report: dict) -> str:
    def ms(value) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    lines = [f"migration {report['id']}: {report['vm']} {report['from']} -> {report['to']} ({report['kind']}): "
             f"{report['result']}" + (f" ({report['error']})" if report.get("error") else ""),
             f"  hypervisor downtime {ms(report['hypervisor_downtime_ms'])}, total {ms(report['total_ms'])}",
             f"  switch-over {ms(report['switchover_ms'])} after {report['trigger'] or 'no signal'}"
             f" ({report['switchover_flow_mods'] or 0} flow-mods)"
             + ("" if report["switchover_after_resume_ms"] is None
                else f", {ms(report['switchover_after_resume_ms'])} after the VM resumed")]
    if report["probe_sent"] is not None:
        lines.append(f"  probe every {report['probe_interval_ms']:g} ms: {report['probe_sent']} sent, "
                     f"{report['probe_lost']} lost, {report['probe_duplicates']} duplicated, "
                     f"longest gap {ms(report['probe_max_gap_ms'])}")
    return "\n".join(lines)


def _list(args) -> int:
    try:
        reports = lab_named(args.lab).api().migrations()
    except ApiError as error:
        raise LabError(str(error)) from None
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print("\n".join(describe(r) for r in reports) or "no migrations yet")
    return 0
