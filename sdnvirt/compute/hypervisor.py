"""One host's libvirtd, as the controller holds it: a connection and its domains' events.

libvirt delivers events through an event loop the process runs once, on a
thread of its own; the connection is kept alive with keepalives and opened
again when libvirtd goes away and comes back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import libvirt
import libvirt_qemu

from sdnvirt.errors import Failed, Unavailable

LOG = logging.getLogger(__name__)
RECONNECT_DELAY = 1.0
KEEPALIVE_INTERVAL = 2  # seconds between keepalive probes
KEEPALIVE_COUNT = 3  # unanswered probes before the connection counts as lost
LISTED = -1  # not an event: the domain as a (re)connection listed it
REBOOTED = -2  # libvirt reports a reboot apart from the lifecycle events (no state changes)
# libvirt reports every reset of QEMU, and one reboot of a guest is two resets (seen here 78 ms
# apart on every reboot: SeaBIOS resets the machine once more when it finds itself warm-booted).
# Resets this close to a reported one are its echo: a guest cannot boot and reboot again so soon.
REBOOT_ECHO = 5.0
# QEMU's own events a migration's flight recorder keeps: they carry QEMU's timestamp of the
# moment itself (STOP is the pause's first instant), where libvirt's lifecycle events carry none.
QEMU_EVENTS = r"^(STOP|RESUME|MIGRATION|MIGRATION_PASS)$"
REGEX = libvirt_qemu.VIR_CONNECT_DOMAIN_QEMU_MONITOR_EVENT_REGISTER_REGEX

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "unknown",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting-down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut-off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}

_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pm-suspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
    REBOOTED: "rebooted",
}

_event_loop_lock = threading.Lock()
_event_loop_running = False


@contextmanager
def libvirt_errors(name: str) -> Iterator[None]:
    """libvirt's refusals as Failed, with libvirt's own words."""
    try:
        yield
    except libvirt.libvirtError as error:
        raise Failed(f"vm {name}: {error.get_error_message()}", "vm") from None


class HypervisorError(Unavailable):
    """The host's libvirtd is away; the message says which and why."""


@dataclass(frozen=True)
class DomainEvent:
    host: str
    domain: str
    uuid: str
    state: str  # one of _STATES' values, read from libvirt when the event came
    event: int  # libvirt's VIR_DOMAIN_EVENT_* number, LISTED or REBOOTED
    detail: int
    received: float  # time.monotonic() when the event arrived

    @property
    def name(self) -> str:
        """The event, as a word."""
        return _EVENTS.get(self.event, f"event-{self.event}")

    @property
    def resumed(self) -> bool:
        return self.event == libvirt.VIR_DOMAIN_EVENT_RESUMED

    @property
    def rebooted(self) -> bool:
        return self.event == REBOOTED

    @property
    def suspended(self) -> bool:
        return self.event == libvirt.VIR_DOMAIN_EVENT_SUSPENDED

    @property
    def paused_for_migration(self) -> bool:
        """The source has stopped the VM to send the last of its memory: the downtime begins."""
        return self.suspended and self.detail == libvirt.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED


@dataclass(frozen=True)
class QemuEvent:
    """One of QEMU_EVENTS, as QEMU stamped it."""

    host: str
    domain: str
    name: str  # QEMU's: STOP, RESUME, MIGRATION, MIGRATION_PASS
    at: float  # epoch seconds, QEMU's own clock, when it happened
    data: dict  # QEMU's details: {"status": ...} for MIGRATION, {"pass": N} for MIGRATION_PASS
    received: float  # time.monotonic() when the event arrived


def libvirt_uri(socket: Path) -> str:
    """A libvirtd reached through its unix socket."""
    return f"qemu+unix:///system?socket={socket}"


def state_name(state: int) -> str:
    return _STATES.get(state, "unknown")


def _run_event_loop() -> None:
    global _event_loop_running
    with _event_loop_lock:
        if _event_loop_running:
            return
        libvirt.virEventRegisterDefaultImpl()
        _event_loop_running = True

    def loop() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=loop, name="libvirt-events", daemon=True).start()


class Hypervisor:
    """`on_event` gets every lifecycle event and every reboot (a guest that panics restarts
    without a lifecycle event: the reboot is the only trace it leaves); `on_connected` gets, at
    every (re)connection, every domain the host has then (as LISTED events), so what happened
    while the connection was down is read again rather than missed; `on_qemu_event` gets
    QEMU_EVENTS as QEMU stamped them."""

    def __init__(self, host: str, uri: str, on_event: Callable[[DomainEvent], None],
                 on_connected: Callable[[str, list[DomainEvent]], None], on_qemu_event: Callable[[QemuEvent], None]):
        self.host = host
        self.uri = uri
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_qemu_event = on_qemu_event
        self._conn: libvirt.virConnect | None = None
        self._callbacks: list[int] = []
        self._qemu_callbacks: list[int] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._reboots: dict[str, float] = {}  # domain UUID -> when its last reboot was reported
        _run_event_loop()

    @property
    def connected(self) -> bool:
        conn = self._conn
        return bool(conn is not None and conn.isAlive())

    def connect_forever(self) -> None:
        """Keep a connection open (a controller thread runs this until stop())."""
        while not self._stopped.is_set():
            if not self.connected:
                try:
                    self._open()
                    LOG.info("host %s: libvirtd %s connected", self.host, self.uri)
                except libvirt.libvirtError as error:
                    LOG.debug("host %s: libvirtd: %s", self.host, error)
            self._stopped.wait(RECONNECT_DELAY)

    def _open(self) -> None:
        self._close()  # the old connection and its callback: no events from it any more
        conn = libvirt.open(self.uri)
        try:
            conn.setKeepAlive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT)
            callbacks = [conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle,
                                                     None),
                         conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, self._reboot, None)]
            qemu_callbacks = self._register_qemu_events(conn)
            domains = [self._event(domain, LISTED, 0) for domain in conn.listAllDomains()]
        except libvirt.libvirtError:
            _close_quietly(conn, [], [])
            raise
        with self._lock:
            self._conn, self._callbacks, self._qemu_callbacks = conn, callbacks, qemu_callbacks
        self._on_connected(self.host, domains)

    def _register_qemu_events(self, conn: libvirt.virConnect) -> list[int]:
        """QEMU's own events, for the flight recorder only: a libvirtd that refuses them (its access
        policy, say) still gives every lifecycle event, which is all the controller acts on."""
        try:
            return [libvirt_qemu.qemuMonitorEventRegister(conn, None, QEMU_EVENTS, self._qemu, None, REGEX)]
        except libvirt.libvirtError as error:
            LOG.warning("host %s: libvirtd gives no QEMU monitor events (%s): migrations' flight recorders "
                        "will lack QEMU's own marks", self.host, error.get_error_message())
            return []

    def _close(self) -> None:
        with self._lock:
            conn, callbacks, qemu_callbacks = self._conn, self._callbacks, self._qemu_callbacks
            self._conn, self._callbacks, self._qemu_callbacks = None, [], []
        if conn is not None:
            _close_quietly(conn, callbacks, qemu_callbacks)

    def _lifecycle(self, conn, domain, event, detail, opaque) -> None:
        if conn is self._conn:  # never one from a connection already given up
            self._on_event(self._event(domain, event, detail))

    def _reboot(self, conn, domain, opaque) -> None:
        if conn is not self._conn:
            return
        now, uuid = time.monotonic(), domain.UUIDString()
        if now - self._reboots.get(uuid, now - REBOOT_ECHO) >= REBOOT_ECHO:
            self._reboots[uuid] = now
            self._on_event(self._event(domain, REBOOTED, 0))

    def _qemu(self, conn, domain, name, seconds, micros, details, opaque) -> None:
        if conn is not self._conn:
            return
        try:
            data = json.loads(details) if details else {}
        except ValueError:
            data = {}  # QEMU's details are JSON; anything else is no detail at all
        self._on_qemu_event(QemuEvent(self.host, domain.name(), name, seconds + micros / 1e6,
                                      data if isinstance(data, dict) else {}, time.monotonic()))

    def _event(self, domain, event: int, detail: int) -> DomainEvent:
        received = time.monotonic()
        try:
            state = state_name(domain.state()[0])
        except libvirt.libvirtError:
            state = "undefined"  # gone between the event and the question
        return DomainEvent(self.host, domain.name(), domain.UUIDString(), state, event, detail, received)

    def connection(self) -> libvirt.virConnect:
        conn = self._conn
        if conn is None or not conn.isAlive():
            raise HypervisorError(f"host {self.host}'s libvirtd ({self.uri}) is not reachable", "host")
        return conn

    def domain(self, name: str) -> libvirt.virDomain | None:
        try:
            return self.connection().lookupByName(name)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HypervisorError(f"host {self.host}: {error.get_error_message()}", "host") from None

    def domain_stats(self) -> list[tuple[str, int, dict]]:
        """Every running domain's statistics (libvirt's names: cpu.time, balloon.current, block.N.rd.bytes, ...)
        as (name, QEMU's domain id, stats). A domain busy with a job (a migration) gives what it can
        without waiting for it."""
        wanted = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON
                  | libvirt.VIR_DOMAIN_STATS_BLOCK)
        try:
            return [(domain.name(), domain.ID(), stats)
                    for domain, stats in self.connection().getAllDomainStats(
                        wanted, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
                        | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)]
        except libvirt.libvirtError as error:
            raise HypervisorError(f"host {self.host}: {error.get_error_message()}", "host") from None

    def free_memory_mib(self) -> int:
        return self.connection().getFreeMemory() // (1024 * 1024)

    def stop(self) -> None:
        self._stopped.set()
        self._close()


def _close_quietly(conn: libvirt.virConnect, callbacks: list[int], qemu_callbacks: list[int]) -> None:
    try:
        for callback in callbacks:
            conn.domainEventDeregisterAny(callback)
        for callback in qemu_callbacks:
            libvirt_qemu.qemuMonitorEventDeregister(conn, callback)
        conn.close()
    except libvirt.libvirtError:
        pass  # a connection that broke: closing it is all that is left to do
