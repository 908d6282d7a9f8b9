"""A migration's states, the moves between them, and how long each may last.

    requested -> preparing -> copying -> switching -> completed
         \\           \\          \\           \\
          `-----------`----------`-> cancelling -> cancelled | completed (too late) | failed | rolled-back
    any unfinished state -> failed | rolled-back

- requested: checked and recorded; nothing has happened yet.
- preparing: the destination is made ready (a qemu guest's libvirt job starts and the
  destination port is programmed; a netns guest's new link is plugged and programmed;
  an offline move shuts the VM down).
- copying: the guest's state goes over (memory, for a live qemu move).
- switching: the guest stopped on the source for the last time; the fabric points at the
  destination, and the guest resumes there.
- cancelling: someone asked to stop; the hypervisor is being told.
- completed: the guest runs on the destination and the fabric points there.
- cancelled: stopped on request; the guest runs on the source, as before.
- failed: it could not be done; the guest runs on the source, nothing was switched.
- rolled-back: it failed after something had changed (the fabric had switched, the VM
  had been shut down); that was undone and the guest runs on the source.

Every state that is not final has a deadline: a migration can never stay unfinished.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    REQUESTED = "requested"
    PREPARING = "preparing"
    COPYING = "copying"
    SWITCHING = "switching"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    ROLLED_BACK = "rolled-back"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset({State.COMPLETED, State.CANCELLED, State.FAILED, State.ROLLED_BACK})

ENDINGS = frozenset({State.FAILED, State.ROLLED_BACK})  # whatever went wrong, from any unfinished state
TRANSITIONS: dict[State, frozenset[State]] = {
    State.REQUESTED: frozenset({State.PREPARING, State.CANCELLING}) | ENDINGS,
    State.PREPARING: frozenset({State.COPYING, State.CANCELLING}) | ENDINGS,
    # libvirt may finish before its pause event is seen: straight to completed
    State.COPYING: frozenset({State.SWITCHING, State.CANCELLING, State.COMPLETED}) | ENDINGS,
    State.SWITCHING: frozenset({State.COMPLETED}) | ENDINGS,
    # too late to cancel: the hypervisor went on, switched and finished
    State.CANCELLING: frozenset({State.CANCELLED, State.SWITCHING, State.COMPLETED}) | ENDINGS,
}

# Seconds a migration may stay in each unfinished state before the watchdog ends it.
DEADLINES: dict[State, float] = {
    State.REQUESTED: 10.0,
    State.PREPARING: 60.0,
    State.COPYING: 600.0,
    State.SWITCHING: 30.0,
    State.CANCELLING: 30.0,
}


class TransitionError(RuntimeError):
    """A move the state machine does not allow (a bug, or a signal that came too late)."""


def check_transition(current: State, new: State) -> None:
    if new not in TRANSITIONS.get(current, frozenset()):
        raise TransitionError(f"a migration cannot go from {current} to {new}")
