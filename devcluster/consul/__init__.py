"""An API-faithful stand-in for a single-node Consul (agent and server in one process).

Consul cannot be installed on the development machines, so the dev cluster and the tests
run this instead. It speaks Consul's HTTP API closely enough that py-consul cannot tell:
agent services and checks (HTTP, TCP and TTL checks really run), catalog, health, KV with
sessions and locks, transactions, blocking queries with ``X-Consul-Index``, and an
optional ACL token. What it does not implement it refuses with an explicit error.

Run it in the foreground::

    python -m devcluster.consul --port 8500 [--host 127.0.0.1] [--acl-token-file F] [--node NAME]

It prints its base URL on stdout once listening, stops cleanly (exit 0) on SIGTERM or
SIGINT, and on **SIGHUP drops all state** — services, checks, KV and sessions — to
simulate an agent restarted with an empty data directory. The index never goes backwards
across such a reset, as with a real agent whose servers keep their raft log. In Python,
``ConsulStandin.reset()`` does the same.

The pure state (``state``, ``catalog``, ``kv``) is apart from the HTTP layer (``server``).
"""

from devcluster.consul.model import Limits
from devcluster.consul.server import ConsulStandin
from devcluster.consul.state import ConsulState

__all__ = ["ConsulStandin", "ConsulState", "Limits"]
