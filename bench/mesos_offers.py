"""Offers per second from the Mesos stand-in: 100 agents, one framework declining everything.

The master runs in-process without ZooKeeper or Docker; the framework talks plain HTTP (the
RecordIO event stream and DECLINE calls with ``refuse_seconds=0``, so every agent is offered
again at once). The figure is how fast an offer makes the round trip through the master.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

from devcluster.mesos import MesosStandin
from devcluster.mesos.client import SchedulerClient


def main(agents: int = 100, seconds: float = 5.0) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as state_dir:
        standin = MesosStandin(agents=agents, state_dir=Path(state_dir)).start()
        client = SchedulerClient(standin.url)
        try:
            client.subscribe({"user": "bench", "name": "decline-everything"})
            first = client.next_event("OFFERS", timeout=10)["offers"]["offers"]
            count = events = 0
            started = time.perf_counter()
            client.call("DECLINE", {"offer_ids": [o["id"] for o in first], "filters": {"refuse_seconds": 0}})
            while (elapsed := time.perf_counter() - started) < seconds:
                offers = client.next_event("OFFERS", timeout=10)["offers"]["offers"]
                count += len(offers)
                events += 1
                client.call("DECLINE", {"offer_ids": [o["id"] for o in offers], "filters": {"refuse_seconds": 0}})
        finally:
            client.close()
            standin.stop()
    print(f"mesos stand-in, {agents} agents, 1 framework declining with refuse_seconds=0: "
          f"{count / elapsed:,.0f} offers/s ({events / elapsed:,.0f} OFFERS events/s) over {elapsed:.1f}s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
