"""`sdnvirt image build|show`: the guest image qemu guests boot from."""

from __future__ import annotations

import json

from sdnvirt.compute.image import build_image, cached_image


def register(verbs) -> None:
    image = verbs.add_parser("image", help="the qemu guests' kernel and initramfs")
    sub = image.add_subparsers(dest="image_verb", required=True, metavar="ACTION")
    build = sub.add_parser("build", help="build it from Debian's packages (cached)")
    build.add_argument("--force", action="store_true", help="build even if the cached one is current")
    build.set_defaults(run=_build)
    show = sub.add_parser("show", help="what the cached image was built from")
    show.set_defaults(run=_show)


def _describe(image) -> str:
    return json.dumps({"kernel": str(image.kernel), "initramfs": str(image.initramfs),
                       **json.loads(image.manifest.to_json())}, indent=2)


def _build(args) -> int:
    print(_describe(build_image(force=args.force)))
    return 0


def _show(args) -> int:
    image = cached_image()
    if image is None:
        print("no current guest image; `sdnvirt image build` makes it")
        return 1
    print(_describe(image))
    return 0
