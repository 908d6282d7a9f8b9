"""The pure parts of the guest image and its agent: module order, boot arguments, agent framing."""

from __future__ import annotations

import base64
import socket
import stat
import threading
from pathlib import Path

import pytest
from netaddr import EUI, IPNetwork

from sdnvirt.compute.agent import AgentError, CommandResult, GuestAgent, ReplyDecoder, encode_request
from sdnvirt.compute.image import (
    ImageError,
    InitramfsEntry,
    kernel_cmdline,
    module_load_order,
    module_name,
    newc_archive,
)

# Debian's 6.1.0-56 cloud kernel, as depmod wrote it (trimmed): virtio needs virtio_ring.
MODULES_DEP_6_1 = """\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko \
kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko \
kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
"""

# Debian's 6.12 cloud kernel: virtio, virtio_pci and virtio_console are built in, modules are xz-compressed.
MODULES_DEP_6_12 = """\
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
"""
BUILTIN_6_12 = {"virtio", "virtio_ring", "virtio_pci", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
                "virtio_console"}
WANTED = ("virtio_pci", "virtio_net", "virtio_console")


def loads_after_its_dependencies(order: list[str], modules_dep: str) -> bool:
    position = {module_name(path): index for index, path in enumerate(order)}
    for line in modules_dep.splitlines():
        module, _, needs = line.partition(":")
        if module_name(module) in position and any(
                position[module_name(need)] > position[module_name(module)] for need in needs.split()):
            return False
    return True


def test_modules_load_after_what_they_depend_on():
    order = module_load_order(MODULES_DEP_6_1, WANTED, builtin=set())
    assert sorted(map(module_name, order)) == sorted([
        "virtio_pci", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio", "virtio_ring",
        "virtio_net", "net_failover", "failover", "virtio_console"])
    assert loads_after_its_dependencies(order, MODULES_DEP_6_1)
    assert order.index("kernel/drivers/virtio/virtio_ring.ko") < order.index("kernel/drivers/virtio/virtio.ko")


def test_module_order_follows_modules_dep_not_the_order_of_its_lines():
    reordered = "\n".join(reversed(MODULES_DEP_6_1.splitlines()))
    order = module_load_order(reordered, reversed(WANTED), builtin=set())
    assert loads_after_its_dependencies(order, MODULES_DEP_6_1)


def test_built_in_modules_need_no_file():
    order = module_load_order(MODULES_DEP_6_12, WANTED, BUILTIN_6_12)
    assert order == ["kernel/net/core/failover.ko.xz", "kernel/drivers/net/net_failover.ko.xz",
                     "kernel/drivers/net/virtio_net.ko.xz"]


def test_a_missing_module_is_an_error():
    with pytest.raises(ImageError, match="no module virtio_console"):
        module_load_order(MODULES_DEP_6_12, WANTED, builtin={"virtio_pci"})


def test_a_dependency_without_its_own_line_or_a_cycle_is_an_error():
    with pytest.raises(ImageError, match="no line for it"):
        module_load_order("kernel/a.ko: kernel/b.ko\n", ["a"], builtin=set())
    with pytest.raises(ImageError, match="cycle"):
        module_load_order("kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n", ["a"], builtin=set())


def test_module_names_are_what_the_kernel_calls_them():
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz") == "virtio_rng"
    assert module_name("kernel/net/core/failover.ko.zst") == "failover"
    assert module_name("kernel/drivers/virtio/virtio.ko") == "virtio"


def test_kernel_cmdline_names_each_nic_by_mac_and_address():
    cmdline = kernel_cmdline([(EUI("52-54-00-AB-00-01"), IPNetwork("10.0.0.11/24")),
                              (EUI("52:54:00:ab:00:02"), IPNetwork("192.168.7.3/16"))])
    assert cmdline.split() == ["console=ttyS0", "quiet", "panic=-1",
                               "sdnvirt.nic0=52:54:00:ab:00:01,10.0.0.11/24",
                               "sdnvirt.nic1=52:54:00:ab:00:02,192.168.7.3/16"]


def test_kernel_cmdline_refuses_ipv6():
    with pytest.raises(ValueError, match="not IPv4"):
        kernel_cmdline([(EUI("52:54:00:ab:00:01"), IPNetwork("fd00::11/64"))])


def test_newc_archive_is_aligned_and_the_same_for_the_same_entries():
    entries = [InitramfsEntry("bin", stat.S_IFDIR | 0o755), InitramfsEntry("bin/x", stat.S_IFREG | 0o755, b"abc"),
               InitramfsEntry("dev/console", stat.S_IFCHR | 0o600, device=(5, 1))]
    archive = newc_archive(entries)
    assert archive == newc_archive(entries)
    assert archive.startswith(b"070701") and len(archive) % 4 == 0
    assert archive.count(b"070701") == 4  # three entries and the trailer
    assert b"TRAILER!!!\0" in archive


def test_requests_are_one_line_after_a_newline():
    request = encode_request("00ff", "exec", 2.5, b"echo 'a b'")
    assert request == b"\nREQ 00ff exec 3 " + base64.b64encode(b"echo 'a b'") + b"\n"
    assert encode_request("01", "ping", 0.2) == b"\nREQ 01 ping 1 -\n"


def reply(request_id: str, status: int, output: bytes) -> list[bytes]:
    encoded = base64.encodebytes(output).splitlines()  # wrapped, as busybox base64 writes it
    return [f"BEGIN {request_id}".encode(), *encoded, f"END {request_id} {status}".encode()]


def feed(decoder: ReplyDecoder, lines: list[bytes]) -> CommandResult | None:
    results = [decoder.feed(line) for line in lines]
    assert all(result is None for result in results[:-1])
    return results[-1]


def test_reply_decoder_returns_status_and_any_bytes():
    output = bytes(range(256)) * 3
    assert feed(ReplyDecoder("ab"), reply("ab", 3, output)) == CommandResult(3, output)
    assert feed(ReplyDecoder("ab"), [b"BEGIN ab", b"END ab 0"]) == CommandResult(0, b"")


def test_reply_decoder_skips_stale_replies_and_garbage():
    lines = [b"garbage \xff", *reply("0old", 0, b"stale"), b"", b"END ab 0", *reply("ab", 1, b"fresh")]
    assert feed(ReplyDecoder("ab"), lines) == CommandResult(1, b"fresh")


def test_reply_decoder_drops_a_reply_cut_short_by_another():
    lines = [b"BEGIN ab", base64.b64encode(b"half"), *reply("cd", 0, b"other"), b"END ab 0"]
    assert all(ReplyDecoder("ab").feed(line) is None for line in lines)


def test_reply_decoder_rejects_a_corrupt_body():
    with pytest.raises(AgentError, match="not valid base64"):
        feed(ReplyDecoder("ab"), [b"BEGIN ab", b"@@@@", b"END ab 0"])


def fake_guest(path: Path, answer) -> threading.Thread:
    """A guest agent that answers one connection's requests with answer(request_id, verb, payload)."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        with server, server.accept()[0] as connection, connection.makefile("rwb") as stream:
            for line in stream:
                words = line.split()
                if words[:1] == [b"REQ"]:
                    _, request_id, verb, _, payload = (word.decode() for word in words)
                    stream.write(b"".join(part + b"\n" for part in answer(request_id, verb, payload)))
                    stream.flush()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_agent_client_finds_its_reply_behind_stale_ones(tmp_path):
    def answer(request_id: str, verb: str, payload: str) -> list[bytes]:
        command = base64.b64decode(payload) if verb == "exec" else b""
        fresh = reply(request_id, 0, b"pong 1\n") if verb == "ping" else reply(request_id, 5, command)
        return [*reply("5ca1e", 0, b"old"), b"noise", *fresh]

    fake_guest(tmp_path / "agent.sock", answer)
    with GuestAgent(tmp_path / "agent.sock") as agent:
        assert agent.ping(timeout=5) == "1"
        assert agent.exec(["echo", "a b"], timeout=5) == CommandResult(5, b"echo 'a b'")


def test_agent_client_gives_up_when_the_guest_is_silent(tmp_path):
    fake_guest(tmp_path / "agent.sock", lambda *request: [])
    with GuestAgent(tmp_path / "agent.sock") as agent, pytest.raises(AgentError, match="did not answer ping"):
        agent.ping(timeout=0.3)


def test_agent_client_says_when_nothing_listens(tmp_path):
    with pytest.raises(AgentError, match="cannot talk to the guest agent"):
        GuestAgent(tmp_path / "nothing.sock").ping(timeout=1)
