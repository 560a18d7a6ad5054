#!/bin/bash
# Every machine: wharf from the synced project at /opt/wharf (`make bootstrap`: Debian's packages,
# the virtualenv, Consul 1.8.7), /etc/wharf/wharf.yaml, the Consul agent, Docker.
#   common.sh ROLE NODE IP
set -eu
role=$1 node=$2 ip=$3
# shellcheck source=lib.sh
. /opt/wharf/vagrant/provision/lib.sh

# What `make bootstrap` expects of a machine beyond a bare Debian.
apt_install make gcc python3-dev python3-venv git ca-certificates rsync
make -C "$WHARF" bootstrap

# bootstrap installs every server package the dev cluster uses; Debian starts them on install. Keep
# only what this role runs.
keep=""
case "$role" in edge) keep="haproxy prometheus" ;; esac
for service in nginx haproxy prometheus docker-registry; do
  case " $keep " in *" $service "*) continue ;; esac
  systemctl disable -q --now "$service" 2>/dev/null || true
done
systemctl enable -q --now docker

put /etc/wharf/wharf.yaml <<EOY
marathon_url: http://$MASTER_IP:$MARATHON_PORT
mesos_master: zk://$MASTER_IP:2181/mesos
chronos_url: http://$MASTER_IP:$CHRONOS_PORT
consul_http_addr: 127.0.0.1:8500
wharf_zk: $MASTER_IP:2181/wharf
log_format: json
EOY

mode=client
[ "$role" = master ] && mode=server
consul_agent "$mode" "$node" "$ip"
