"""Replay a load trace through the decision and a simple instance model, and score it.

The model: every `interval` seconds the autoscaler reads the app's counters (as HAProxy would
report them) and decides; instances it adds serve `startup` seconds later (Marathon reports a
deployment meanwhile); instances it removes stop at once. A second is overloaded when rps per
serving instance exceeds target × `overload_factor` (or traffic arrives with none serving).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autoscale.decide import History, Reading, decide, needed
from autoscale.mlb import MlbOptions, MlbState, mlb_step
from autoscale.policy import Policy
from autoscale.startup import Startup
from wharf.errors import BadInput


@dataclass(frozen=True)
class Model:
    """The simulated world: how often the autoscaler runs and how fast instances start."""

    interval: float = 60.0
    startup: float = 60.0
    overload_factor: float | None = None  # None: 1 + the policy's tolerance


@dataclass(frozen=True)
class ScaleEvent:
    """One scale event of a run."""

    t: float
    before: int
    after: int
    reason: str

    def json(self) -> dict[str, object]:
        return {"t": self.t, "from": self.before, "to": self.after, "reason": self.reason}


@dataclass(frozen=True)
class Result:
    """A run's score, its events, and per-second instance counts (asked for, serving)."""

    overload_seconds: int
    instance_seconds: int
    events: tuple[ScaleEvent, ...]
    asked: tuple[int, ...] = field(repr=False)
    serving: tuple[int, ...] = field(repr=False)

    def json(self) -> dict[str, object]:
        return {"overload_seconds": self.overload_seconds, "instance_seconds": self.instance_seconds,
                "scale_events": [e.json() for e in self.events]}


def parse_trace(text: str, where: str = "trace") -> list[float]:
    """A `t,rps` CSV (seconds, requests per second; each rate holds until the next row) as one
    rate per second. Raises BadInput naming the file, line and field."""
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip() for c in rows[0]] != ["t", "rps"]:
        raise BadInput(f"{where}: line 1: header must be 't,rps'")
    points: list[tuple[float, float]] = []
    for number, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise BadInput(f"{where}: line {number}: expected 2 fields (t,rps), got {len(row)}")
        values = []
        for name, raw in zip(("t", "rps"), row, strict=False):
            try:
                value = float(raw)
            except ValueError:
                raise BadInput(f"{where}: line {number}: {name}: not a number: {raw.strip()!r}") from None
            if not math.isfinite(value) or value < 0:
                raise BadInput(f"{where}: line {number}: {name}: must be a finite number >= 0, got {raw.strip()}")
            values.append(value)
        if points and values[0] <= points[-1][0]:
            raise BadInput(f"{where}: line {number}: t: must increase, got {row[0].strip()} after {points[-1][0]:g}")
        points.append((values[0], values[1]))
    if not points:
        raise BadInput(f"{where}: no rows after the header")
    last_step = points[-1][0] - points[-2][0] if len(points) > 1 else 1.0
    end = int(math.ceil(points[-1][0] + last_step))
    load, i = [], 0
    for second in range(int(points[0][0]), end):
        while i + 1 < len(points) and points[i + 1][0] <= second:
            i += 1
        load.append(points[i][1])
    return load


def load_trace(path: Path) -> list[float]:
    """`parse_trace` of a file; a missing file is bad input."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    return parse_trace(text, str(path))


class _Instances:
    """Instances asked for, and when each batch starts serving."""

    def __init__(self, count: int, startup: float) -> None:
        self.startup = startup
        self.batches: list[tuple[float, int]] = [(-math.inf, count)]

    def asked(self) -> int:
        return sum(n for _, n in self.batches)

    def serving(self, now: float) -> int:
        return sum(n for ready, n in self.batches if ready <= now)

    def starting(self, now: float) -> bool:
        return any(ready > now for ready, _ in self.batches)

    def scale(self, target: int, now: float) -> None:
        more = target - self.asked()
        if more > 0:
            self.batches.append((now + self.startup, more))
        while more < 0:  # remove the newest (still starting) first
            ready, n = self.batches.pop()
            if n + more > 0:
                self.batches.append((ready, n + more))
            more += n


def _score(load: Sequence[float], asked: list[int], serving: list[int], limit: float,
           events: list[ScaleEvent]) -> Result:
    overload = sum(1 for rps, n in zip(load, serving, strict=False) if rps > 0 and (n == 0 or rps / n > limit))
    return Result(overload, sum(asked), tuple(events), tuple(asked), tuple(serving))


def simulate_wharf(load: Sequence[float], policy: Policy, model: Model = Model()) -> Result:
    """Run wharf's decision over `load` (one rate per second), learning the startup delay as the
    daemon does: from a scale-up to the cycle that finds the new instances serving."""
    instances = _Instances(policy.bounded(needed(load[0], policy)), model.startup)
    history, startup, readings = History(), Startup(), [Reading(0.0, "sim", 0, load[0])]
    total, asked, serving, events = 0.0, [], [], []
    step = max(1, int(model.interval))
    for second, rps in enumerate(load):
        if second and second % step == 0:
            readings = [readings[-1], Reading(float(second), "sim", int(total), load[second - 1])]
            current = instances.asked()
            startup = startup.observe(second, current, instances.serving(second))
            decision = decide(readings, current, policy, float(second), history,
                              deploying=instances.starting(second), startup=startup.seconds)
            history = decision.history
            if decision.target != current:
                events.append(ScaleEvent(second, current, decision.target, decision.reason))
                instances.scale(decision.target, second)
                startup = startup.asked(second, decision.target, current)
        total += rps
        asked.append(instances.asked())
        serving.append(instances.serving(second))
    factor = model.overload_factor or 1 + policy.tolerance
    return _score(load, asked, serving, policy.target_rps * factor, events)


def floor_counts(load: Sequence[float], limit: float, model: Model = Model()) -> list[int]:
    """Instances asked for, second by second, by the cheapest schedule that is never overloaded
    and changes the count only at decisions, knowing the load in advance: over each interval, the
    most that any second needs from the interval's start until one startup after its end (an
    instance must be asked for a startup before it serves, and is paid for from then on)."""
    step = max(1, int(model.interval))
    need = [math.ceil(rps / limit - 1e-9) if rps > 0 else 0 for rps in load]
    counts: list[int] = []
    for start in range(0, len(load), step):
        ahead = need[start:start + step + int(math.ceil(model.startup))]
        counts.extend([max(ahead)] * min(step, len(load) - start))
    return counts


def floor_seconds(load: Sequence[float], limit: float, model: Model = Model()) -> int:
    """The perfect-foresight floor: instance-seconds of `floor_counts`."""
    return sum(floor_counts(load, limit, model))


def mlb_options(policy: Policy, model: Model) -> MlbOptions:
    """marathon-lb-autoscale with its defaults, but the policy's target and bounds."""
    return MlbOptions(target_rps=policy.target_rps, interval=model.interval,
                      min_instances=max(policy.min_instances, 1), max_instances=policy.max_instances)


def simulate_mlb(load: Sequence[float], options: MlbOptions, model: Model = Model(),
                 tolerance: float = 0.1) -> Result:
    """Run marathon-lb-autoscale's rule over `load`; scored with the same overload line."""
    start = max(math.ceil(load[0] / options.target_rps), options.min_instances)
    instances = _Instances(start, model.startup)
    state, asked, serving, events = MlbState(), [], [], []
    step = max(1, int(model.interval))
    for second, _rps in enumerate(load):
        if second and second % step == 0:
            current = instances.asked()
            target, state, why = mlb_step(state, load[second - 1], current, float(second), options)
            if target is not None and target != current:
                events.append(ScaleEvent(second, current, target, why))
                instances.scale(target, second)
        asked.append(instances.asked())
        serving.append(instances.serving(second))
    factor = model.overload_factor or 1 + tolerance
    return _score(load, asked, serving, options.target_rps * factor, events)
