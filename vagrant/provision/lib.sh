# Helpers for the provisioning scripts (sourced, not run). Every step is idempotent: files are
# rewritten only when their content changes, and a unit is restarted only when one of its files did.
# shellcheck shell=bash

WHARF=/opt/wharf
# shellcheck source=../cluster.env
. "$WHARF/vagrant/cluster.env"

changed=""

# put PATH [MODE] < content: write PATH if its content differs, remember that it changed.
put() {
  tmp=$(mktemp)
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
    return 0
  fi
  install -D -m "${2:-644}" "$tmp" "$1"
  rm -f "$tmp"
  changed="$changed $1 "
}

# run_unit UNIT [PATH...]: enable and start UNIT; restart it if this run changed any PATH.
run_unit() {
  unit=$1
  shift
  systemctl daemon-reload
  systemctl enable -q "$unit"
  for path in "$@"; do
    case "$changed" in *" $path "*)
      systemctl restart "$unit"
      return 0
      ;;
    esac
  done
  systemctl start "$unit"
}

# apt_install PACKAGE...: install what is missing.
apt_install() {
  missing=""
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
  fi
}

# pull IMAGE: fetch a pinned image once.
pull() {
  docker image inspect "$1" >/dev/null 2>&1 || docker pull -q "$1"
}

# container_unit NAME DESCRIPTION DOCKER_RUN_ARGS: a unit running one container on the host network.
container_unit() {
  put "/etc/systemd/system/$1.service" <<EOU
[Unit]
Description=$2
After=docker.service network-online.target
Requires=docker.service
Wants=network-online.target

[Service]
ExecStartPre=-/usr/bin/docker rm -f $1
ExecStart=/usr/bin/docker run --rm --name $1 --net=host $3
ExecStop=/usr/bin/docker stop -t 20 $1
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
EOU
  run_unit "$1" "/etc/systemd/system/$1.service"
}

# consul_agent server|client NODE IP: Debian 11's Consul (the one `make bootstrap` fetched), a
# server on the master, a client joined to it elsewhere. Its HTTP API is on loopback, and on the
# master's private address too (for the host: `vagrant/env`).
consul_agent() {
  if [ "$1" = server ]; then
    role='"server": true, "bootstrap_expect": 1,'
    clients="127.0.0.1 $3"
  else
    role="\"retry_join\": [\"$MASTER_IP\"],"
    clients="127.0.0.1"
  fi
  put /etc/consul.d/wharf.json <<EOC
{
  "datacenter": "wharf",
  "node_name": "$2",
  "data_dir": "/var/lib/consul",
  "bind_addr": "$3",
  "client_addr": "$clients",
  $role
  "ports": {"dns": -1, "grpc": -1},
  "ui": false
}
EOC
  put /etc/systemd/system/consul.service <<EOU
[Unit]
Description=Consul agent ($1)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$WHARF/.venv/bin/consul agent -config-dir=/etc/consul.d
ExecReload=/bin/kill -HUP \$MAINPID
DynamicUser=yes
StateDirectory=consul
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
EOU
  run_unit consul /etc/consul.d/wharf.json /etc/systemd/system/consul.service
}

# wharf_unit NAME [ARGS]: install systemd/NAME.service with its flags in /etc/default/NAME.
wharf_unit() {
  put "/etc/systemd/system/$1.service" <"$WHARF/systemd/$1.service"
  put "/etc/default/$1" <<<"$2"
  run_unit "$1" "/etc/systemd/system/$1.service" "/etc/default/$1"
}
