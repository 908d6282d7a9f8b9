"""Bindings and tunnels are recognised by external_ids, never by interface names."""

from sdnvirt.vswitch.ports import Binding, TunnelPort, host_ports


def test_interfaces_become_bindings_and_tunnels():
    ports = host_ports("hv1", [
        ("tap1", 3, {"iface-id": "p1", "attached-mac": "02:AA:00:00:00:01", "vm-id": "vm1", "iface-status": "active"}),
        ("whatever", 4, {"iface-id": "p2", "attached-mac": "02:aa:00:00:00:02"}),
        ("vx-hv2", 1, {"sdnvirt-remote-host": "hv2"}),
        ("br-int", 65534, {}),
    ])
    assert ports.bindings == (Binding("p1", "hv1", "tap1", 3, "02:aa:00:00:00:01", "vm1"),
                              Binding("p2", "hv1", "whatever", 4, "02:aa:00:00:00:02", ""))
    assert ports.tunnels == (TunnelPort("hv1", "hv2", "vx-hv2", 1),)


def test_inactive_or_unattached_interfaces_are_not_bound():
    ports = host_ports("hv1", [
        ("tap1", 3, {"iface-id": "p1", "iface-status": "inactive"}),
        ("tap2", -1, {"iface-id": "p2"}),
        ("tap3", 0, {"iface-id": "p3"}),
    ])
    assert ports.bindings == ()
