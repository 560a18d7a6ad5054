#!/bin/bash
# The master: ZooKeeper (Debian's, run as the dev cluster runs it), the Mesos master, Marathon and
# Chronos (their upstream images, pinned in cluster.env), all on the master's private address.
#   master.sh IP
set -eu
ip=$1
# shellcheck source=lib.sh
. /opt/wharf/vagrant/provision/lib.sh
zk=zk://$ip:2181

put /etc/zookeeper/wharf/zoo.cfg <<EOF2
tickTime=2000
dataDir=/var/lib/wharf-zookeeper
clientPort=2181
clientPortAddress=$ip
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,mntr,srvr
EOF2
put /etc/systemd/system/zookeeper.service <<EOF2
[Unit]
Description=ZooKeeper (standalone)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/java -Xmx256m -Dzookeeper.root.logger=INFO,CONSOLE -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar org.apache.zookeeper.server.ZooKeeperServerMain /etc/zookeeper/wharf/zoo.cfg
DynamicUser=yes
StateDirectory=wharf-zookeeper
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF2
run_unit zookeeper /etc/zookeeper/wharf/zoo.cfg /etc/systemd/system/zookeeper.service

for image in "$MESOS_MASTER_IMAGE" "$MARATHON_IMAGE" "$CHRONOS_IMAGE"; do pull "$image"; done
install -d /var/lib/mesos/master

container_unit mesos-master "Mesos master ($MESOS_MASTER_IMAGE)" "\
-e MESOS_IP=$ip -e MESOS_HOSTNAME=$ip -e MESOS_HOSTNAME_LOOKUP=false -e MESOS_PORT=5050 \
-e MESOS_ZK=$zk/mesos -e MESOS_QUORUM=1 -e MESOS_CLUSTER=wharf \
-e MESOS_WORK_DIR=/var/lib/mesos/master -v /var/lib/mesos/master:/var/lib/mesos/master \
$MESOS_MASTER_IMAGE"

container_unit marathon "Marathon ($MARATHON_IMAGE)" "-e LIBPROCESS_IP=$ip $MARATHON_IMAGE \
--master $zk/mesos --zk $zk/marathon --hostname $ip \
--http_address $ip --http_port $MARATHON_PORT --enable_features task_killing"

container_unit chronos "Chronos ($CHRONOS_IMAGE)" "-e LIBPROCESS_IP=$ip \
-e PORT0=$CHRONOS_PORT -e PORT1=$((CHRONOS_PORT + 1)) $CHRONOS_IMAGE \
--zk_hosts $ip:2181 --master $zk/mesos --hostname $ip"

# The KV watchers are installed for `systemctl enable --now`; they deploy whatever their prefix holds.
for unit in wharf-apps-watch-kv wharf-jobs-watch-kv; do
  put "/etc/systemd/system/$unit.service" <"$WHARF/systemd/$unit.service"
  put "/etc/default/$unit" <"$WHARF/systemd/default/$unit"
done
systemctl daemon-reload
