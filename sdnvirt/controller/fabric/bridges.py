"""Every host's integration bridge: which one is connected, and keeping each in sync.

A bridge is known by the datapath id the controller gave it, so a connection
is matched to its host before anything is sent to it. Any change of desired
state asks every bridge's reconciler for a round; rounds that find nothing to
change send nothing.
"""

from __future__ import annotations

import logging
import threading

from sdnvirt.controller.fabric.channel import SwitchChannel
from sdnvirt.controller.fabric.compiler import compile_host
from sdnvirt.controller.fabric.flow import Flow
from sdnvirt.controller.fabric.pipeline import Pipeline
from sdnvirt.controller.fabric.sync import SwitchSync
from sdnvirt.controller.state import StateStore
from sdnvirt.vswitch.names import datapath_id

LOG = logging.getLogger(__name__)


class Fabric:
    def __init__(self, store: StateStore, pipeline: Pipeline):
        self.store = store
        self.pipeline = pipeline
        # Set once every host's OVSDB has been read: before that, a reconciler
        # would take ports it has not learned yet for ports that are gone.
        self.ready = threading.Event()
        topology = store.view().topology
        self._hosts_by_dpid = {datapath_id(topology.name, h): h for h in topology.hosts}
        self.syncs = {h: SwitchSync(h, self._compiler(h), self.ready) for h in sorted(topology.hosts)}
        self.unknown_switches = 0
        store.subscribe(self._desired_state_changed)

    def _compiler(self, host: str):
        def compile_flows() -> frozenset[Flow]:
            return compile_host(self.store.view(), host, self.pipeline)
        return compile_flows

    def host_of(self, dpid: int) -> str | None:
        return self._hosts_by_dpid.get(dpid)

    def switch_connected(self, channel: SwitchChannel) -> bool:
        host = self.host_of(channel.dpid)
        if host is None:
            self.unknown_switches += 1
            LOG.warning("ignoring switch %#x: not a bridge of this topology", channel.dpid)
            return False
        LOG.info("host %s: bridge connected (datapath %#x)", host, channel.dpid)
        self.syncs[host].attach(channel)
        return True

    def switch_disconnected(self, channel: SwitchChannel) -> None:
        host = self.host_of(channel.dpid)
        if host is not None:
            LOG.info("host %s: bridge disconnected", host)
            self.syncs[host].detach(channel)

    def _desired_state_changed(self) -> None:
        for sync in self.syncs.values():
            sync.request()

    def stop(self) -> None:
        for sync in self.syncs.values():
            sync.stop()
