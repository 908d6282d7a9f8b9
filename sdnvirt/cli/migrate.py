"""`sdnvirt migrate VM --to HOST` and `sdnvirt migrations [show ID]`: moving guests, the reports,
and a migration's flight recorder."""

from __future__ import annotations

import json
from pathlib import Path

from sdnvirt.cli.flight_chart import chart
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
    migrate.add_argument("--capture", action="store_true",
                         help="capture the guest's ports on both hosts for the flight recorder (migrations show)")
    migrate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    migrate.add_argument("--lab", help="the lab (default: the only one up)")
    migrate.set_defaults(run=_migrate)

    listing = verbs.add_parser("migrations", help="past and running migrations, with their reports; "
                                                  "`show ID`: one migration's timeline")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--lab", help="the lab (default: the only one up)")
    listing.set_defaults(run=_list)
    sub = listing.add_subparsers(dest="migrations_verb", metavar="ACTION")
    show = sub.add_parser("show", help="a migration's flight recorder: what happened when, on one clock, "
                                       "and what its gap is made of")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true", help="print the timeline as one JSON object")
    show.add_argument("--svg", metavar="FILE", type=Path, help="draw the timeline into an SVG file")
    show.add_argument("--lab", help="the lab (default: the only one up)")
    show.set_defaults(run=_show)


def _migrate(args) -> int:
    lab = lab_named(args.lab)
    if args.cancel:
        running = [m for m in lab.api().migrations() if m["vm"] == args.vm and m["result"] is None]
        if not running:
            raise LabError(f"vm {args.vm} is not migrating")
        report = lab.api().cancel_migration(running[0]["id"])
        print(json.dumps(report, indent=2) if args.json else describe(report))
        return 0 if report["result"] == "cancelled" else 1
    report = migrate(lab, args.vm, args.to, args.offline, args.probe, args.capture)
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


def _show(args) -> int:
    try:
        timeline = lab_named(args.lab).api().migration_timeline(args.id)
    except ApiError as error:
        raise LabError(str(error)) from None
    if args.svg is not None:
        args.svg.write_text(chart(timeline))
    print(json.dumps(timeline, indent=2) if args.json else describe_timeline(timeline))
    return 0


def describe_timeline(timeline: dict) -> str:
    """One line per state and mark, from the migration's start, then the gap decomposed."""
    lines = [f"migration {timeline['id']}: {timeline['vm']} {timeline['from']} -> {timeline['to']} "
             f"({timeline['kind']}): {timeline['state']}"]
    for entry in timeline["timeline"]:
        lines.append(f"  {entry['t_ms']:>11.3f} ms  {entry['by']:<10} {entry['host'] or '':<12} {entry['event']}"
                     + (f" {entry['detail']}" if entry["detail"] else ""))
    figures = {"guest pause": timeline["pause_ms"], "guest pause on the wire": timeline["wire_pause_ms"],
               "switch-over started after the pause": timeline["switchover_started_after_pause_ms"],
               "switch-over done on every bridge after the pause": timeline["switchover_after_pause_ms"],
               "network-added gap (probe's longest gap - the pause on the wire, or the guest's)":
                   timeline["network_added_gap_ms"]}
    lines += [f"  {name}: {'-' if value is None else f'{value:.1f} ms'}" for name, value in figures.items()]
    frames = {"frames into the source's port after the pause (lost)": timeline["frames_lost_in_source_tap"],
              "frames into the destination's port before the guest resumed":
                  timeline["frames_before_resume_in_destination_tap"],
              "probes lost elsewhere than in the source's port": timeline["probes_lost_elsewhere"]}
    lines += [f"  {name}: {'-' if value is None else value}" for name, value in frames.items()]
    if timeline["flight_dropped"]:
        lines.append(f"  ({timeline['flight_dropped']} marks beyond the recorder's bound were not kept)")
    return "\n".join(lines)
