"""``python -m devcluster.chronos``: run the Chronos stand-in in the foreground.

    python -m devcluster.chronos --port 4400 --master zk://127.0.0.1:2181/mesos

Without ``--master`` jobs are kept and listed but never run. SIGTERM/SIGINT stop it cleanly: the
framework is torn down (Mesos kills its tasks) and the process exits 0.
"""

from __future__ import annotations

import argparse
import sys

from devcluster import foreground
from devcluster.chronos.server import ChronosStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.chronos", description=__doc__)
    parser.add_argument("--port", type=int, default=4400, help="HTTP port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--master", default=None, help="Mesos master: zk://host:port/mesos or host:port")
    parser.add_argument("--framework-name", default="chronos", help="the framework's name in Mesos")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    standin = ChronosStandin(port=args.port, master=args.master, framework_name=args.framework_name)
    return foreground.run(standin, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
