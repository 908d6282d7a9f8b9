"""A flow dump as the controller asks a switch for it: the reply's parts are taken as bytes
before os-ken parses them, read into Flows, and whatever the switch answers instead (an error,
another reply, nothing) ends the wait with a SwitchError naming it."""

from __future__ import annotations

import threading

import pytest
from os_ken.ofproto import ofproto_v1_4 as ofp
from os_ken.ofproto import ofproto_v1_4_parser as parser

from sdnvirt.controller.fabric.channel import SwitchChannel, SwitchError
from sdnvirt.controller.fabric.compiler import compile_host

from helpers.fabric_views import PIPELINE, TOPOLOGY, view
from helpers.openflow_replies import flow_dump_part, flow_stats_entry

WAIT = 5.0  # seconds; every answer here comes at once
ALL_FLOWS = sorted({f for flows in compile_host(view(), min(TOPOLOGY.hosts), PIPELINE).values() for f in flows},
                   key=str)


class Datapath:
    """Takes requests, and answers each at once with what the test gave it."""

    ofproto = ofp
    ofproto_parser = parser
    id = 1

    def __init__(self):
        self.answers: list = []  # what the switch sends back, in order: raw bytes or parsed messages
        self.raw_taker = None
        self.channel: SwitchChannel | None = None

    def send_msg(self, msg) -> bool:
        threading.Thread(target=self._answer, args=(msg.xid,)).start()  # as a receive thread would
        return True

    def _answer(self, xid: int) -> None:
        for answer in self.answers:
            if isinstance(answer, bytes):
                message = bytearray(answer)
                message[4:8] = xid.to_bytes(4, "big")
                if not self.raw_taker(message[1], xid, message):
                    raise AssertionError("a flow dump's part went on to os-ken")
            else:
                answer.xid = xid
                self.channel.deliver(answer)


@pytest.fixture
def switch():
    datapath = Datapath()
    datapath.channel = SwitchChannel(datapath)
    return datapath


def test_a_dump_in_parts_is_read_whole(switch):
    entries = [flow_stats_entry(rule, packets=3) for rule in ALL_FLOWS]
    switch.answers = [flow_dump_part(entries[:5], more=True), flow_dump_part(entries[5:], more=False)]
    assert switch.channel.dump_flows(WAIT) == ALL_FLOWS


def test_a_refused_dump_says_so(switch):
    switch.answers = [parser.OFPErrorMsg(switch, type_=ofp.OFPET_BAD_REQUEST, code=ofp.OFPBRC_EPERM)]
    with pytest.raises(SwitchError, match="refused a flow dump"):
        switch.channel.dump_flows(WAIT)


def test_another_answer_where_a_dump_was_due_ends_the_wait(switch):
    port_stats = flow_dump_part([], more=False)
    port_stats = port_stats[:8] + ofp.OFPMP_PORT_STATS.to_bytes(2, "big") + port_stats[10:]
    switch.answers = [port_stats]
    with pytest.raises(SwitchError, match="where a flow dump's was due"):
        switch.channel.dump_flows(WAIT)


def test_a_dump_cut_short_is_refused(switch):
    switch.answers = [flow_dump_part([flow_stats_entry(ALL_FLOWS[0])], more=False)[:-4]]
    with pytest.raises(SwitchError, match="does not add up"):
        switch.channel.dump_flows(WAIT)


def test_a_dump_never_finished_times_out(switch):
    switch.answers = [flow_dump_part([flow_stats_entry(ALL_FLOWS[0])], more=True)]
    with pytest.raises(SwitchError, match="did not answer a flow dump"):
        switch.channel.dump_flows(0.2)
