"""The guest image booted straight with qemu-system-x86_64 (TCG, no libvirt): console, network and agent.

The image is built once and cached, so reruns only boot. The guest's NIC
has a user-mode netdev with `restrict=on`: nothing reaches the outside or
the host's namespaces.
"""

from __future__ import annotations

import base64
import gzip
import re
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from netaddr import EUI, IPNetwork

from sdnvirt.compute.agent import PORT_NAME, REPLY_MARGIN, GuestAgent
from sdnvirt.compute.image import (
    CACHE_ENV,
    MODULE_LIST,
    GuestImage,
    ImageError,
    InitramfsEntry,
    build_image,
    cached_image,
    kernel_cmdline,
    newc_archive,
)

MAC_TEXT = "52:54:00:5d:00:01"  # as QEMU and the guest write it
MAC = EUI(MAC_TEXT)
ADDRESS = IPNetwork("10.0.0.11/24")
BOOT_TIMEOUT = 60  # seconds; a boot takes about 3 s under TCG here
READY = "SDNVIRT-GUEST: READY"
ERROR = "SDNVIRT-GUEST: ERROR"


@dataclass
class BootedGuest:
    console: Path
    agent: GuestAgent
    boot_seconds: float

    def interface(self) -> str:
        """The guest's name for the NIC with MAC."""
        for name, mac in re.findall(r"^\d+: (\S+?):.*\n\s+link/ether (\S+)", self.run("ip", "link"), re.MULTILINE):
            if EUI(mac) == MAC:
                return name
        raise AssertionError(f"no interface with MAC {MAC} in the guest")

    def run(self, *command: str) -> str:
        result = self.agent.exec(list(command), timeout=10)
        assert result.exit_status == 0, result
        return result.output.decode()


@pytest.fixture(scope="module")
def image() -> GuestImage:
    return build_image()


def test_a_second_build_reuses_the_cached_image(image: GuestImage):
    assert cached_image() == image
    assert build_image() == image


def test_build_says_when_apt_cannot_fetch_a_package(tmp_path, monkeypatch):
    apt_config = tmp_path / "apt.conf"
    apt_config.write_text('Acquire::http::Proxy "http://127.0.0.1:9/";\nAcquire::Retries "0";\n')  # nothing listens
    monkeypatch.setenv("APT_CONFIG", str(apt_config))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(ImageError, match="apt cannot fetch linux-image-") as failure:
        build_image()
    assert "127.0.0.1:9" in str(failure.value)
    assert list((tmp_path / "cache").iterdir()) == []


@contextmanager
def qemu(image: GuestImage, folder: Path, initramfs: Path | None = None) -> Iterator[subprocess.Popen]:
    """A guest with one virtio NIC and the agent channel; killed by its pid when the block ends."""
    with (folder / "qemu.log").open("w") as log:
        process = subprocess.Popen([
            "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "qemu64", "-m", "128",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-monitor", "none",
            "-serial", f"file:{folder / 'console.log'}",
            "-kernel", str(image.kernel), "-initrd", str(initramfs or image.initramfs),
            "-append", kernel_cmdline([(MAC, ADDRESS)]),
            "-device", "virtio-serial",
            "-chardev", f"socket,id=agent,path={folder / 'agent.sock'},server=on,wait=off",
            "-device", f"virtserialport,chardev=agent,name={PORT_NAME}",
            "-netdev", "user,id=n0,restrict=on",
            "-device", f"virtio-net-pci,netdev=n0,mac={MAC_TEXT},romfile=",
        ], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)


def wait_for_console(process: subprocess.Popen, console: Path, *markers: str) -> str:
    """The console text once it holds one of the markers."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        text = console.read_text(errors="replace") if console.exists() else ""
        if any(marker in text for marker in markers):
            return text
        assert process.poll() is None, f"qemu exited with {process.returncode}; console:\n{text}"
        time.sleep(0.05)
    raise AssertionError(f"none of {markers} on the console within {BOOT_TIMEOUT} s:\n{text}")


@pytest.fixture(scope="module")
def guest(image: GuestImage, tmp_path_factory) -> Iterator[BootedGuest]:
    folder = tmp_path_factory.mktemp("guest")
    started = time.monotonic()
    with qemu(image, folder) as process:
        wait_for_console(process, folder / "console.log", READY, ERROR)
        boot_seconds = time.monotonic() - started
        print(f"guest booted to READY in {boot_seconds:.1f} s")
        with GuestAgent(folder / "agent.sock") as agent:
            yield BootedGuest(folder / "console.log", agent, boot_seconds)


def test_guest_says_ready_with_its_address(guest: BootedGuest, record_property):
    record_property("boot_seconds", round(guest.boot_seconds, 2))
    console = guest.console.read_text(errors="replace")
    assert ERROR not in console
    assert f"{READY} {ADDRESS}" in console


def test_agent_answers_ping_with_its_version(guest: BootedGuest):
    assert guest.agent.ping(timeout=10) == "1"


def test_the_nic_with_the_mac_has_the_address_and_no_ipv6(guest: BootedGuest):
    interface = guest.interface()
    assert f"inet {ADDRESS} " in guest.run("ip", "address", "show", "dev", interface)
    assert "inet6" not in guest.run("ip", "address")
    assert guest.run("cat", f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6").strip() == "1"


def test_exec_gives_exit_status_and_combined_output(guest: BootedGuest):
    result = guest.agent.exec(["sh", "-c", "echo hi; echo oops >&2; exit 3"], timeout=10)
    assert (result.exit_status, result.output) == (3, b"hi\noops\n")


def test_exec_output_keeps_every_byte(guest: BootedGuest):
    every_byte = "".join(f"\\{value:03o}" for value in range(256))
    assert guest.agent.exec(["printf", every_byte], timeout=10).output == bytes(range(256))
    many_lines = guest.agent.exec(["seq", "1", "20000"], timeout=30).output
    assert many_lines == "".join(f"{n}\n" for n in range(1, 20001)).encode()


def test_exec_passes_arguments_as_they_are(guest: BootedGuest):
    arguments = ["a b", "'quoted'", "$HOME", "x" * 20000]
    assert guest.agent.exec(["printf", "%s|", *arguments], timeout=10).output == "|".join([*arguments, ""]).encode()


def test_exec_kills_a_command_at_its_timeout(guest: BootedGuest):
    started = time.monotonic()
    result = guest.agent.exec(["sleep", "60"], timeout=1)
    assert result.exit_status == 137  # SIGKILL
    assert time.monotonic() - started < 1 + REPLY_MARGIN


def test_agent_skips_stale_requests_and_garbage(guest: BootedGuest):
    guest.agent.close()  # QEMU serves one connection at a time
    with socket.socket(socket.AF_UNIX) as abandoned:
        abandoned.connect(str(guest.console.with_name("agent.sock")))
        stale = base64.b64encode(b"sleep 1; echo stale").decode()
        abandoned.sendall(f"\nREQ 0badc0de exec 5 {stale}\n".encode() + b"garbage \xff\x00 without an end")
        time.sleep(0.2)
    assert guest.agent.exec(["echo", "fresh"], timeout=10).output == b"fresh\n"


def test_agent_works_with_the_network_down(guest: BootedGuest):
    interface = guest.interface()
    guest.run("ip", "link", "set", interface, "down")
    assert "UP" not in guest.run("ip", "link", "show", "dev", interface).split(">")[0]
    assert guest.agent.exec(["echo", "still here"], timeout=10).output == b"still here\n"


def test_modules_loaded_out_of_order_fail_loudly(image: GuestImage, tmp_path):
    """The bug a fixed module list once caused: the guest must say so instead of looking booted."""
    modules = image.manifest.modules
    assert len(modules) > 1, "this kernel's image loads too few modules to get their order wrong"
    wrong_order = "".join(f"/{module}\n" for module in reversed(modules)).encode()
    overlay = newc_archive([InitramfsEntry(MODULE_LIST, stat.S_IFREG | 0o644, wrong_order)])
    initramfs = tmp_path / "initramfs.gz"
    initramfs.write_bytes(image.initramfs.read_bytes() + gzip.compress(overlay))  # the kernel unpacks both
    with qemu(image, tmp_path, initramfs) as process:
        console = wait_for_console(process, tmp_path / "console.log", f"{ERROR} network", READY)
    assert READY not in console
    assert f"{ERROR} module {Path(modules[-1]).name} did not load" in console
    assert f"{ERROR} network: nic0 has no interface with MAC {MAC_TEXT}" in console
