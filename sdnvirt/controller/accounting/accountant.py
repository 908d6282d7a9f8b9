"""The thread that keeps the accounts: it reads every host's counters every INTERVAL
seconds, and a host at once when a guest is about to leave it (its last figures
must be read while its ports still exist: a live migration's source right after
the switch-over, while QEMU finishes copying).

Accounts are written to the northbound database when an incarnation begins or
ends, every CHECKPOINT seconds while they count, and when the controller stops:
a controller started later goes on from there. What a source counted after the
last write and before it ended while no controller ran is the only thing lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from sdnvirt.compute.hypervisor import Hypervisor, HypervisorError
from sdnvirt.controller.accounting.ledger import Account, Ledger
from sdnvirt.controller.accounting.readings import domain_readings, drop_readings, port_readings
from sdnvirt.controller.fabric.bridges import Fabric
from sdnvirt.controller.fabric.channel import SwitchError
from sdnvirt.controller.fabric.cookies import owner_cookie
from sdnvirt.controller.fabric.pipeline import Pipeline
from sdnvirt.controller.state import FabricView

LOG = logging.getLogger(__name__)
INTERVAL = 1.0
CHECKPOINT = 10.0
READ_TIMEOUT = 2.0
PORT, VM = "port", "vm"  # the two ledgers, and the prefixes of their accounts' names in the database


@dataclass(frozen=True)
class Accounts:
    """The port accounts, the VM accounts and the memory figures (vm -> host -> bytes), as of one
    reading: `at`, when the last round over every host read the bridges (None before the first)."""

    ports: dict[str, Account]
    vms: dict[str, Account]
    memory: dict[str, dict[str, int]]
    at: float | None


class Accountant:
    def __init__(self, fabric: Fabric, view: Callable[[], FabricView], hypervisors: dict[str, Hypervisor],
                 pipeline: Pipeline, saved: dict[str, dict], save: Callable[[str, dict], None],
                 interval: float = INTERVAL):
        self._fabric = fabric
        self._view = view
        self._hypervisors = hypervisors
        self._security = pipeline.table("port_security")
        self._save = save
        self.interval = interval
        self.ledgers = {kind: Ledger({name.removeprefix(f"{kind} "): Account.from_json(data)
                                      for name, data in saved.items() if name.startswith(f"{kind} ")})
                        for kind in (PORT, VM)}
        self.memory: dict[str, dict[str, int]] = {}  # vm -> host -> bytes, as last read
        self.read_at: float | None = None  # epoch seconds when the last round over every host read the bridges
        self._lock = threading.Lock()  # the ledgers: this thread writes, readers copy
        self._asked: set[str] = set()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: dict[str, dict] = dict(saved)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="accounting", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2 * READ_TIMEOUT + 1) -> None:
        """Stop reading and write every account that changed since it was last written."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._checkpoint()

    def settle(self, ports: Iterable[str], vm: str | None = None) -> None:
        """Read, now, the hosts where these ports (and this VM's domain) count."""
        with self._lock:
            hosts = self.ledgers[PORT].hosts_of(ports) | (self.ledgers[VM].hosts_of([vm]) if vm else set())
            self._asked.update(hosts)
        self._wake.set()

    def accounts(self) -> Accounts:
        """Copies of the accounts, for reports, with the time of the reading they hold."""
        with self._lock:
            copy = {kind: {name: Account.from_json(account.to_json()) for name, account in ledger.accounts.items()}
                    for kind, ledger in self.ledgers.items()}
            return Accounts(copy[PORT], copy[VM], {vm: dict(hosts) for vm, hosts in self.memory.items()},
                            self.read_at)

    def _run(self) -> None:
        next_round, next_checkpoint = time.monotonic(), time.monotonic() + CHECKPOINT
        while not self._stopped.is_set():
            self._wake.wait(max(0.0, next_round - time.monotonic()))
            self._wake.clear()
            with self._lock:
                hosts, self._asked = self._asked, set()
            is_round = time.monotonic() >= next_round
            if is_round:
                hosts = set(self._fabric.syncs) | set(self._hypervisors)
                next_round = time.monotonic() + self.interval
            self.read(hosts, is_round)
            if time.monotonic() >= next_checkpoint:
                next_checkpoint = time.monotonic() + CHECKPOINT
                with self._lock:
                    self._checkpoint()

    def read(self, hosts: Collection[str], whole_round: bool = False) -> None:
        """Read the hosts' bridge counters, then their domain statistics (the switches first: a tap
        is gone soonest), and take them into the ledgers all at once. A round over every host
        sets `read_at` with them, to when the bridges were read: what a rate is divided by must
        be the time between the readings it compares, whatever the domains took."""
        switches = self._readings(self._switch_reading, hosts)
        switches_read_at = time.time()
        domains = self._readings(self._domain_reading, hosts) if switches is not None else None
        if domains is None:
            return  # the accountant stopped part way
        with self._lock:
            for observe in switches + domains:
                observe()
            if whole_round:
                self.read_at = switches_read_at

    def _readings(self, read: Callable[[str], Callable[[], None] | None],
                  hosts: Collection[str]) -> list[Callable[[], None]] | None:
        """One kind of reading of every host (None: the accountant stopped part way); a reading
        gone wrong must not end the accounting of every host."""
        observations = []
        for host in sorted(hosts):
            if self._stopped.is_set():
                return None
            try:
                observation = read(host)
            except Exception:
                LOG.exception("host %s: counters not read", host)
                continue
            if observation is not None:
                observations.append(observation)
        return observations

    def _switch_reading(self, host: str) -> Callable[[], None] | None:
        """Read a host's bridge counters; what takes them into the port ledger. A bridge that does not
        answer keeps its figures (None)."""
        sync = self._fabric.syncs.get(host)
        channel = sync.channel if sync is not None else None
        if channel is None or host not in self._view().ports:  # before its OVSDB told which port is whose
            return None
        try:
            ports = channel.port_stats(READ_TIMEOUT)
            flows = channel.flow_stats(READ_TIMEOUT, table=self._security.id)
        except SwitchError as error:
            LOG.debug("host %s: counters not read: %s", host, error)
            return None
        bindings = self._view().ports[host].bindings
        port_of_cookie = {owner_cookie(("port", b.port_id)): b.port_id for b in bindings}

        def observe() -> None:
            ledger = self.ledgers[PORT]
            changed = (ledger.observe(host, "port", port_readings(ports, bindings))
                       | ledger.observe(host, "port_security",
                                        drop_readings(flows, self._security.priority("violation"), port_of_cookie)))
            self._write_accounts(PORT, changed)
        return observe

    def _domain_reading(self, host: str) -> Callable[[], None] | None:
        """Read a host's domain statistics; what takes them into the VM ledger. A libvirtd away keeps
        its figures (None)."""
        hypervisor = self._hypervisors.get(host)
        if hypervisor is None or not hypervisor.connected:
            return None
        try:
            readings, memory = domain_readings(hypervisor.domain_stats())
        except HypervisorError as error:
            LOG.debug("host %s: domain statistics not read: %s", host, error)
            return None

        def observe() -> None:
            changed = self.ledgers[VM].observe(host, "domain", readings)
            for sizes in self.memory.values():
                sizes.pop(host, None)
            for vm, size in memory.items():
                self.memory.setdefault(vm, {})[host] = size
            self._write_accounts(VM, changed)
        return observe

    def _write_accounts(self, kind: str, names: set[str]) -> None:
        for name in names:
            self._write(f"{kind} {name}")

    def _checkpoint(self) -> None:
        for kind, ledger in self.ledgers.items():
            for name in ledger.accounts:
                self._write(f"{kind} {name}")

    def _write(self, name: str) -> None:
        """Write an account unless the database already holds these figures."""
        kind, _, account = name.partition(" ")
        data = self.ledgers[kind].accounts[account].to_json()
        if self._saved.get(name) != data:
            self._saved[name] = data
            self._save(name, data)
