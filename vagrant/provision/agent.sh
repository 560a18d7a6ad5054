#!/bin/bash
# A Mesos agent: the agent image with the Docker containerizer on this machine's engine, and the
# registrator turning its containers into Consul services.
#   agent.sh NODE IP
set -eu
node=$1 ip=$2
# shellcheck source=lib.sh
. /opt/wharf/vagrant/provision/lib.sh

pull "$MESOS_AGENT_IMAGE"
install -d /var/lib/mesos/agent
# The image's libc is older than Debian's docker client needs: the agent runs the host's own client
# through a chroot into the host's root, mounted read-only.
put /etc/wharf/mesos/docker 755 <<'EOF2'
#!/bin/sh
exec chroot /host /usr/bin/docker "$@"
EOF2

# The work directory has the same path inside and out: task containers mount their sandbox from it.
container_unit mesos-agent "Mesos agent ($MESOS_AGENT_IMAGE)" "--privileged \
-e MESOS_IP=$ip -e MESOS_HOSTNAME=$ip -e MESOS_HOSTNAME_LOOKUP=false -e MESOS_PORT=5051 \
-e MESOS_MASTER=zk://$MASTER_IP:2181/mesos -e MESOS_CONTAINERIZERS=docker,mesos \
-e MESOS_DOCKER=/usr/local/bin/docker -e MESOS_LAUNCHER=posix -e MESOS_ISOLATION=posix/cpu,posix/mem \
-e MESOS_SYSTEMD_ENABLE_SUPPORT=false -e MESOS_SWITCH_USER=false \
-e MESOS_EXECUTOR_REGISTRATION_TIMEOUT=5mins -e MESOS_RESOURCES=ports:[31000-32000] \
-e MESOS_WORK_DIR=/var/lib/mesos/agent -v /var/lib/mesos/agent:/var/lib/mesos/agent \
-v /var/run/docker.sock:/var/run/docker.sock -v /:/host:ro \
-v /etc/wharf/mesos/docker:/usr/local/bin/docker:ro \
$MESOS_AGENT_IMAGE"

# Its /metrics on the agent's private address, where the edge's Prometheus scrapes it.
wharf_unit wharf-registrator \
  "WHARF_REGISTRATOR_ARGS=\"--host-ip $ip --hostname $node --metrics-port 9310 --resync 60\"
WHARF_METRICS_ADDRESS=$ip"
