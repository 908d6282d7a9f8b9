"""The boot image of `qemu` guests: Debian's cloud kernel plus busybox in an initramfs.

Both come from Debian packages that apt fetches as files (`apt-get download`,
`dpkg -x`) and never installs, so a host needs no kernel or busybox of its own
for its guests, and the image is the same on every host that sees the same
archive. Beside them the initramfs holds the guest init, the agent, and
sdnvirt-udp, a small C program compiled here with `gcc -static` (busybox has
no UDP tool; no static Debian binary offers a UDP echo and a checked sender).

The cache holds one folder per set of inputs (the two package versions and a
hash of the guest scripts, sdnvirt-udp's source and this builder), named by a hash of them, and a
`current` link to the newest. A folder is written once, under a temporary name
that is renamed into place, and never changed afterwards: a domain names its
kernel by path, and a guest that starts or migrates later must still find
exactly that kernel.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from netaddr import EUI, IPNetwork, mac_unix_expanded

CACHE_ENV = "SDNVIRT_IMAGE_CACHE"
DEFAULT_CACHE = Path("/var/cache/sdnvirt/image")
GUEST_SCRIPTS = Path(__file__).with_name("guest_init")
INIT_SCRIPT = GUEST_SCRIPTS / "init"
AGENT_SCRIPT = GUEST_SCRIPTS / "agent"
UDP_TOOL_SOURCE = GUEST_SCRIPTS / "sdnvirt-udp.c"  # busybox has no UDP tool; compiled statically at build

KERNEL_PACKAGES = r"^linux-image-[0-9].*-cloud-amd64$"  # an apt regex; meta packages are dropped after
BUSYBOX_PACKAGE = "busybox-static"
# What the guest needs; modules.dep says what they need in turn and in which order.
NEEDED_MODULES = ("virtio_pci", "virtio_net", "virtio_console")
MODULE_LIST = "etc/sdnvirt/modules"  # in the initramfs: module files, in the order the guest init loads them
AGENT = "bin/sdnvirt-agent"
UDP_TOOL = "bin/sdnvirt-udp"

KERNEL_FILE = "vmlinuz"
INITRAMFS_FILE = "initramfs.gz"
MANIFEST_FILE = "manifest.json"
CURRENT = "current"
COMMAND_TIMEOUT = 600  # seconds; the kernel package is tens of MB


class ImageError(Exception):
    pass


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str


@dataclass(frozen=True)
class ImageInputs:
    """Everything an image is made from: equal inputs give an equal image."""

    kernel_package: DebianPackage
    busybox_package: DebianPackage
    recipe_sha256: str  # the guest scripts and this builder

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ImageManifest:
    inputs: ImageInputs
    kernel_release: str
    modules: tuple[str, ...]  # as the guest loads them

    @classmethod
    def from_json(cls, text: str) -> ImageManifest:
        data = json.loads(text)
        inputs = data["inputs"]
        return cls(
            inputs=ImageInputs(
                kernel_package=DebianPackage(**inputs["kernel_package"]),
                busybox_package=DebianPackage(**inputs["busybox_package"]),
                recipe_sha256=inputs["recipe_sha256"],
            ),
            kernel_release=data["kernel_release"],
            modules=tuple(data["modules"]),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initramfs: Path
    manifest: ImageManifest


@dataclass(frozen=True)
class InitramfsEntry:
    """One file, folder, link or device node of the initramfs; `data` is a link's target."""

    path: str  # relative to the guest's /
    mode: int  # with the file type bits
    data: bytes = b""
    device: tuple[int, int] = (0, 0)


def _cache_folder() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def cached_image() -> GuestImage | None:
    """The image built last, if it was built from the guest scripts in this tree; asks apt nothing."""
    folder = _cache_folder() / CURRENT
    image = _load(folder)
    if image is None or image.manifest.inputs.recipe_sha256 != _recipe_sha256():
        return None
    return image


def build_image(force: bool = False) -> GuestImage:
    """The image for the newest kernel apt offers, built only when no folder for these inputs exists yet."""
    inputs = _resolve_inputs()
    cache = _cache_folder()
    folder = cache / inputs.key
    image = None if force else _load(folder)
    if image is None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ImageError(f"cannot make the image cache {cache} ({error}); {CACHE_ENV} names another") from error
        with tempfile.TemporaryDirectory(prefix=".build-", dir=cache) as scratch:
            staged = Path(scratch) / "image"
            staged.mkdir()
            _build(inputs, Path(scratch), staged)
            _move_into_place(staged, folder, replace=force)
        image = _load(folder)
        if image is None:
            raise ImageError(f"the image built into {folder} cannot be read back")
    _point_current(cache, folder)
    return image


def kernel_cmdline(nics: Sequence[tuple[EUI, IPNetwork]]) -> str:
    """The guest's boot arguments: its NICs' addresses travel here (there is no DHCP in the guest).

    `nics` gives (MAC, address with prefix length) in NIC index order.
    """
    arguments = ["console=ttyS0", "quiet", "panic=-1"]
    for index, (mac, address) in enumerate(nics):
        if address.version != 4:
            raise ValueError(f"nic{index}: {address} is not IPv4; the guest turns IPv6 off")
        arguments.append(f"sdnvirt.nic{index}={EUI(mac, dialect=mac_unix_expanded)},{address.ip}/{address.prefixlen}")
    return " ".join(arguments)


def module_name(path: str) -> str:
    """The name the kernel knows a module file by (`kernel/net/core/failover.ko.xz` is `failover`)."""
    return re.sub(r"\.ko(\.\w+)?$", "", path.rsplit("/", 1)[-1]).replace("-", "_")


def module_load_order(modules_dep: str, wanted: Iterable[str], builtin: Collection[str]) -> list[str]:
    """The module files to load, each after every module it depends on, as modules.dep says.

    A wanted module built into the kernel needs no file. The order comes only
    from modules.dep: a fixed list once left guests without a NIC when a new
    kernel added a dependency.
    """
    depends: dict[str, list[str]] = {}
    files: dict[str, str] = {}
    for number, line in enumerate(modules_dep.splitlines(), start=1):
        if not line.strip():
            continue
        module, colon, needs = line.partition(":")
        if not colon:
            raise ImageError(f"modules.dep line {number} has no ':': {line!r}")
        name = module_name(module.strip())
        files[name] = module.strip()
        depends[name] = [module_name(need) for need in needs.split()]
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ImageError(f"modules.dep has a dependency cycle through {name}")
        if name not in files:
            raise ImageError(f"modules.dep names {name} as a dependency but has no line for it")
        visiting.add(name)
        for need in depends[name]:
            visit(need)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        if name in files:
            visit(name)
        elif name not in builtin:
            raise ImageError(f"the kernel has no module {name}, neither built in nor in modules.dep")
    return [files[name] for name in order]


def newc_archive(entries: Iterable[InitramfsEntry]) -> bytes:
    """A cpio archive in the "newc" format the kernel unpacks, the same bytes for the same entries.

    Written here rather than by the cpio tool because it needs device nodes
    (/dev/console) that an unprivileged build could not create on disk.
    """
    archive = bytearray()
    trailer = InitramfsEntry("TRAILER!!!", 0)
    for inode, entry in enumerate([*entries, trailer], start=1):
        name = entry.path.encode() + b"\0"
        fields = (
            0 if entry is trailer else inode, entry.mode, 0, 0, 2 if stat.S_ISDIR(entry.mode) else 1, 0,
            len(entry.data), 0, 0, *entry.device, len(name), 0,
        )
        archive += b"070701" + b"".join(b"%08X" % value for value in fields) + name
        archive += b"\0" * (-len(archive) % 4)
        archive += entry.data
        archive += b"\0" * (-len(archive) % 4)
    return bytes(archive)


def _recipe_sha256() -> str:
    """A hash of what, besides the packages, decides the image's content."""
    digest = hashlib.sha256()
    for source in (INIT_SCRIPT, AGENT_SCRIPT, UDP_TOOL_SOURCE, Path(__file__)):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


def _load(folder: Path) -> GuestImage | None:
    try:
        manifest = ImageManifest.from_json((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    image = GuestImage(folder.resolve() / KERNEL_FILE, folder.resolve() / INITRAMFS_FILE, manifest)
    return image if image.kernel.is_file() and image.initramfs.is_file() else None


def _run(argv: list[str], failure: str, cwd: Path | None = None) -> str:
    """The command's output; ImageError saying `failure` and why when it does not succeed."""
    try:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ImageError(f"{failure}: {argv[0]} could not run: {error}") from error
    if result.returncode != 0:
        raise ImageError(f"{failure}: {' '.join(argv)} exited with {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def _resolve_inputs() -> ImageInputs:
    """The newest cloud kernel and the busybox apt would fetch now."""
    shown = _run(["apt-cache", "show", "--no-all-versions", KERNEL_PACKAGES, BUSYBOX_PACKAGE],
                 "apt cannot say which kernel and busybox packages it offers")
    kernels: list[DebianPackage] = []
    busybox = None
    for stanza in shown.split("\n\n"):
        fields = dict(re.findall(r"^([\w-]+): ?(.*)$", stanza, re.MULTILINE))
        if "Package" not in fields:
            continue
        package = DebianPackage(fields["Package"], fields["Version"])
        if package.name == BUSYBOX_PACKAGE:
            busybox = package
        elif "linux-image-" not in fields.get("Depends", ""):  # a meta package depends on the real one
            kernels.append(package)
    if not kernels:
        raise ImageError(f"apt offers no kernel package matching {KERNEL_PACKAGES} (run apt-get update?)")
    if busybox is None:
        raise ImageError(f"apt offers no {BUSYBOX_PACKAGE} package (run apt-get update?)")
    return ImageInputs(functools.reduce(_newer, kernels), busybox, _recipe_sha256())


def _newer(one: DebianPackage, other: DebianPackage) -> DebianPackage:
    compared = subprocess.run(["dpkg", "--compare-versions", other.version, "gt", one.version], timeout=COMMAND_TIMEOUT)
    return other if compared.returncode == 0 else one


def _fetch(package: DebianPackage, scratch: Path) -> Path:
    """Download and unpack a package; the folder it was unpacked into."""
    folder = scratch / package.name
    folder.mkdir()
    # The scratch folder is root's alone; apt's download user could not write to it.
    _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{package.name}={package.version}"],
         f"apt cannot fetch {package.name} {package.version}", cwd=folder)
    debs = list(folder.glob("*.deb"))
    if len(debs) != 1:
        raise ImageError(f"apt-get download {package.name}={package.version} left {len(debs)} .deb files")
    root = folder / "root"
    _run(["dpkg", "-x", str(debs[0]), str(root)], f"cannot unpack {debs[0].name}")
    return root


def _build(inputs: ImageInputs, scratch: Path, output: Path) -> None:
    kernel_root = _fetch(inputs.kernel_package, scratch)
    busybox_root = _fetch(inputs.busybox_package, scratch)
    releases = [path.name for path in (kernel_root / "lib/modules").glob("*") if path.is_dir()]
    if len(releases) != 1:
        raise ImageError(f"{inputs.kernel_package.name} holds {len(releases)} module folders, expected one")
    release = releases[0]
    modules = kernel_root / "lib/modules" / release
    # Debian generates modules.dep when a kernel is installed; generate it the same way here.
    _run(["depmod", "-b", str(kernel_root), release], f"cannot compute modules.dep of {release} (is kmod installed?)")
    builtin = {module_name(line) for line in (modules / "modules.builtin").read_text().split()}
    load_order = module_load_order((modules / "modules.dep").read_text(), NEEDED_MODULES, builtin)
    udp_tool = scratch / "sdnvirt-udp"
    _run(["gcc", "-static", "-O2", "-o", str(udp_tool), str(UDP_TOOL_SOURCE)],
         f"cannot compile {UDP_TOOL_SOURCE.name} (are gcc and libc6-dev installed?)")
    entries = [
        *_busybox_entries(busybox_root / "bin/busybox"),
        *_module_entries(modules, release, load_order),
        InitramfsEntry("init", stat.S_IFREG | 0o755, INIT_SCRIPT.read_bytes()),
        InitramfsEntry(AGENT, stat.S_IFREG | 0o755, AGENT_SCRIPT.read_bytes()),
        InitramfsEntry(UDP_TOOL, stat.S_IFREG | 0o755, udp_tool.read_bytes()),
        InitramfsEntry("dev/console", stat.S_IFCHR | 0o600, device=(5, 1)),
        *(InitramfsEntry(folder, stat.S_IFDIR | 0o755) for folder in ("proc", "sys", "tmp", "run")),
    ]
    shutil.copyfile(kernel_root / "boot" / f"vmlinuz-{release}", output / KERNEL_FILE)
    initramfs = newc_archive(_with_parent_folders(entries))
    (output / INITRAMFS_FILE).write_bytes(gzip.compress(initramfs, compresslevel=9, mtime=0))
    loaded = tuple(_guest_module_path(release, path) for path in load_order)
    (output / MANIFEST_FILE).write_text(ImageManifest(inputs, release, loaded).to_json())


def _busybox_entries(busybox: Path) -> list[InitramfsEntry]:
    """busybox and a link for each of its applets, where busybox itself would install them."""
    applets = _run([str(busybox), "--list-full"], "cannot list busybox's applets").split()
    links = [
        InitramfsEntry(applet, stat.S_IFLNK | 0o777, b"/bin/busybox") for applet in applets if applet != "bin/busybox"
    ]
    return [InitramfsEntry("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes()), *links]


def _module_entries(modules: Path, release: str, load_order: list[str]) -> list[InitramfsEntry]:
    """The module files, uncompressed for busybox's insmod, and the list the guest init loads them by."""
    entries = [
        InitramfsEntry(_guest_module_path(release, path), stat.S_IFREG | 0o644, _uncompressed(modules / path))
        for path in load_order
    ]
    listing = "".join(f"/{_guest_module_path(release, path)}\n" for path in load_order)
    return [*entries, InitramfsEntry(MODULE_LIST, stat.S_IFREG | 0o644, listing.encode())]


def _guest_module_path(release: str, path: str) -> str:
    """Where a module lies in the initramfs: as in the package, but uncompressed."""
    uncompressed = re.sub(r"(?<=\.ko)\.\w+$", "", path)
    return f"lib/modules/{release}/{uncompressed}"


def _uncompressed(module: Path) -> bytes:
    if module.suffix == ".xz":
        return lzma.decompress(module.read_bytes())
    if module.suffix == ".gz":
        return gzip.decompress(module.read_bytes())
    if module.suffix == ".zst":
        try:
            return subprocess.run(["zstd", "-dc", str(module)], capture_output=True, check=True,
                                  timeout=COMMAND_TIMEOUT).stdout
        except (OSError, subprocess.SubprocessError) as error:
            raise ImageError(f"cannot decompress {module.name} (is zstd installed?): {error}") from error
    if module.suffix == ".ko":
        return module.read_bytes()
    raise ImageError(f"module {module.name} is compressed in a way the guest image cannot unpack")


def _with_parent_folders(entries: list[InitramfsEntry]) -> list[InitramfsEntry]:
    """The entries, each after the folders that hold it, sorted so equal inputs give equal bytes."""
    by_path = {entry.path: entry for entry in entries}
    for entry in entries:
        parent = Path(entry.path).parent
        while parent != Path("."):
            by_path.setdefault(str(parent), InitramfsEntry(str(parent), stat.S_IFDIR | 0o755))
            parent = parent.parent
    return [by_path[path] for path in sorted(by_path)]


def _move_into_place(staged: Path, folder: Path, replace: bool) -> None:
    """Rename a built folder into the cache; when a concurrent build got there first, keep that one."""
    if replace and folder.exists():
        old = staged.with_name("replaced")
        folder.rename(old)
    try:
        staged.rename(folder)
    except OSError as error:
        if _load(folder) is None:
            raise ImageError(f"cannot move the new image into {folder}: {error}") from error


def _point_current(cache: Path, folder: Path) -> None:
    """Atomically; left alone when right already, so a cache hit needs no write access."""
    current = cache / CURRENT
    if current.is_symlink() and os.readlink(current) == folder.name:
        return
    link = cache / f".{CURRENT}-{os.getpid()}"
    link.unlink(missing_ok=True)
    link.symlink_to(folder.name)
    link.replace(current)
