#!/bin/bash
# The edge: Debian's HAProxy (routes written and applied by wharf-render on the edge's address),
# nginx (its own prefix, the renderer's nginx template), Prometheus (the shipped rules, on
# loopback), and the autoscaler and `wharf ui` reading HAProxy's stats page.
#   edge.sh IP AGENTS
set -eu
ip=$1 agents=$2
# shellcheck source=lib.sh
. /opt/wharf/vagrant/provision/lib.sh
stats=http://$ip:$HAPROXY_STATS_PORT
nginx=/var/lib/wharf-nginx

# nginx under a prefix of its own: the renderer's template writes relative paths under it.
install -d "$nginx/conf" "$nginx/logs" "$nginx/tmp"
if [ ! -f "$nginx/conf/nginx.conf" ]; then
  put "$nginx/conf/nginx.conf" <<EOF2
worker_processes 1;
pid nginx.pid;
error_log logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server { listen $ip:$NGINX_HTTP_PORT default_server; return 503; }
}
EOF2
fi
put /etc/systemd/system/wharf-nginx.service <<EOF2
[Unit]
Description=nginx under $nginx, its config written by wharf-render
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/sbin/nginx -p $nginx -c conf/nginx.conf -g 'daemon off;'
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF2
run_unit wharf-nginx /etc/systemd/system/wharf-nginx.service

systemctl enable -q --now haproxy

put /etc/default/prometheus <<'EOF2'
ARGS="--web.listen-address=127.0.0.1:9090"
EOF2
put /etc/prometheus/prometheus.yml <<EOF2
global:
  scrape_interval: 15s
  evaluation_interval: 15s
rule_files: [$WHARF/observe/rules/wharf.rules.yml]
scrape_configs:
  - job_name: haproxy
    static_configs: [{targets: ["$ip:$HAPROXY_STATS_PORT"]}]
  - job_name: wharf
    static_configs:
      - {targets: ["127.0.0.1:9311"], labels: {daemon: render, node: edge}}
      - {targets: ["127.0.0.1:9312"], labels: {daemon: autoscale, node: edge}}
      - {targets: ["127.0.0.1:8095"], labels: {daemon: ui, node: edge}}
$(for n in $(seq 1 "$agents"); do
  echo "      - {targets: [\"$AGENT_IP_PREFIX$n:9310\"], labels: {daemon: registrator, node: agent$n}}"
done)
EOF2
run_unit prometheus /etc/default/prometheus /etc/prometheus/prometheus.yml

wharf_unit wharf-render "WHARF_RENDER_ARGS=\"--bind $ip --http-port $HAPROXY_HTTP_PORT \
--stats-port $HAPROXY_STATS_PORT --wait 1:5 --metrics-port 9311 \
--template nginx --dest $nginx/conf/nginx.conf --nginx-prefix $nginx --nginx-port $NGINX_HTTP_PORT\""
wharf_unit wharf-autoscale "WHARF_AUTOSCALE_ARGS=\"--haproxy $stats --interval 60 --metrics-port 9312\""
wharf_unit wharf-ui "WHARF_UI_ARGS=\"--listen 127.0.0.1:8095 --haproxy $stats \
--haproxy-config /etc/haproxy/haproxy.cfg\""
