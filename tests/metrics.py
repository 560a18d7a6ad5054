"""Reading one Prometheus metric from a daemon's `--metrics-port`, as the tests check them."""

from __future__ import annotations

import urllib.request


def metric(port: int, name: str, host: str = "127.0.0.1") -> float:
    """The value of the first sample of `name` (bare, or with a label set given in `name`); 0 if absent."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0
