"""Compare the registrations wanted with those the agent holds; return the fixes, touching only our own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from registrator.model import Registered, Registration


@dataclass(frozen=True)
class RegistrationPlan:
    """What to do, in order: register, then drain/undrain (maintenance on/off), then deregister."""

    register: tuple[Registration, ...] = ()
    drain: tuple[str, ...] = ()
    undrain: tuple[str, ...] = ()
    deregister: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()  # wanted IDs held by a service someone else registered

    @property
    def empty(self) -> bool:
        return not (self.register or self.drain or self.undrain or self.deregister)

    def fixes(self) -> int:
        """How many changes the plan makes."""
        return len(self.register) + len(self.drain) + len(self.undrain) + len(self.deregister)


def reconcile(wanted: Iterable[Registration], registered: Mapping[str, Registered], owner: str) -> RegistrationPlan:
    """The changes that make the agent hold exactly `wanted` among the services `owner` registered.

    A service is ours when its Meta names `owner`; any other (another registrator's, a human's)
    is never changed, and a wanted ID it already holds is reported as a conflict instead.
    """
    register: list[Registration] = []
    drain: list[str] = []
    undrain: list[str] = []
    conflicts: list[str] = []
    wanted_ids: set[str] = set()
    for reg in wanted:
        if reg.id in wanted_ids:
            continue  # two ports asked for one ID (SERVICE_ID without a port): the first wins
        wanted_ids.add(reg.id)
        have = registered.get(reg.id)
        if have is not None and have.owner != owner:
            conflicts.append(reg.id)
            continue
        fresh = have is None or have.digest != reg.digest
        if fresh:
            register.append(reg)
        if reg.drained and (fresh or not have or not have.maintenance):
            drain.append(reg.id)
        elif not reg.drained and have is not None and have.maintenance:
            undrain.append(reg.id)
    deregister = [sid for sid, have in sorted(registered.items())
                  if have.owner == owner and sid not in wanted_ids]
    return RegistrationPlan(tuple(register), tuple(drain), tuple(undrain), tuple(deregister), tuple(conflicts))
