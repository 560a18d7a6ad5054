"""``python -m devcluster.mesos``: run the Mesos stand-in in the foreground.

SIGTERM/SIGINT stop it cleanly (tasks killed, containers removed, ZooKeeper node deleted; exit 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devcluster import foreground
from devcluster.mesos.standin import PORT_QUARANTINE, MesosStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.mesos", description=__doc__)
    parser.add_argument("--port", type=int, default=5050, help="HTTP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--zk", default=None, help="register in ZooKeeper, e.g. zk://127.0.0.1:2181/mesos")
    parser.add_argument("--docker-host", default=None, help="Docker engine for container tasks (unix://...)")
    parser.add_argument("--state-dir", type=Path, required=True, help="sandboxes of the tasks live here")
    parser.add_argument("--agents", type=int, default=3, help="number of simulated agents (default 3)")
    parser.add_argument("--heartbeat", type=float, default=15.0, help="seconds between HEARTBEAT events")
    parser.add_argument("--offer-timeout", type=float, default=None, help="rescind offers held this long")
    parser.add_argument("--port-quarantine", type=float, default=PORT_QUARANTINE,
                        help="seconds an ended task's host ports stay out of offers (0: none)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    standin = MesosStandin(port=args.port, agents=args.agents, zk=args.zk, docker_host=args.docker_host,
                           state_dir=args.state_dir, heartbeat_interval=args.heartbeat,
                           offer_timeout=args.offer_timeout, port_quarantine=args.port_quarantine)
    return foreground.run(standin, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
