"""How long from `vm start` until the VM answers a ping on its tenant network.

A lab with two hosts in one segment: eight qemu guests (left stopped) on one
host, a netns guest on the other that pings them. For 1 guest, and for 8
started together, the time from asking the controller to start until the
first answered ping from the other host; several runs, median and max.
The baseline, measured in the same run: the same image booted by plain
qemu-system-x86_64 (no libvirt, no fabric) until the guest prints READY on
its console. Prints one JSON object.

    .venv/bin/python bench/boot.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from netaddr import EUI, IPNetwork
from ruamel.yaml import YAML

from sdnvirt.compute.image import build_image, kernel_cmdline
from sdnvirt.lab import naming
from sdnvirt.lab.lab import Lab, running_labs
from sdnvirt.lab.paths import LabPaths
from sdnvirt.linux.netns import entering
from sdnvirt.model.loader import load_topology

LAB = "bootbench"
GUESTS = 8
TIMEOUT = 120.0


def topology_file(folder: Path) -> Path:
    data = {
        "name": LAB,
        "segments": {"rack1": {"subnet": "100.64.1.0/24"}},
        "hosts": {"hv1": {"segment": "rack1"}, "hv2": {"segment": "rack1"}},
        "tenants": {"blue": {"networks": {"web": {"subnet": "10.0.0.0/24"}}}},
        "vms": {"prober": {"host": "hv2", "nics": [{"network": "blue/web", "ip": "10.0.0.2"}]},
                **{f"vm{i}": {"host": "hv1", "kind": "qemu", "memory": 128, "autostart": False,
                              "nics": [{"network": "blue/web", "ip": f"10.0.0.{10 + i}"}]} for i in range(GUESTS)}},
    }
    path = folder / "boot.yaml"
    with path.open("w") as out:
        YAML().dump(data, out)
    return path


def answers(lab: Lab, address: str) -> bool:
    ping = entering(naming.guest_namespace(lab.name, "prober")) + ["ping", "-n", "-q", "-c", "1", "-W", "0.2", address]
    return subprocess.run(ping, capture_output=True, timeout=10).returncode == 0


def start_until_ping(lab: Lab, vm: str) -> float:
    """Seconds from asking for the start to the first answered ping."""
    address = str(lab.topology.guests[vm].nics[0].ip)
    began = time.monotonic()
    lab.api().vm_action(vm, "start")
    while time.monotonic() - began < TIMEOUT:
        if answers(lab, address):
            return time.monotonic() - began
    raise RuntimeError(f"{vm} did not answer within {TIMEOUT:.0f}s")


def start_together(lab: Lab, vms: list[str]) -> list[float]:
    with ThreadPoolExecutor(max_workers=len(vms)) as pool:
        times = list(pool.map(lambda vm: start_until_ping(lab, vm), vms))
    for vm in vms:
        lab.api().vm_action(vm, "destroy")
    return times


def plain_qemu_boot(folder: Path) -> float:
    """Seconds from starting QEMU by hand to the guest's READY line (no libvirt, no network)."""
    image = build_image()
    console = folder / "console.log"
    console.unlink(missing_ok=True)
    began = time.monotonic()
    process = subprocess.Popen([
        "qemu-system-x86_64", "-machine", "pc,accel=tcg", "-cpu", "qemu64", "-m", "128", "-nodefaults",
        "-no-user-config", "-nographic", "-monitor", "none", "-serial", f"file:{console}",
        "-kernel", str(image.kernel), "-initrd", str(image.initramfs),
        "-append", kernel_cmdline([(EUI("52:54:00:00:00:01"), IPNetwork("10.0.0.10/24"))]),
        "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,romfile=",
    ], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - began < TIMEOUT:
            if console.exists() and "SDNVIRT-GUEST: READY" in console.read_text(errors="replace"):
                return time.monotonic() - began
            time.sleep(0.02)
        raise RuntimeError("the plain QEMU guest did not boot")
    finally:
        process.kill()
        process.wait(timeout=30)


def summary(values: list[float]) -> dict:
    return {"median_s": round(statistics.median(values), 2), "max_s": round(max(values), 2), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if LAB in running_labs():
        print(f"lab {LAB} is up already; `sdnvirt lab down {LAB}` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = topology_file(folder)
        lab = Lab(load_topology(path), LabPaths.of(LAB))
        lab.up(path)
        try:
            vms = sorted(name for name in lab.topology.guests if name.startswith("vm"))
            one = [start_together(lab, [vms[0]])[0] for _ in range(args.runs)]
            eight = [t for _ in range(args.runs) for t in start_together(lab, vms)]
            baseline = [plain_qemu_boot(folder) for _ in range(args.runs)]
        finally:
            lab.down()
    print(json.dumps({
        "benchmark": "boot",
        "one_guest": summary(one),
        "eight_guests_together": summary(eight),
        "baseline_plain_qemu_to_ready": summary(baseline),
        "ratio_one_guest": round(statistics.median(one) / statistics.median(baseline), 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
