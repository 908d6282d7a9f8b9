"""One lab host's own libvirtd, in the host's network namespace and a private mount namespace.

A privileged libvirtd keeps its state in fixed places (/run/libvirt,
/var/lib/libvirt, /etc/libvirt, ...), so each host's libvirtd gets its own
mount namespace where those places are bind mounts of the host's folder in
the lab, and where /var/run/openvswitch is the host's OVS run folder (libvirt
runs ovs-vsctl itself to plug a VM). Its unix socket is in the lab folder,
outside the private mounts, so the controller and the CLI reach it; it
listens on TCP on the host's underlay address for migrations.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

from sdnvirt.compute.hypervisor import libvirt_uri
from sdnvirt.lab.paths import HostPaths
from sdnvirt.lab.process import start_background, start_time, stop
from sdnvirt.lab.record import LabRecord, ProcessRecord
from sdnvirt.vswitch.names import INTEGRATION_BRIDGE
from sdnvirt.vswitch.ports import READY

START_TIMEOUT = 30.0
# libvirtd probes every QEMU binary of the machine before it answers (8 s for the two of
# Debian's qemu-system-x86 here) and keeps what it learnt in /var/cache/libvirt, which is each
# lab host's own: so the hosts share what one of them learnt. libvirt checks each file against
# the binary, itself, the kernel and the CPU, and probes again what no longer holds.
CAPABILITIES_CACHE = Path("/var/cache/sdnvirt/libvirt-qemu-capabilities")
ANSWER_TIMEOUT = 5.0  # seconds libvirtd has to answer `lab down` before it counts as hung
STOP_TIMEOUT = 30.0  # seconds to stop a host's VMs
READY_TIMEOUT = 10  # seconds a starting VM waits for its ports to be programmed
TCP_PORT = 16509

# Where libvirtd looks -> the host's folder that stands in for it.
PRIVATE_MOUNTS = {
    "/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/cache/libvirt": "cache",
    "/var/log/libvirt": "log",
    "/etc/libvirt": "etc",
}


# libvirt runs /etc/libvirt/hooks/qemu DOMAIN OPERATION SUB-OPERATION EXTRA with the
# domain's XML on stdin; "started" comes once QEMU exists (its taps plugged into
# OVS) but before its CPUs run, for a start, a restore and an incoming migration
# alike. Waiting there means no VM ever runs where its ports are not programmed.
READY_HOOK = f"""#!/bin/sh
# sdnvirt: a VM runs here only once the controller has programmed its ports on {INTEGRATION_BRIDGE}.
[ "$2" = started ] || exit 0
for dev in $(grep -o "<target dev='[^']*'" | cut -d"'" -f2); do
    [ "$(ovs-vsctl --timeout=5 iface-to-br "$dev" 2>/dev/null)" = {INTEGRATION_BRIDGE} ] || continue
    ovs-vsctl --timeout={READY_TIMEOUT} wait-until Interface "$dev" external_ids:{READY}=true ||
        {{ echo "sdnvirt: the controller did not program $dev within {READY_TIMEOUT}s" >&2; exit 1; }}
done
"""


class LibvirtdError(RuntimeError):
    pass


class HostLibvirtd:
    def __init__(self, host: str, namespace: str, paths: HostPaths, address: str):
        self.host = host
        self.namespace = namespace
        self.paths = paths
        self.address = address

    @property
    def uri(self) -> str:
        return libvirt_uri(self.paths.libvirt_socket)

    def start(self, record: LabRecord) -> None:
        self._write_config()
        mounts = [f"mount --bind {shlex.quote(str(self.paths.libvirt / folder))} {target}"
                  for target, folder in PRIVATE_MOUNTS.items()]
        mounts.append(f"mount --bind {shlex.quote(str(self.paths.ovs_run))} /var/run/openvswitch")
        # sysfs as this network namespace shows it (libvirt reads its taps there)
        mounts.append("mount -t sysfs sysfs /sys")
        targets = " ".join(list(PRIVATE_MOUNTS) + ["/var/run/openvswitch"])
        script = (f"set -e; mkdir -p {targets}; " + "; ".join(mounts)
                  + f"; exec libvirtd --listen -f {self.paths.libvirt / 'etc' / 'libvirtd.conf'}"
                  + f" -p {self.paths.libvirtd_pidfile}")
        record.add_process(start_background(
            f"{self.host}/libvirtd", self.namespace,
            ["unshare", "--mount", f"--propagation={mount_propagation()}", "--", "sh", "-c", script],
            self.paths.libvirtd_pidfile, self.paths.logs / "libvirtd.stderr"))
        self._wait_until_up()
        _copy_capabilities(self._capabilities, CAPABILITIES_CACHE)

    @property
    def _capabilities(self) -> Path:
        return self.paths.libvirt / "cache" / "qemu" / "capabilities"

    def _write_config(self) -> None:
        for folder in list(PRIVATE_MOUNTS.values()) + ["sock"]:
            (self.paths.libvirt / folder).mkdir(parents=True, exist_ok=True)
        self.paths.vms.mkdir(parents=True, exist_ok=True)
        etc = self.paths.libvirt / "etc"
        shutil.copytree("/etc/libvirt", etc, dirs_exist_ok=True)
        (etc / "libvirtd.conf").write_text(
            f'unix_sock_dir = "{self.paths.libvirt_socket.parent}"\n'
            'unix_sock_rw_perms = "0700"\n'
            'auth_unix_rw = "none"\n'
            'auth_unix_ro = "none"\n'
            "listen_tls = 0\n"
            "listen_tcp = 1\n"
            f'listen_addr = "{self.address}"\n'
            f'tcp_port = "{TCP_PORT}"\n'
            'auth_tcp = "none"\n'  # lab only: the underlay is inside the lab's namespaces
            f'log_outputs = "3:file:{self.paths.logs / "libvirtd.log"}"\n')
        _copy_capabilities(CAPABILITIES_CACHE, self._capabilities)
        hooks = etc / "hooks"
        hooks.mkdir(exist_ok=True)
        (hooks / "qemu").write_text(READY_HOOK)
        (hooks / "qemu").chmod(0o755)
        (etc / "qemu.conf").write_text(
            'stdio_handler = "file"\n'  # no virtlogd
            'security_driver = "none"\n'
            "dynamic_ownership = 0\n"
            "namespaces = []\n"
            "cgroup_controllers = []\n"  # lab hosts share one machine's cgroups; no per-VM groups
            'user = "root"\n'
            'group = "root"\n')

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        error = "no socket yet"
        while time.monotonic() < deadline:
            if self.paths.libvirt_socket.is_socket():
                try:
                    answer = subprocess.run(self.virsh("version"), capture_output=True, text=True,
                                            timeout=ANSWER_TIMEOUT)
                    if answer.returncode == 0:
                        return
                    error = answer.stderr.strip()
                except subprocess.TimeoutExpired:
                    error = f"no answer within {ANSWER_TIMEOUT:.0f}s"
            time.sleep(0.05)
        raise LibvirtdError(f"libvirtd of {self.host} did not answer within {START_TIMEOUT:.0f}s ({error}); "
                            f"see {self.paths.logs / 'libvirtd.log'}")

    def virsh(self, *command: str) -> list[str]:
        """A virsh command line for this libvirtd: run in a process of its own, which can be ended
        when libvirtd does not answer (libvirt's client waits for an answer without end)."""
        return ["virsh", "--quiet", "-c", self.uri, *command]


@cache
def mount_propagation() -> str:
    """`private`, so libvirtd's bind mounts never show in the root mount namespace.

    Where / is not a mount point (a chroot) its propagation cannot be changed;
    keeping it unchanged is safe only when no mount there propagates.
    """
    if subprocess.run(["unshare", "--mount", "--propagation=private", "true"], capture_output=True).returncode == 0:
        return "private"
    shared = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if "shared:" in line.split(" - ")[0] and not line.split()[4].startswith("/run/netns")]
    if shared:
        raise LibvirtdError(f"cannot keep libvirtd's mounts private: / is not a mount point and "
                            f"{', '.join(shared)} propagate mounts")
    return "unchanged"


def stop_domains(libvirtd: HostLibvirtd, timeout: float = STOP_TIMEOUT) -> None:
    """Stop every VM this libvirtd runs: through libvirt while it answers, then any QEMU that is
    left by the pid file it keeps (QEMU outlives a libvirtd that died or hangs).

    A stopped libvirtd accepts a connection and never answers: virsh asks, within a deadline.
    """
    try:
        listed = subprocess.run(libvirtd.virsh("list", "--name"), capture_output=True, text=True,
                                timeout=ANSWER_TIMEOUT)
        running = listed.stdout.split() if listed.returncode == 0 else []
        if running:
            subprocess.run(libvirtd.virsh("; ".join(f"destroy {name}" for name in running)), capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        pass  # hung: its QEMUs are stopped by pid below
    for pidfile in (libvirtd.paths.libvirt / "run" / "qemu").glob("*.pid"):
        _stop_orphan_qemu(pidfile, timeout)


def _stop_orphan_qemu(pidfile: Path, timeout: float) -> None:
    """A QEMU whose libvirtd died: stopped only if the pid is still that QEMU."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):  # gone, or a pid file QEMU is still writing
        return
    if b"-name" not in cmdline or f"guest={pidfile.stem}".encode() not in b" ".join(cmdline):
        return
    began = start_time(pid)
    if began is not None:
        stop(ProcessRecord(f"qemu {pidfile.stem}", pid, began, str(pidfile)), timeout)


def _copy_capabilities(source: Path, target: Path) -> None:
    """libvirt's QEMU capability files from one cache folder into another, each replaced whole
    (a libvirtd of another lab may be reading it). A cache that cannot be read or written costs
    only a probe."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        for file in source.glob("*.xml"):
            handle, partial = tempfile.mkstemp(dir=target, prefix=f".{file.name}.")  # mode 0600
            try:
                with os.fdopen(handle, "wb") as copy, file.open("rb") as original:
                    shutil.copyfileobj(original, copy)
                os.replace(partial, target / file.name)
            finally:
                Path(partial).unlink(missing_ok=True)  # left only by a copy that failed
    except OSError:
        pass
