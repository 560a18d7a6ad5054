"""The autoscaler's contract: the labels an app asks with, and where its last decision is left.

Labels: `wharf.autoscale.<field>` (`target_rps`, `min`, `max`, ...; `LABEL_PREFIX`), written by the
spec's `autoscale:` shorthand and read by the autoscaler. Decisions: one Consul KV key per app,
`wharf/autoscale/decisions/<app id without its leading />`, holding the JSON of `record`: when, what
(`up`, `down`, `hold`, `skip`), the counts, the app's bounds, the rate it saw and why. The autoscaler
writes it every cycle; a reader takes an old `at` as a stopped autoscaler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["LABEL_PREFIX", "PREFIX", "autoscaled", "key", "pinned", "record"]

LABEL_PREFIX = "wharf.autoscale."
PREFIX = "wharf/autoscale/decisions/"
FIELDS = ("app", "at", "action", "current", "target", "recommendation", "min", "max", "rps", "target_rps",
          "reason")


def autoscaled(labels: Mapping[str, str]) -> bool:
    """Whether an app asks to be autoscaled (it carries `wharf.autoscale.target_rps`)."""
    return f"{LABEL_PREFIX}target_rps" in labels


def key(app_id: str) -> str:
    """The KV key of `app_id`'s last decision."""
    return PREFIX + app_id.lstrip("/")


def record(**values: Any) -> dict[str, Any]:
    """A decision as stored: exactly `FIELDS` (those not given are null)."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a decision field: {', '.join(sorted(unknown))}")
    return {name: values.get(name) for name in FIELDS}


def pinned(decision: Mapping[str, Any]) -> bool:
    """Whether the autoscaler holds the app at its maximum while it would add instances."""
    top, wanted, target = decision.get("max"), decision.get("recommendation"), decision.get("target")
    return top is not None and wanted is not None and target is not None and target >= top and wanted > top
