"""``python -m devcluster.marathon``: run the Marathon stand-in in the foreground.

It subscribes to the Mesos master given by ``--master`` (``zk://…/mesos`` or ``host:port``) as
a framework and serves Marathon's REST API on 127.0.0.1. SIGTERM/SIGINT stop it cleanly: the
framework is torn down (its tasks are killed) and the process exits 0; with ``--state-dir`` or
``--zk`` the state is kept instead and the tasks keep running, for the next start to take back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devcluster import foreground
from devcluster.marathon.standin import MarathonStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.marathon", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="HTTP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--master", required=True, help="Mesos master: zk://host:port/mesos or host:port")
    parser.add_argument("--state-dir", type=Path, default=None, help="keep apps, tasks and the framework id here")
    parser.add_argument("--zk", default=None, help="or keep them in ZooKeeper, e.g. zk://127.0.0.1:2181/marathon")
    parser.add_argument("--framework-name", default="marathon")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    standin = MarathonStandin(args.master, port=args.port, name=args.framework_name,
                              state_dir=args.state_dir, zk=args.zk)
    return foreground.run(standin, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
