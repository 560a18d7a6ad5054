"""How `wharf apps` prints: JSON for `--json`, rich tables, the plan's changes and a deploy's summary."""

from __future__ import annotations

import json
from typing import Any

import click


def echo_json(data: Any) -> None:
    """Print `data` as indented JSON with sorted keys (what `--json` prints)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def table(*columns: str) -> Any:
    """A borderless rich table with these columns."""
    from rich.table import Table

    return Table(*columns, box=None)


def print_table(rows: Any) -> None:
    """Print a rich table without wrapping long cells."""
    from rich.console import Console

    Console(soft_wrap=True).print(rows)


def short(value: Any, width: int = 40) -> str:
    """A value as JSON (a string as it is), cut to `width` characters."""
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 1] + "…"


def print_plan(plan: Any) -> None:
    """The plan as a table of changed fields, then its counts."""
    from marathon_apps.plan import MISSING

    colours = {"create": "green", "update": "yellow", "scale": "cyan", "bluegreen": "magenta", "delete": "red",
               "unchanged": "dim"}
    rows = table("app", "action", "after", "field", "now", "wanted")
    for change in plan.changes:
        action = f"[{colours[change.kind]}]{change.kind}[/]"
        if change.kind == "bluegreen" and change.desired is not None:
            action += f" {change.live['id'] if change.live else '(none)'} → {change.desired['id']}"
        elif change.strategy == "bluegreen":
            action += " (bluegreen)"
        after = ", ".join(change.after)
        if not change.fields:
            rows.add_row(change.app_id, action, after, "", "", "")
        for i, f in enumerate(change.fields):
            old = "-" if f.old is MISSING else short(f.old)
            new = "-" if f.new is MISSING else short(f.new)
            rows.add_row(change.app_id if i == 0 else "", action if i == 0 else "", after if i == 0 else "",
                         f.path, old, new)
    print_table(rows)
    counts = plan.counts()
    todo = len(plan.todo())
    click.echo("nothing to do" if not todo else
               ", ".join(f"{n} {k}" for k, n in counts.items() if n and k != "unchanged")
               + f"; {counts['unchanged']} unchanged")


def summary(outcome: Any) -> str:
    """One line saying what a deploy did."""
    parts = [f"deployed: {', '.join(outcome.deployed) or 'none'}"]
    if outcome.failed:
        parts.append(f"failed: {', '.join(outcome.failed)}")
    if outcome.rolled_back:
        parts.append(f"rolled back: {', '.join(outcome.rolled_back)}")
    if outcome.not_attempted:
        parts.append(f"not attempted: {', '.join(outcome.not_attempted)}")
    if outcome.unchanged:
        parts.append(f"unchanged: {len(outcome.unchanged)}")
    return "; ".join(parts)
