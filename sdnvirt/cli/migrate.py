"""`sdnvirt migrate VM --to HOST` and `sdnvirt migrations`: moving guests, and the reports."""

from __future__ import annotations

import json

from sdnvirt.cli.lab import lab_named
from sdnvirt.client.api import ApiError
from sdnvirt.lab.lab import LabError
from sdnvirt.lab.migration_probe import migrate


def register(verbs) -> None:
    migrate = verbs.add_parser("migrate", help="move a guest to another host, live (or --offline)",
                               epilog="exit status: 0 the migration completed (with --cancel: it was cancelled); "
                                      "1 it did not (failed, rolled back, or too late to cancel), or the lab "
                                      "or controller failed; 2 bad arguments")
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


def _migrate(args) -> int:
    lab = lab_named(args.lab)
    if args.cancel:
        running = [m for m in lab.api().migrations() if m["vm"] == args.vm and m["result"] is None]
        if not running:
            raise LabError(f"vm {args.vm} is not migrating")
        report = lab.api().cancel_migration(running[0]["id"])
        print(json.dumps(report, indent=2) if args.json else describe(report))
        return 0 if report["result"] == "cancelled" else 1
    report = migrate(lab, args.vm, args.to, args.offline, args.probe)
    print(json.dumps(report, indent=2) if args.json else describe(report))
    return 0 if report["result"] == "completed" else 1


def describe(report: dict) -> str:
    def ms(value) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    began = report["started_at"]
    states = " -> ".join(f"{step['state']} {(step['at'] - began) * 1000:.0f} ms" for step in report["timeline"])
    lines = [f"migration {report['id']}: {report['vm']} {report['from']} -> {report['to']} ({report['kind']}): "
             f"{report['state']}" + (f" ({report['error']})" if report.get("error") else ""),
             f"  {states}",
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
