"""HAProxy's `show stat` as the autoscaler reads it: each backend's request counters. Reading and
parsing the CSV is `wharf.haproxy`'s (`StatsSource`, `parse_stat_csv`), shared with the drain."""

from __future__ import annotations

from collections.abc import Iterable

from autoscale.decide import Reading
from wharf.haproxy import StatRow, StatsSource, parse_stat_csv, stats_url
from wharf.http import split_credentials

__all__ = ["StatRow", "StatsSource", "backend_readings", "parse_stat_csv", "split_credentials", "stats_url"]


def backend_readings(rows: Iterable[StatRow], source: str, t: float) -> dict[str, Reading]:
    """Each backend's counters at `t`: requests (`req_tot`, else `stot`) and rate (`req_rate`,
    else `rate`), keyed by backend name; `source` names the HAProxy they came from."""
    found: dict[str, Reading] = {}
    for row in rows:
        if row.svname != "BACKEND":
            continue
        total = row.number("req_tot", "stot")
        found[row.pxname] = Reading(t, f"{source}#{row.pxname}", None if total is None else int(total),
                                    row.number("req_rate", "rate"))
    return found
