"""A Mesos master stand-in with a pool of agents that really run tasks, for the dev cluster and tests.

Mesos cannot be installed on the development machines, so this speaks the parts of Mesos that
wharf and its clients use: the v1 scheduler API (``POST /api/v1/scheduler``, RecordIO event
stream, offers, filters, status updates with acknowledgements, reconciliation, framework
failover), ZooKeeper registration as real masters do it (``zk://host:port/mesos``), and the
read-only ``/master/state``, ``/metrics/snapshot``, ``/master/redirect``, ``/health``, and the
operator's ``POST /master/teardown`` (a removed framework's id is refused as Mesos refuses it).
Its agents live on this machine, each on its own loopback address with a port range free when it starts; a
task with a Docker container runs on the dev cluster's Docker engine, one without runs as a
host process. A kill is TASK_KILLING (to frameworks with that capability), SIGTERM, then SIGKILL
once the task's kill grace period is over; an ended task's host ports stay out of offers for
``port_quarantine`` seconds (``--port-quarantine``, 5 by default). What it does not implement it
refuses with an explicit error.

Run it in the foreground::

    python -m devcluster.mesos --port 5050 --zk zk://127.0.0.1:2181/mesos \\
        --docker-host unix:///path/docker.sock --state-dir DIR [--agents 3]

The state machine (``master`` and its records in ``model``; ``offers``, ``resources``,
``protocol``) and ``docker_run`` (how a Docker task is run) are pure; ``agents`` runs tasks
(``images`` pulls their images; BRIDGE tasks join the dev cluster's network, ``devcluster.bridge``),
``api`` is the HTTP layer, ``zk`` the registration, ``views`` the state JSON, ``standin`` wires
them; ``client`` is a bare scheduler client for tests and benchmarks.
"""

from devcluster.mesos.standin import MesosStandin

__all__ = ["MesosStandin"]
