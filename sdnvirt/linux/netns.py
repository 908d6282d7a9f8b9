"""Network namespaces, through pyroute2, and commands run inside them.

Every operation names the namespace it acts in; none of them can touch the
root namespace, which is the lab's first safety rule. The lab makes its hosts
and guests of these; the controller's netns guests are wired with them.
"""

from __future__ import annotations

import os
import subprocess

from pyroute2 import NetNS, netns

IFF_NOARP = 0x80


class CommandError(RuntimeError):
    """A command run in a namespace failed; the message carries what it said."""


class NetworkNamespace:
    """An open handle on one named namespace (pyroute2's NetNS)."""

    def __init__(self, name: str):
        self.name = name
        self._ipr = NetNS(name)

    def __enter__(self) -> NetworkNamespace:
        return self

    def __exit__(self, *exc: object) -> None:
        self._ipr.close()

    def _index(self, ifname: str) -> int:
        found = self._ipr.link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"no link {ifname} in namespace {self.name}")
        return found[0]

    def add_veth(self, ifname: str, peer_namespace: str, peer_ifname: str, mtu: int = 1500) -> None:
        """A veth pair made here with its peer born in the other namespace."""
        self._ipr.link("add", ifname=ifname, kind="veth", mtu=mtu,
                       peer={"ifname": peer_ifname, "net_ns_fd": peer_namespace, "mtu": mtu})

    def add_bridge(self, ifname: str, mtu: int = 1500) -> None:
        self._ipr.link("add", ifname=ifname, kind="bridge", mtu=mtu)

    def set_master(self, ifname: str, bridge: str) -> None:
        self._ipr.link("set", index=self._index(ifname), master=self._index(bridge))

    def bring_up(self, ifname: str, *, mac: str | None = None, mtu: int | None = None, arp: bool = True) -> None:
        if not arp:
            self._ipr.link("set", index=self._index(ifname), flags=IFF_NOARP, change=IFF_NOARP)
        changes: dict[str, object] = {"state": "up"}
        if mac:
            changes["address"] = mac
        if mtu:
            changes["mtu"] = mtu
        self._ipr.link("set", index=self._index(ifname), **changes)

    def mac(self, ifname: str) -> str:
        return self._ipr.get_links(self._index(ifname))[0].get("IFLA_ADDRESS")

    def add_address(self, ifname: str, address: str, prefixlen: int) -> None:
        self._ipr.addr("add", index=self._index(ifname), address=address, prefixlen=prefixlen)

    def has_link(self, ifname: str) -> bool:
        return bool(self._ipr.link_lookup(ifname=ifname))

    def delete_link(self, ifname: str) -> None:
        """Remove a link (a veth takes its peer along), if it is there."""
        found = self._ipr.link_lookup(ifname=ifname)
        if found:
            self._ipr.link("del", index=found[0])

    def add_route(self, destination: str, gateway: str) -> None:
        self._ipr.route("add", dst=destination, gateway=gateway)

    def delete_route(self, destination: str) -> None:
        self._ipr.route("del", dst=destination)

    def forget_neighbours(self) -> None:
        """Empty the ARP cache (the kernel's one table is shared by every namespace)."""
        for entry in self._ipr.get_neighbours():
            self._ipr.neigh("del", dst=entry.get("NDA_DST"), ifindex=entry["ifindex"])

    def loopback_up(self) -> None:
        self.bring_up("lo")


def make(name: str, *, forwarding: bool = False) -> None:
    """A namespace with loopback up and IPv6 off: it speaks only the addresses it is
    given (and sends no IPv6 chatter into bridges)."""
    netns.create(name)
    set_sysctl(name, "net.ipv6.conf.all.disable_ipv6", "1")
    set_sysctl(name, "net.ipv6.conf.default.disable_ipv6", "1")
    if forwarding:
        set_sysctl(name, "net.ipv4.ip_forward", "1")
    with NetworkNamespace(name) as ns:
        ns.loopback_up()


def remove(name: str) -> None:
    if name in netns.listnetns():
        netns.remove(name)


def exists(name: str) -> bool:
    return name in netns.listnetns()


def set_sysctl(namespace: str, key: str, value: str) -> None:
    """Write a per-namespace sysctl; /proc/sys/net shows the writer's namespace."""
    path = "/proc/sys/" + key.replace(".", "/")
    run_in_namespace(namespace, ["sh", "-c", f"echo {value} > {path}"])


def checksum_in_software(namespace: str, ifname: str) -> None:
    """Turn a link's transmit checksum offload off (and TSO with it, which needs it).

    A veth leaves the checksum of what it sends unfinished, for the kernel that
    receives it to complete; Open vSwitch's userspace datapath reads the frame
    from the peer as it is and forwards it so, and the guest at the far end drops
    every TCP segment and UDP datagram for a bad checksum (ICMP, checksummed in
    software anyway, still passes). With this off, the sender's kernel writes
    every checksum itself.
    """
    run_in_namespace(namespace, ["ethtool", "--offload", ifname, "tx", "off"])


def entering(namespace: str | None) -> list[str]:
    """The command prefix that runs a program in a lab namespace.

    nsenter joins only the network namespace; unlike `ip netns exec` it makes
    no mount namespace, which also works where / is not a mount point (chroots).
    """
    return ["nsenter", f"--net=/run/netns/{namespace}", "--"] if namespace else []


def run_in_namespace(namespace: str | None, argv: list[str], env: dict[str, str] | None = None,
                     timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a short command, in a lab namespace when one is named; CommandError when it fails,
    cannot start, or outlives `timeout` (one error for a caller to catch, whatever went wrong)."""
    full = entering(namespace) + argv
    merged = {**os.environ, **(env or {})}
    try:
        result = subprocess.run(full, env=merged, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CommandError(f"{' '.join(argv)} did not end within {timeout:.0f}s") from None
    except OSError as error:
        raise CommandError(f"{' '.join(argv)} could not start: {error}") from None
    if result.returncode != 0:
        raise CommandError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result
