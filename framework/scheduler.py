"""The pymesos side: callbacks only translate to events for the leader's loop; nothing is decided here.

The one exception is safety: when the event stream closes or the master reports an error (such as
"Framework failed over": another scheduler subscribed as this framework), the driver is stopped at
once, so pymesos cannot re-subscribe on its own and take the framework back. The leader's loop
decides whether to start a new driver, after checking that it still leads, and whether to keep
the FrameworkID (not when the master answers that the framework was removed).
"""

from __future__ import annotations

import queue
from typing import Any

from pymesos import Scheduler

Event = tuple[Any, ...]
REMOVED = "Framework has been removed"  # Mesos's ERROR to a SUBSCRIBE with a torn-down or expired FrameworkID


def framework_removed(message: str) -> bool:
    """Whether an ERROR event says the master removed the framework: its FrameworkID is of no more use."""
    return message.strip() == REMOVED


class Adapter(Scheduler):  # type: ignore[misc]
    """A `pymesos.interface.Scheduler` feeding `events`."""

    def __init__(self, events: queue.Queue[Event]) -> None:
        self.events = events

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.events.put(("subscribed", driver, str(framework_id["value"])))

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.events.put(("subscribed", driver, str(driver.framework_id)))

    def disconnected(self, driver: Any) -> None:
        driver.stop(failover=True)
        self.events.put(("disconnected", driver))

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802 - pymesos API
        self.events.put(("offers", driver, list(offers)))

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:  # noqa: N802 - pymesos API
        pass  # an ACCEPT of a rescinded offer comes back as TASK_LOST (invalid offers), which requeues

    def statusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802 - pymesos API
        self.events.put(("update", driver, status))

    def error(self, driver: Any, message: str) -> None:
        driver.stop(failover=True)
        self.events.put(("error", driver, message))
