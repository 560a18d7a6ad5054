"""An app's scaling policy: from its `wharf.autoscale.*` labels, or from the command line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from wharf.contracts.autoscale import LABEL_PREFIX, autoscaled
from wharf.errors import BadInput

#: label suffix -> (Policy field, type)
LABELS: dict[str, tuple[str, type]] = {
    "target_rps": ("target_rps", float),
    "min": ("min_instances", int),
    "max": ("max_instances", int),
    "scale_up_stabilization": ("scale_up_stabilization", float),
    "scale_down_stabilization": ("scale_down_stabilization", float),
    "max_step": ("max_step", int),
}


@dataclass(frozen=True)
class Policy:
    """How one app is scaled.

    target_rps: requests per second one instance should serve.
    min_instances, max_instances: bounds on the instance count (max None: no bound).
    tolerance: the band target × (1 ± tolerance) is what the operator accepts: wharf sizes each app
        so that the load it projects stays at or under the band's top, growing (a +1 is never held
        back) as soon as it would not and shrinking as soon as fewer instances would hold it.
    down_tolerance: marathon-lb-autoscale's `--threshold-percent`: when set, the app shrinks only
        while rps per instance is under target × (1 − down_tolerance); None: whenever it is safe.
    down_threshold_instances: with `down_tolerance`, a scale-down this many instances or larger
        passes that threshold anyway (marathon-lb-autoscale's `--threshold-instances`); None: never.
    scale_up_stabilization, scale_down_stabilization: seconds of recommendations considered: the
        app grows to the smallest recommendation of the up window and shrinks to the largest of the
        down window (and of the previous decision: two decisions must agree on a shrink).
    max_step: the most instances one decision adds or removes (None: no limit).
    cooldown: seconds after a change during which the app does not shrink.
    """

    target_rps: float
    min_instances: int = 1
    max_instances: int | None = None
    tolerance: float = 0.1
    down_tolerance: float | None = None
    down_threshold_instances: int | None = None
    scale_up_stabilization: float = 0.0
    scale_down_stabilization: float = 60.0
    max_step: int | None = None
    cooldown: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if not self.target_rps > 0:
            problems.append(f"target_rps must be > 0, got {self.target_rps:g}")
        if self.min_instances < 0:
            problems.append(f"min must be >= 0, got {self.min_instances}")
        if self.max_instances is not None and self.max_instances < max(self.min_instances, 1):
            problems.append(f"max must be >= min and >= 1, got max {self.max_instances} min {self.min_instances}")
        if not 0 <= self.tolerance < 1:
            problems.append(f"tolerance must be in [0, 1), got {self.tolerance:g}")
        if not 0 <= (self.down_tolerance or 0) < 1:
            problems.append(f"threshold_percent must be in [0, 1), got {self.down_tolerance:g}")
        if self.scale_up_stabilization < 0 or self.scale_down_stabilization < 0 or self.cooldown < 0:
            problems.append("stabilization windows and cooldown must be >= 0")
        if self.max_step is not None and self.max_step < 1:
            problems.append(f"max_step must be >= 1, got {self.max_step}")
        if self.down_threshold_instances is not None and self.down_threshold_instances < 1:
            problems.append(f"threshold_instances must be >= 1, got {self.down_threshold_instances}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def lower_band(self) -> float:
        """rps per instance under which the app may shrink."""
        down = self.tolerance if self.down_tolerance is None else self.down_tolerance
        return self.target_rps * (1 - down)

    @property
    def upper_band(self) -> float:
        """rps per instance over which the projected load makes the app grow."""
        return self.target_rps * (1 + self.tolerance)

    def bounded(self, count: int) -> int:
        """`count` held within [min, max]."""
        count = max(count, self.min_instances)
        return count if self.max_instances is None else min(count, self.max_instances)


def _convert(where: str, name: str, kind: type, raw: Any) -> Any:
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise BadInput(f"{where}: {name}: not a{'n integer' if kind is int else ' number'}: {raw!r}") from None
    return value


def has_policy_labels(labels: Mapping[str, str]) -> bool:
    """True if the app asks to be autoscaled (it carries `wharf.autoscale.target_rps`)."""
    return autoscaled(labels)


def from_labels(labels: Mapping[str, str], base: Policy | Mapping[str, Any] | None = None,
                where: str = "labels") -> Policy:
    """The policy an app's `wharf.autoscale.*` labels give, over `base`: the command line's policy,
    whole, or only the fields it sets (a command line without `--target-rps`).

    Raises BadInput naming the app (`where`), the label and the reason.
    """
    values = asdict(base) if isinstance(base, Policy) else dict(base or {})
    for suffix, (name, kind) in LABELS.items():
        key = LABEL_PREFIX + suffix
        if key in labels:
            values[name] = _convert(where, key, kind, labels[key])
    if "target_rps" not in values:
        raise BadInput(f"{where}: {LABEL_PREFIX}target_rps: missing (and no --target-rps given)")
    try:
        return Policy(**values)
    except ValueError as exc:
        raise BadInput(f"{where}: {LABEL_PREFIX}*: {exc}") from None


def from_spec(spec: str, where: str = "--policy") -> Policy:
    """A policy from `key=value,key=value` (the label suffixes, plus `tolerance` and `cooldown`)."""
    labels: dict[str, str] = {}
    extra: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise BadInput(f"{where}: {item!r}: expected key=value")
        if key in LABELS:
            labels[LABEL_PREFIX + key] = value
        elif key in ("tolerance", "cooldown"):
            extra[key] = _convert(where, key, float, value)
        else:
            known = ", ".join([*LABELS, "tolerance", "cooldown"])
            raise BadInput(f"{where}: {key}: unknown policy key (known: {known})")
    policy = from_labels(labels, where=where)
    try:
        return replace(policy, **extra)
    except ValueError as exc:
        raise BadInput(f"{where}: {exc}") from None
