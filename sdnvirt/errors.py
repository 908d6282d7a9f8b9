"""What the controller's parts refuse or fail at, by kind, with no protocol in it.

A part says *why* it cannot do something (no such thing, not now, a host is
away, too slow, ...) and *what* is at fault (`field`: the VM, the host, the
migration); the API turns the kind into an HTTP status and the CLI into a
message and an exit status. Nothing below the API layer knows HTTP.
"""

from __future__ import annotations


class SdnvirtError(RuntimeError):
    """Something the controller cannot do; `field` names the part of the request at fault."""

    def __init__(self, message: str, field: str = "request"):
        super().__init__(message)
        self.field = field


class NotFound(SdnvirtError):
    """No such guest, host, migration, ..."""


class Invalid(SdnvirtError):
    """The request makes no sense for that object (e.g. saving a netns guest)."""


class Conflict(SdnvirtError):
    """Not in the object's present state (e.g. starting a running VM, migrating a migrating one)."""


class Insufficient(SdnvirtError):
    """A host cannot give what is asked (memory)."""


class Unavailable(SdnvirtError):
    """A host, daemon or switch the request needs is away now; trying later may work."""


class Failed(SdnvirtError):
    """A host or switch was asked and refused or failed (libvirt's or the switch's own words)."""


class TimedOut(SdnvirtError):
    """It did not happen within its deadline."""
