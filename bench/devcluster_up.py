"""How long the dev cluster takes to come up healthy and to go down (3 rounds)."""

from __future__ import annotations

import statistics
import tempfile
import time

from devcluster.cluster import Cluster


def main(rounds: int = 3) -> None:
    ups, downs = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="wharf-bench-") as state_dir:
            cluster = Cluster(state_dir)
            started = time.perf_counter()
            status = cluster.up()
            ups.append(time.perf_counter() - started)
            assert status["running"], status
            started = time.perf_counter()
            cluster.down()
            downs.append(time.perf_counter() - started)
    names = ", ".join(status["services"])
    print(f"dev cluster up ({names} healthy, base image built): "
          f"median {statistics.median(ups):.2f}s, max {max(ups):.2f}s over {rounds} rounds")
    print(f"dev cluster down (all processes gone, mounts removed): "
          f"median {statistics.median(downs):.2f}s, max {max(downs):.2f}s")


if __name__ == "__main__":
    main()
