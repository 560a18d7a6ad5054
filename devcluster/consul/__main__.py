"""``python -m devcluster.consul``: run the Consul stand-in in the foreground.

SIGTERM/SIGINT stop it (exit 0); SIGHUP drops all state (see the package docstring).
"""

from __future__ import annotations

import argparse
import socket
import sys

from devcluster import foreground
from devcluster.consul.server import ConsulStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.consul", description=__doc__)
    parser.add_argument("--port", type=int, default=8500, help="HTTP port (0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--acl-token-file", default=None,
                        help="require the token in this file on every request but /v1/status/* "
                             "(a file, so the token never shows in the process list)")
    parser.add_argument("--node", default=socket.gethostname(), help="node name (default: the host name)")
    parser.add_argument("--datacenter", default="dc1")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)

    token = open(args.acl_token_file).read().strip() if args.acl_token_file else None
    standin = ConsulStandin(args.host, args.port, acl_token=token, node=args.node, datacenter=args.datacenter)
    return foreground.run(standin, args.log_level, on_hangup=standin.reset)


if __name__ == "__main__":
    sys.exit(main())
