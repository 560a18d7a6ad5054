"""Score a policy over many traces the way the goal is set, and print one table. Pure.

Per trace: wharf's and marathon-lb-autoscale's overload-seconds and instance-seconds through the
same instance model, and the perfect-foresight floor (`floor_seconds`). The goal on each: wharf
overloaded at most a third as long as marathon-lb-autoscale, and no more instance-seconds. Per
family (the generated traces of one shape, summed) the same goal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from autoscale.families import FAMILY, SHAPES
from autoscale.policy import Policy
from autoscale.simulate import (
    Model,
    Result,
    floor_counts,
    floor_seconds,
    mlb_options,
    parse_trace,
    simulate_mlb,
    simulate_wharf,
)

BUNDLED = ("ramp", "spike", "diurnal")


def goals(wharf_overload: int, mlb_overload: int, wharf_instances: int, mlb_instances: int) -> tuple[bool, bool]:
    """(wharf overloaded at most a third as long as marathon-lb-autoscale, wharf paid no more
    instance-seconds): the goal on a trace, and on a family's sums."""
    return wharf_overload * 3 <= mlb_overload, wharf_instances <= mlb_instances


@dataclass(frozen=True)
class Score:
    """One trace scored: wharf, marathon-lb-autoscale (`mlb`) and the floor's instance-seconds."""

    trace: str
    shape: str
    wharf: Result
    mlb: Result
    floor: int

    @property
    def met(self) -> tuple[bool, bool]:
        """The two goals on this trace (`goals`)."""
        return goals(self.wharf.overload_seconds, self.mlb.overload_seconds, self.wharf.instance_seconds,
                     self.mlb.instance_seconds)

    @property
    def overload_met(self) -> bool:
        return self.met[0]

    @property
    def instances_met(self) -> bool:
        return self.met[1]

    def json(self) -> dict[str, object]:
        return {"trace": self.trace, "shape": self.shape,
                "wharf": {"overload_seconds": self.wharf.overload_seconds,
                          "instance_seconds": self.wharf.instance_seconds},
                "mlb": {"overload_seconds": self.mlb.overload_seconds, "instance_seconds": self.mlb.instance_seconds},
                "floor_instance_seconds": self.floor, "overload_met": self.overload_met,
                "instances_met": self.instances_met}


def overload_limit(policy: Policy, model: Model) -> float:
    """rps per instance over which a second counts as overloaded."""
    return policy.target_rps * (model.overload_factor or 1 + policy.tolerance)


def score(trace: str, shape: str, load: Sequence[float], policy: Policy, model: Model) -> Score:
    """Replay `load` through wharf and marathon-lb-autoscale (its defaults, the policy's target
    and bounds) and compute the floor."""
    wharf = simulate_wharf(load, policy, model)
    mlb = simulate_mlb(load, mlb_options(policy, model), model, policy.tolerance)
    return Score(trace, shape, wharf, mlb, floor_seconds(load, overload_limit(policy, model), model))


def traces(seeds: Iterable[int]) -> list[tuple[str, str, list[float]]]:
    """(name, shape, load) of every generated trace of every family for each seed, then of the
    bundled traces (shape "bundled")."""
    seeds = list(seeds)
    found = [(f"{member.name}/{seed}", member.shape, member.load(seed)) for member in FAMILY for seed in seeds]
    folder = files("autoscale") / "traces"
    for name in BUNDLED:
        found.append((f"{name}.csv", "bundled", parse_trace((folder / f"{name}.csv").read_text(), f"{name}.csv")))
    return found


def _pct(value: float, base: float) -> str:
    return f"{100 * (value / base - 1):+.1f}%" if base else "-"


def plot_each(directory: Path, named: Sequence[tuple[str, str, Sequence[float]]], scores: Sequence[Score],
              policy: Policy, model: Model) -> None:
    """One SVG a trace in `directory` (an existing one): load, wharf's and marathon-lb-autoscale's
    serving instances, and the floor."""
    from autoscale.plot import plot

    for (name, _, load), s in zip(named, scores, strict=True):
        plot(directory / (re.sub(r"[^A-Za-z0-9._-]+", "-", name.removesuffix(".csv")) + ".svg"), load,
             {"wharf": s.wharf.serving, "mlb": s.mlb.serving},
             floor_counts(load, overload_limit(policy, model), model), title=name)


def _goal(overload_met: bool, instances_met: bool) -> str:
    if overload_met and instances_met:
        return "met"
    return "NOT met: " + ", ".join(w for w, ok in (("overload", overload_met), ("instance-s", instances_met)) if not ok)


def _row(name: str, w_over: int, m_over: int, w_inst: int, m_inst: int, floor: int) -> str:
    return (f"{name:22} {w_over:>7} {m_over:>7} {w_inst:>10} {m_inst:>10} {floor:>10} "
            f"{_pct(w_inst, m_inst):>7} {_pct(w_inst, floor):>7} {_pct(m_inst, floor):>7}   "
            f"{_goal(*goals(w_over, m_over, w_inst, m_inst))}")


HEADER = (f"{'trace':22} {'over-s':>7} {'':>7} {'inst-s':>10} {'':>10} {'floor':>10} "
          f"{'wharf':>7} {'wharf':>7} {'mlb':>7}   goal (over-s <= mlb/3, inst-s <= mlb)\n"
          f"{'':22} {'wharf':>7} {'mlb':>7} {'wharf':>10} {'mlb':>10} {'inst-s':>10} "
          f"{'vs mlb':>7} {'vs flr':>7} {'vs flr':>7}")


def table(scores: Sequence[Score]) -> list[str]:
    """One line a trace, then one a generated family (its traces summed), then the counts."""
    lines = HEADER.splitlines()
    lines += [_row(s.trace, s.wharf.overload_seconds, s.mlb.overload_seconds, s.wharf.instance_seconds,
                   s.mlb.instance_seconds, s.floor) for s in scores]
    lines.append("families (generated traces summed):")
    families_met = 0
    shapes = [shape for shape in SHAPES if any(s.shape == shape for s in scores)]
    for shape in shapes:
        group = [s for s in scores if s.shape == shape]
        sums = [sum(x) for x in zip(*((s.wharf.overload_seconds, s.mlb.overload_seconds, s.wharf.instance_seconds,
                                       s.mlb.instance_seconds, s.floor) for s in group), strict=True)]
        lines.append(_row(f"{shape} ({len(group)})", *sums))
        families_met += all(goals(*sums[:4]))
    generated = [s for s in scores if s.shape in SHAPES]
    met = sum(s.overload_met and s.instances_met for s in generated)
    lines.append(f"goal met on {families_met} of {len(shapes)} families, on {met} of {len(generated)} generated "
                 f"traces (overload: {sum(s.overload_met for s in generated)}, "
                 f"instance-s: {sum(s.instances_met for s in generated)})")
    return lines
