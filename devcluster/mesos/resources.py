"""Resource arithmetic for the Mesos stand-in: scalars (cpus, mem, disk, ...) and ranges (ports).

Pure values and functions only. Scalars are kept to three decimals, as Mesos's fixed-point
arithmetic does, so that 0.1 + 0.2 frees exactly what it took.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Range = tuple[int, int]  # inclusive, as in Mesos's Value.Range


def _fix(value: float) -> float:
    return round(value, 3)


def merge_ranges(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Sorted, non-overlapping ranges; adjacent ones ([1-2],[3-4]) are joined."""
    merged: list[Range] = []
    for begin, end in sorted(r for r in ranges if r[0] <= r[1]):
        if merged and begin <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return tuple(merged)


def subtract_ranges(ranges: Iterable[Range], taken: Iterable[Range]) -> tuple[Range, ...]:
    """What is left of ``ranges`` once ``taken`` is removed."""
    left = list(merge_ranges(ranges))
    for t_begin, t_end in merge_ranges(taken):
        kept: list[Range] = []
        for begin, end in left:
            if t_end < begin or t_begin > end:
                kept.append((begin, end))
                continue
            if begin < t_begin:
                kept.append((begin, t_begin - 1))
            if end > t_end:
                kept.append((t_end + 1, end))
        left = kept
    return tuple(left)


def ranges_contain(outer: Iterable[Range], inner: Iterable[Range]) -> bool:
    """True when every number in ``inner`` is in ``outer``."""
    return not subtract_ranges(inner, outer)


def format_ranges(ranges: Iterable[Range]) -> str:
    """Mesos's text form, as in ``/master/state``: ``[31000-31002, 31005-31005]``."""
    return "[" + ", ".join(f"{b}-{e}" for b, e in merge_ranges(ranges)) + "]"


@dataclass(frozen=True)
class Resources:
    """An unreserved resource set: named scalars and named ranges (absent means zero / empty)."""

    scalars: Mapping[str, float] = field(default_factory=dict)
    ranges: Mapping[str, tuple[Range, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, cpus: float = 0, mem: float = 0, disk: float = 0, ports: Iterable[Range] = ()) -> Resources:
        scalars = {k: _fix(v) for k, v in (("cpus", cpus), ("mem", mem), ("disk", disk)) if v}
        merged = merge_ranges(ports)
        return cls(scalars, {"ports": merged} if merged else {})

    @classmethod
    def from_proto(cls, items: Iterable[Mapping[str, Any]]) -> Resources:
        """Parse a list of v1 ``Resource`` JSON objects; raises ValueError on a malformed one."""
        scalars: dict[str, float] = {}
        ranges: dict[str, list[Range]] = {}
        for item in items:
            name, kind = item.get("name"), item.get("type", "SCALAR")
            if not isinstance(name, str) or not name:
                raise ValueError(f"resource without a name: {item}")
            if kind == "SCALAR":
                value = float((item.get("scalar") or {}).get("value", -1))
                if value < 0:
                    raise ValueError(f"resource {name!r}: scalar value missing or negative")
                scalars[name] = _fix(scalars.get(name, 0.0) + value)
            elif kind == "RANGES":
                for r in (item.get("ranges") or {}).get("range", []):
                    begin, end = int(r["begin"]), int(r["end"])
                    if begin > end:
                        raise ValueError(f"resource {name!r}: range {begin}-{end} is inverted")
                    ranges.setdefault(name, []).append((begin, end))
            else:
                raise ValueError(f"resource {name!r}: type {kind} is not supported by this stand-in")
        return cls({k: v for k, v in scalars.items() if v},
                   {k: merge_ranges(v) for k, v in ranges.items() if v})

    def to_proto(self, allocation_role: str | None = None) -> list[dict[str, Any]]:
        """A list of v1 ``Resource`` JSON objects (unreserved, role ``*``)."""
        out: list[dict[str, Any]] = []
        for name in sorted(self.scalars):
            out.append({"name": name, "type": "SCALAR", "scalar": {"value": self.scalars[name]}, "role": "*"})
        for name in sorted(self.ranges):
            ranges = [{"begin": b, "end": e} for b, e in self.ranges[name]]
            out.append({"name": name, "type": "RANGES", "ranges": {"range": ranges}, "role": "*"})
        if allocation_role is not None:
            for item in out:
                item["allocation_info"] = {"role": allocation_role}
        return out

    def to_state(self) -> dict[str, Any]:
        """The flat form of ``/master/state``: ``{"cpus": 1.0, ..., "ports": "[31000-31999]"}``."""
        out: dict[str, Any] = {name: 0.0 for name in ("cpus", "mem", "disk", "gpus")}
        out.update(self.scalars)
        out.update({name: format_ranges(r) for name, r in self.ranges.items()})
        return out

    def scalar(self, name: str) -> float:
        return self.scalars.get(name, 0.0)

    def is_empty(self) -> bool:
        return not self.scalars and not self.ranges

    def __add__(self, other: Resources) -> Resources:
        scalars = dict(self.scalars)
        for name, value in other.scalars.items():
            scalars[name] = _fix(scalars.get(name, 0.0) + value)
        ranges = {name: merge_ranges([*self.ranges.get(name, ()), *other.ranges.get(name, ())])
                  for name in {*self.ranges, *other.ranges}}
        return Resources({k: v for k, v in scalars.items() if v}, {k: v for k, v in ranges.items() if v})

    def __sub__(self, other: Resources) -> Resources:
        """Subtraction clamped at zero (callers check ``contains`` first when it matters)."""
        scalars = {name: max(0.0, _fix(value - other.scalar(name))) for name, value in self.scalars.items()}
        ranges = {name: subtract_ranges(r, other.ranges.get(name, ())) for name, r in self.ranges.items()}
        return Resources({k: v for k, v in scalars.items() if v}, {k: v for k, v in ranges.items() if v})

    def contains(self, other: Resources) -> bool:
        """True when ``other`` fits entirely within this set."""
        if any(value > self.scalar(name) + 1e-9 for name, value in other.scalars.items()):
            return False
        return all(ranges_contain(self.ranges.get(name, ()), r) for name, r in other.ranges.items())

    def __str__(self) -> str:
        parts = [f"{k}:{v:g}" for k, v in sorted(self.scalars.items())]
        parts += [f"{k}:{format_ranges(r)}" for k, r in sorted(self.ranges.items())]
        return "; ".join(parts) or "{}"
