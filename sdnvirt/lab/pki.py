"""A lab's certificates, made with Open vSwitch's own PKI tool (ovs-pki), as on real hosts.

ovs-pki keeps two authorities: controllerca signs the controller's certificate,
which switches and OVSDB servers check against; switchca signs each host's,
which the controller checks against. A lab brought up with `--ssl` makes both
in its folder and one certificate per host and for the controller.

Each certificate's common name (CN) is exactly the name it was made for (the
host's name, or "controller"): ovs-pki appends " id:UUID" to it unless told
`--unique`. The controller accepts a host's bridge only with the certificate
the host inventory names, so hv2's certificate cannot stand in for hv1's.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from sdnvirt.lab.process import LabProcessError

CONTROLLER = "controller"
PKI_TIMEOUT = 60  # seconds for one ovs-pki command (it makes RSA keys)


@dataclass(frozen=True)
class Credentials:
    """What one end of an SSL connection presents, and what it trusts in the other."""

    private_key: Path
    certificate: Path
    peer_ca: Path  # the authority the other end's certificate must be signed by


@dataclass(frozen=True)
class LabPki:
    root: Path  # the lab's pki folder

    @property
    def _authorities(self) -> Path:
        return self.root / "authorities"

    def _ca(self, kind: str) -> Path:
        return self._authorities / f"{kind}ca" / "cacert.pem"

    def create(self, hosts: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._ovs_pki("init")
        self._sign(CONTROLLER, "controller")
        for host in hosts:
            self.add_host(host)

    def add_host(self, host: str) -> None:
        self._sign(host, "switch")

    def controller(self) -> Credentials:
        return Credentials(self._key(CONTROLLER), self._cert(CONTROLLER), self._ca("switch"))

    def host(self, host: str) -> Credentials:
        return Credentials(self._key(host), self._cert(host), self._ca("controller"))

    @staticmethod
    def certificate_name(host: str) -> str:
        """The common name in the host's certificate."""
        return host

    def _key(self, name: str) -> Path:
        return self.root / f"{name}-privkey.pem"

    def _cert(self, name: str) -> Path:
        return self.root / f"{name}-cert.pem"

    def _sign(self, name: str, kind: str) -> None:
        if not self._cert(name).exists():
            # relative: the name goes into the certificate's 64-byte CN, as it is (--unique)
            self._ovs_pki("--unique", "req+sign", name, kind)

    def _ovs_pki(self, *args: str) -> None:
        argv = ["ovs-pki", f"--dir={self._authorities}", f"--log={self.root / 'ovs-pki.log'}", *args]
        result = subprocess.run(argv, cwd=self.root, capture_output=True, text=True, timeout=PKI_TIMEOUT)
        if result.returncode != 0:
            raise LabProcessError(f"{' '.join(argv)} failed: {result.stderr.strip()} (see {self.root / 'ovs-pki.log'})")
