"""Marathon's placement constraints `[field, operator, value?]`, decided without I/O.

`meets` answers "may one more instance of the app go on this agent, given where its instances
already run?" and `select_kill` picks the instances a scale-down removes. Both follow Marathon's
`mesosphere.mesos.Constraints` and `ScalingProposition` (1.x); the differences are listed here:

- Attribute values are strings already formatted the Mesos way (scalars, `[b-e,...]` ranges,
  `{a,b}` sets); formatting them is the caller's job.
- LIKE and UNLIKE use Python's `re.fullmatch`, which agrees with Java's `String.matches` on the
  common syntax, not on every corner of it.
- `@zone` reads the zone (some Marathon 1.5 builds looked for a misspelt `@field`).
- The experimental IN operator of some Marathon builds is not in the 1.10 RAML enum, so not here.
- Where Marathon leaves an order to a hash map (which instance of an over-full group dies, the
  order of groups), this module uses the kill-selection order and first appearance, so equal
  inputs always give equal answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, TypeVar

__all__ = [
    "KILL_SELECTIONS", "OPERATORS", "InvalidConstraint", "MarathonConstraint", "Placed", "Placement", "RunningTask",
    "kill_order", "meets", "meets_constraint", "select_kill",
]

OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")
_HOSTNAME_FIELDS = ("hostname", "@hostname")
_INTEGER = re.compile(r"[+-]?\d+")  # what Scala's String.toInt accepts
_INT_MAX = 2**31 - 1  # GROUP_BY's "inf"


class InvalidConstraint(ValueError):
    """A constraint this module cannot evaluate (bad shape, operator, number or regex)."""


@dataclass(frozen=True)
class Placement:
    """Where an instance runs or could run: an agent's hostname, attributes, region and zone."""

    agent_id: str
    hostname: str
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)
    region: str | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    def value_of(self, field_name: str) -> str | None:
        """The value a constraint on `field_name` sees here, or None when the agent lacks it."""
        if field_name in _HOSTNAME_FIELDS:
            return self.hostname
        if field_name == "@region":
            return self.region
        if field_name == "@zone":
            return self.zone
        return self.attributes.get(field_name)


@dataclass(frozen=True)
class MarathonConstraint:
    """One parsed constraint; an absent value is the empty string, as in Marathon's protobuf."""

    field: str
    operator: str
    value: str = ""

    @classmethod
    def parse(cls, raw: MarathonConstraint | Sequence[str]) -> MarathonConstraint:
        """Read `[field, operator]` or `[field, operator, value]`, refusing what cannot be evaluated."""
        if isinstance(raw, MarathonConstraint):
            return raw
        if isinstance(raw, str) or len(raw) not in (2, 3) or not all(isinstance(p, str) for p in raw):
            raise InvalidConstraint(f"a constraint is [field, operator] or [field, operator, value], not {raw!r}")
        constraint = cls(*raw)
        if constraint.operator not in OPERATORS:
            raise InvalidConstraint(f"unknown constraint operator {constraint.operator!r}; "
                                    f"expected one of {', '.join(OPERATORS)}")
        if constraint.operator == "MAX_PER" and not _INTEGER.fullmatch(constraint.value):
            raise InvalidConstraint(f"MAX_PER needs an integer value, not {constraint.value!r}")
        if constraint.operator in ("LIKE", "UNLIKE"):
            try:
                re.compile(constraint.value)
            except re.error as exc:
                raise InvalidConstraint(f"{constraint.value!r} is not a valid regular expression: {exc}") from exc
        return constraint


def _group_counts(field_name: str, running: Sequence[Placement]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for placed in running:
        key = placed.value_of(field_name)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _group_by_minimum(value: str) -> int:
    if value == "inf":
        return _INT_MAX
    return max(0, int(value)) if _INTEGER.fullmatch(value) else 0


def meets_constraint(constraint: MarathonConstraint | Sequence[str], candidate: Placement,
                     running: Sequence[Placement]) -> bool:
    """Whether one more instance may go on `candidate` under this one constraint."""
    c = MarathonConstraint.parse(constraint)
    offered = candidate.value_of(c.field)
    if offered is None:  # the agent lacks the field: only UNLIKE is satisfied
        return c.operator == "UNLIKE"
    if c.operator == "IS":
        return offered == c.value
    if c.operator == "LIKE":
        return bool(c.value) and re.fullmatch(c.value, offered) is not None
    if c.operator == "UNLIKE":
        return bool(c.value) and re.fullmatch(c.value, offered) is None
    if c.operator == "UNIQUE":
        return all(p.value_of(c.field) != offered for p in running)
    if c.operator == "CLUSTER":
        if c.value:
            return offered == c.value
        # no value: the first placement pins the value for all the others
        return not running or running[0].value_of(c.field) == offered
    counts = _group_counts(c.field, running)
    if c.operator == "MAX_PER":
        return counts.get(offered, 0) < int(c.value)
    # GROUP_BY: a new group is always welcome; an existing one only when it is among the smallest
    # and (with a value) at least that many groups exist already. Instances on agents without
    # the field form a group of their own, as in Marathon.
    if offered not in counts:
        return True
    return len(counts) >= _group_by_minimum(c.value) and counts[offered] == min(counts.values())


def meets(constraints: Iterable[MarathonConstraint | Sequence[str]], candidate: Placement,
          running: Sequence[Placement]) -> bool:
    """Whether one more instance of the app may go on `candidate`, given where its instances run."""
    return all(meets_constraint(c, candidate, running) for c in constraints)


# --- scale-down ----------------------------------------------------------------------------------

class Placed(Protocol):
    """A running instance as `select_kill` needs it."""

    @property
    def placement(self) -> Placement: ...

    @property
    def started_at(self) -> float | None: ...


@dataclass(frozen=True)
class RunningTask:
    """A plain `Placed`: an instance id, where it runs, and when it started (None: still staging)."""

    id: str
    placement: Placement
    started_at: float | None = None


T = TypeVar("T", bound=Placed)


def kill_order(tasks: Sequence[T], kill_selection: str = "YOUNGEST_FIRST") -> list[T]:
    """Tasks in the order a scale-down without constraints kills them.

    Not yet started ones go first (Marathon kills staging before running), then by start time:
    latest first for YOUNGEST_FIRST, earliest first for OLDEST_FIRST. Ties keep input order.
    """
    if kill_selection not in KILL_SELECTIONS:
        raise ValueError(f"killSelection must be one of {', '.join(KILL_SELECTIONS)}, not {kill_selection!r}")
    staging = [t for t in tasks if t.started_at is None]
    started = sorted((t for t in tasks if t.started_at is not None), key=lambda t: t.started_at or 0.0,
                     reverse=kill_selection == "YOUNGEST_FIRST")
    return staging + started


def _remaining_sizes(groups: list[list[int]], without: set[int]) -> list[int]:
    return [sum(1 for i in g if i not in without) for g in groups]


def _spread(groups: list[list[int]], without: set[int]) -> int:
    sizes = _remaining_sizes(groups, without)
    return max(sizes) - min(sizes)


def _evener(groups: list[list[int]], without: set[int]) -> bool:
    after = _spread(groups, without)
    return after <= 1 or _spread(groups, set()) > after


def _from_largest(groups: list[list[int]], without: set[int]) -> list[int]:
    sizes = _remaining_sizes(groups, without)
    if len(set(sizes)) == 1:
        return []
    top = max(sizes)
    return [i for g, size in zip(groups, sizes, strict=True) if size == top for i in g if i not in without]


def _balancing_kills(fields: list[str], tasks: list[Placed], count: int) -> list[int]:
    """Marathon's selectInstancesToKill: indices whose removal evens out every GROUP_BY spread."""
    distributions: list[list[list[int]]] = []
    for field_name in fields:
        by_value: dict[str | None, list[int]] = {}
        for i, task in enumerate(tasks):
            by_value.setdefault(task.placement.value_of(field_name), []).append(i)
        distributions.append(list(by_value.values()))
    chosen: list[int] = []
    taken: set[int] = set()
    while len(chosen) < count:
        ordered = sorted(distributions, key=lambda d: _spread(d, taken), reverse=True)
        candidates = [i for d in ordered for i in _from_largest(d, taken)]
        candidates += [i for i in range(len(tasks)) if i not in taken]
        pick = next((i for i in candidates if all(_evener(d, taken | {i}) for d in distributions)), None)
        if pick is None:
            break
        chosen.append(pick)
        taken.add(pick)
    return chosen


def select_kill(constraints: Iterable[MarathonConstraint | Sequence[str]], running_tasks: Sequence[T], count: int,
                kill_selection: str = "YOUNGEST_FIRST") -> list[T]:
    """The `count` instances a scale-down kills, in kill order.

    As Marathon does: first those whose removal keeps GROUP_BY constraints balanced (the only
    operator that steers kills), then the rest in `kill_order`.
    """
    if count <= 0:
        return []
    ordered = kill_order(running_tasks, kill_selection)
    if count >= len(ordered):
        return ordered
    group_fields = [c.field for c in map(MarathonConstraint.parse, constraints) if c.operator == "GROUP_BY"]
    balancing = _balancing_kills(group_fields, list(ordered), count) if group_fields else []
    chosen = set(balancing)
    rest = [i for i in range(len(ordered)) if i not in chosen]
    return [ordered[i] for i in (balancing + rest)[:count]]
