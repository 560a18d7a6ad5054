"""Placement constraints, Marathon's operators on a host's name or attributes (pure).

`FIELD:OP[:VALUE]`, FIELD is `hostname` or an agent attribute:

- UNIQUE          at most one task of the submission per value (one per host for `hostname`)
- CLUSTER:V       only where the field is V
- LIKE:RE         only where the field fully matches the regular expression RE
- UNLIKE:RE       only where it does not (an agent without the attribute matches)
- GROUP_BY[:N]    spread evenly across the field's values (N: how many values to expect)
- MAX_PER:N       at most N tasks of the submission per value
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OPERATORS = ("UNIQUE", "CLUSTER", "LIKE", "UNLIKE", "GROUP_BY", "MAX_PER")


@dataclass(frozen=True)
class TaskConstraint:
    field: str
    op: str
    value: str | None = None

    @property
    def text(self) -> str:
        return f"{self.field}:{self.op}" + (f":{self.value}" if self.value is not None else "")


def parse_constraint(text: str) -> TaskConstraint:
    """Parse `FIELD:OP[:VALUE]`; ValueError says what is wrong."""
    field, _, rest = text.partition(":")
    op, sep, value = rest.partition(":")
    op = op.upper()
    if not field or not op:
        raise ValueError(f"{text!r} is not FIELD:OPERATOR[:VALUE]")
    if op not in OPERATORS:
        raise ValueError(f"{text!r}: unknown operator {op!r} (one of {', '.join(OPERATORS)})")
    given = value if sep else None
    if op == "UNIQUE" and given is not None:
        raise ValueError(f"{text!r}: UNIQUE takes no value")
    if op in ("CLUSTER", "LIKE", "UNLIKE", "MAX_PER") and not given:
        raise ValueError(f"{text!r}: {op} needs a value")
    if op in ("LIKE", "UNLIKE"):
        try:
            re.compile(str(given))
        except re.error as exc:
            raise ValueError(f"{text!r}: {given!r} is not a regular expression: {exc}") from None
    if op in ("MAX_PER", "GROUP_BY") and given is not None and not (given.isdigit() and int(given) > 0):
        raise ValueError(f"{text!r}: {op} takes a positive whole number")
    return TaskConstraint(field, op, given)


def field_value(field: str, hostname: str, attributes: Mapping[str, str]) -> str | None:
    """The value a constraint's field has on a host (None: the host has no such attribute)."""
    return hostname if field == "hostname" else attributes.get(field)


def satisfied(constraint: TaskConstraint, hostname: str, attributes: Mapping[str, str],
              placed: Iterable[str | None]) -> bool:
    """Whether one more task may go on this host, given the field's values where the group's tasks are."""
    value = field_value(constraint.field, hostname, attributes)
    op = constraint.op
    if op == "UNLIKE":
        return value is None or not re.fullmatch(str(constraint.value), value)
    if value is None:
        return False
    if op == "LIKE":
        return re.fullmatch(str(constraint.value), value) is not None
    if op == "CLUSTER":
        return value == constraint.value
    counts = Counter(v for v in placed if v is not None)
    if op == "UNIQUE":
        return counts[value] == 0
    if op == "MAX_PER":
        return counts[value] < int(str(constraint.value))
    # GROUP_BY: only on a value that has no more tasks than the least used one
    expected = int(constraint.value) if constraint.value else 0
    known = set(counts) | {value}
    least = 0 if len(known) < expected else min(counts[v] for v in known)
    return counts[value] <= least
