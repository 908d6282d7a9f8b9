"""Every host's integration bridge: which one is connected, and keeping each in sync.

A bridge is known by the datapath id the controller gave it, so a connection
is matched to its host before anything is sent to it; and by the certificate
it showed, which must be the one the host inventory names for that host (so
one host's certificate cannot take another host's place). A change of
desired state is applied at once to every bridge it may alter, recompiling
only the owners it touched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from sdnvirt.controller.fabric.channel import SwitchChannel, SwitchError
from sdnvirt.controller.fabric.compiler import compile_host, compile_owner
from sdnvirt.controller.fabric.pipeline import Pipeline
from sdnvirt.controller.fabric.sync import Compiler, StagedRound, SwitchSync
from sdnvirt.controller.state import OwnerKey, StateStore, ViewChange, same_for
from sdnvirt.model.topology import Topology
from sdnvirt.vswitch.names import datapath_id

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    """What applying a change took: flow-mods sent per host, and how long (milliseconds); with
    `wait`, when (time.monotonic()) the flow-mods of each bridge that got some were sent, when
    it confirmed them, and which bridges committed a round staged for the change."""

    flow_mods: dict[str, int]
    elapsed_ms: float
    sent: dict[str, float] = field(default_factory=dict)
    committed: dict[str, float] = field(default_factory=dict)
    staged: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StagedChange:
    """A change not made yet, staged on the bridges it would alter (`Fabric.stage`)."""

    change: ViewChange
    rounds: dict[str, StagedRound]

    def holds_for(self, change: ViewChange) -> bool:
        """The change made now compiles to the same flows as the one staged."""
        return (change.owners is not None and change.owners == self.change.owners
                and same_for(self.change.view, change.view, change.owners))


class Fabric:
    def __init__(self, store: StateStore, pipeline: Pipeline,
                 on_synced: Callable[[str, frozenset[OwnerKey]], None],
                 bridge_certificate: Callable[[str], str | None]):
        self.store = store
        self.pipeline = pipeline
        # Set once every host's OVSDB has been read: before that, a reconciler
        # would take ports it has not learned yet for ports that are gone.
        self._ready = threading.Event()
        self._on_synced = on_synced
        self._bridge_certificate = bridge_certificate  # host -> the name its bridge's certificate must carry
        self._hosts_by_dpid: dict[int, str] = {}
        self.syncs: dict[str, SwitchSync] = {}
        self._counting = threading.Lock()  # switches connect on os-ken's threads, several at once
        self.unknown_switches = 0
        self.wrong_certificate_switches = 0
        self.use_hosts(store.view().topology)

    def use_hosts(self, topology: Topology) -> None:
        """A reconciler for every host of the topology; those of hosts gone are stopped.
        Both maps are replaced whole: other threads read them without a lock."""
        syncs = {h: self.syncs.get(h) or SwitchSync(h, self._compiler(h), self._ready, self._on_synced)
                 for h in sorted(topology.hosts)}
        gone = [sync for host, sync in self.syncs.items() if host not in syncs]
        self._hosts_by_dpid = {datapath_id(topology.name, h): h for h in topology.hosts}
        self.syncs = syncs
        for sync in gone:
            sync.stop()

    def ports_known(self) -> None:
        """Every host's ports are known (or the wait for the rest ended): program the bridges."""
        self._ready.set()
        for sync in self.syncs.values():
            sync.wake()

    def is_ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _compiler(self, host: str) -> Compiler:
        def compile_owners(owners: frozenset[OwnerKey] | None):
            view = self.store.view()
            if owners is None:
                return compile_host(view, host, self.pipeline)
            return {owner: compile_owner(view, host, self.pipeline, owner) for owner in owners}
        return compile_owners

    def host_of(self, dpid: int) -> str | None:
        return self._hosts_by_dpid.get(dpid)

    def switch_connected(self, channel: SwitchChannel) -> bool:
        """Take a bridge that finished its handshake; False: refused (the caller disconnects it)."""
        host = self.host_of(channel.dpid)
        sync = self.syncs.get(host) if host is not None else None
        if sync is None:
            with self._counting:
                self.unknown_switches += 1
            LOG.warning("refusing switch %#x from %s: not a bridge of this topology", channel.dpid, channel.peer)
            return False
        wanted, shown = self._bridge_certificate(host), channel.peer.certificate_name
        if shown != wanted:
            with self._counting:
                self.wrong_certificate_switches += 1
            LOG.warning("refusing switch %#x from %s: host %s's bridge must show %s, it showed %s", channel.dpid,
                        channel.peer, host, _certificate(wanted), _certificate(shown))
            return False
        LOG.info("host %s: bridge connected (datapath %#x)", host, channel.dpid)
        sync.attach(channel)
        return True

    def switch_disconnected(self, channel: SwitchChannel) -> None:
        host = self.host_of(channel.dpid)
        sync = self.syncs.get(host) if host is not None else None
        if sync is not None:
            LOG.info("host %s: bridge disconnected", host)
            sync.detach(channel)

    def apply(self, change: ViewChange, wait: bool = False, staged: StagedChange | None = None) -> Applied:
        """Bring every bridge to the changed desired state, all at once; hosts where ports
        became active go first (a bridge on its own never loops a packet, see the
        compiler, so the others need not wait for them). With `wait`, answered when every
        bridge holds its flows; a bridge that failed is retrying in the background and shows
        it in its sync state (0 flow-mods here). With `staged` (and `wait`), the bundles staged
        for this change are committed where they still hold, and discarded elsewhere."""
        began = time.monotonic()
        sent: dict[str, int] = {}
        sent_at: dict[str, float] = {}
        committed: dict[str, float] = {}
        committed_staged: frozenset[str] = frozenset()
        if staged is not None and not (wait and staged.holds_for(change)):
            self.discard(staged)
            staged = None
        if change:
            ordered = sorted((s for s in self.syncs.values() if change.reaches(s.host)),
                             key=lambda s: s.host not in change.activated)
            if wait:
                # Every bridge's bundle goes out before the first answer is awaited; each
                # bridge's round is released when the block ends, whatever happens in it.
                with ExitStack() as rounds:
                    sending = [(sync, rounds.enter_context(sync.sending(
                        change.owners, staged.rounds.get(sync.host) if staged else None))) for sync in ordered]
                    for sync, round_ in sending:
                        sent[sync.host] = round_.wait()
                        if round_.committed is not None:
                            sent_at[sync.host], committed[sync.host] = round_.sent, round_.committed
                    committed_staged = frozenset(sync.host for sync, round_ in sending
                                                 if round_.staged and sent[sync.host])
            else:
                for sync in ordered:
                    sync.request(change.owners)
        return Applied(sent, (time.monotonic() - began) * 1000, sent_at, committed, committed_staged)

    def stage(self, change: ViewChange) -> StagedChange | None:
        """Stage a change not made yet (a switch-over, while the VM's memory is copied): each
        bridge it would alter holds an open bundle of the flow-mods, so that making the change
        is one commit message per bridge (`apply(..., staged=)`). Compiling, comparing and
        encoding all happen here. A bridge that cannot stage is left out (it makes its round
        as usual then); None when the change alters no owner's flows."""
        if not change or change.owners is None:
            return None
        rounds = {}
        for host, sync in self.syncs.items():
            if not change.reaches(host):
                continue
            compiled = {owner: compile_owner(change.view, host, self.pipeline, owner) for owner in change.owners}
            try:
                staged = sync.stage(compiled)
            except SwitchError as error:
                LOG.warning("host %s: a switch-over could not be staged: %s", host, error)
                continue
            if staged is not None:
                rounds[host] = staged
        return StagedChange(change, rounds)

    @staticmethod
    def discard(staged: StagedChange) -> None:
        """Drop a staged change's bundles (none of their flows is applied)."""
        for round_ in staged.rounds.values():
            round_.bundle.discard()

    def programmed(self, host: str) -> frozenset[OwnerKey]:
        """The owners whose flows the host's bridge holds now (none while it is not in sync)."""
        sync = self.syncs.get(host)
        return sync.programmed() if sync is not None else frozenset()

    def stop(self) -> None:
        for sync in self.syncs.values():
            sync.stop()


def _certificate(name: str | None) -> str:
    return "no certificate" if name is None else f"a certificate named {name!r}"
