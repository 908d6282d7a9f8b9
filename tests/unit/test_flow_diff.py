"""The reconciler's diff: what to delete and what to add so the switch holds the desired flows."""

from sdnvirt.controller.fabric.flow import Output, flow
from sdnvirt.controller.fabric.sync import diff_flows

A = flow(0, 100, {"in_port": 1}, goto=10, cookie=1)
B = flow(30, 100, {"eth_dst": "02:00:00:00:00:01"}, actions=[Output(1)], cookie=2)
C = flow(30, 100, {"eth_dst": "02:00:00:00:00:02"}, actions=[Output(2)], cookie=3)


def installed(*flows):
    return {f.key: f for f in flows}


def test_nothing_to_do_when_the_switch_holds_exactly_the_desired_flows():
    assert len(diff_flows(installed(A, B), [A, B], [A, B])) == 0


def test_missing_flows_are_added_and_stale_ones_deleted():
    diff = diff_flows(installed(A, C), [A, C], [A, B])
    assert diff.adds == (B,) and diff.deletes == (C,)


def test_a_flow_whose_actions_or_cookie_changed_is_replaced_not_deleted():
    moved = flow(30, 100, {"eth_dst": "02:00:00:00:00:01"}, actions=[Output(7)], cookie=2)
    recookied = flow(0, 100, {"in_port": 1}, goto=10, cookie=9)
    diff = diff_flows(installed(A, B), [A, B], [recookied, moved])
    assert set(diff.adds) == {recookied, moved} and diff.deletes == ()


def test_only_the_old_flows_of_the_changed_owners_can_go():
    """A change of owner B's flows never deletes owner A's, even if the switch holds them."""
    diff = diff_flows(installed(A, B), [B], [C])
    assert diff.deletes == (B,) and diff.adds == (C,)


def test_a_flow_the_switch_lost_is_sent_again():
    diff = diff_flows(installed(A), [A, B], [A, B])
    assert diff.adds == (B,) and diff.deletes == ()
