"""A live migration as libvirt does it: peer to peer between two hosts' libvirtds.

The same call serves sdnvirt's migrations and the benchmark's baselines, so
the hypervisor side of every measurement is identical.
"""

from __future__ import annotations

import libvirt

from sdnvirt.compute.domain import DomainFiles, rehome

LIVE_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST
              | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
# libvirt's job statistics worth keeping in a report (times in ms, memory in bytes)
JOB_FIGURES = ("downtime", "downtime_net", "setup_time", "time_elapsed", "memory_total", "memory_processed",
               "memory_bps", "memory_dirty_rate", "memory_iteration")


def migrate_live(domain: libvirt.virDomain, address: str, files: DomainFiles) -> None:
    """Move the running domain to the libvirtd at `address`, its files where they are there.

    Blocks until libvirt is done; a failed or cancelled migration raises, with the
    domain still running where it was."""
    params = {
        # QEMU's stream goes to the same address; libvirt picks a free port there.
        libvirt.VIR_MIGRATE_PARAM_URI: f"tcp://{address}",
        libvirt.VIR_MIGRATE_PARAM_DEST_XML: rehome(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE), files),
        libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: rehome(
            domain.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE | libvirt.VIR_DOMAIN_XML_INACTIVE), files),
    }
    domain.migrateToURI3(f"qemu+tcp://{address}/system", params, LIVE_FLAGS)


def job_active(domain: libvirt.virDomain) -> bool:
    """Whether libvirt runs a job (a migration) for the domain on this host now."""
    return domain.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE


def completed_job(domain: libvirt.virDomain) -> dict:
    """libvirt's figures for the migration that brought the domain here."""
    stats = domain.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return {key: stats[key] for key in JOB_FIGURES if key in stats}
