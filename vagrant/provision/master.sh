#!/usr/bin/env bash
# A master machine: one member of the lab's etcd cluster (Debian's etcd-server) and one
# Gaia master replica (gaia-master.service). Settings come from the Vagrantfile as GAIA_*.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
. /opt/gaia/src/vagrant/provision/lib.sh

apt-get install -y -q etcd-server </dev/null

# The package starts a single-member etcd of its own; replace it with our member. The data
# dir is new, so the member bootstraps with the cluster named in ETCD_INITIAL_CLUSTER.
render etcd.default /etc/default/etcd.new
if ! cmp -s /etc/default/etcd.new /etc/default/etcd; then
    systemctl stop etcd || true
    mv /etc/default/etcd.new /etc/default/etcd
    rm -rf /var/lib/etcd/gaia
else
    rm -f /etc/default/etcd.new
fi
install -d -o etcd -g etcd -m 700 /var/lib/etcd/gaia
systemctl enable etcd
# --no-block: a member waits for a quorum, and the other members may not be up yet.
systemctl start --no-block etcd

render master.yaml /etc/gaia/master.yaml
render gaia-master.service /etc/systemd/system/gaia-master.service
systemctl daemon-reload
systemctl enable gaia-master
systemctl restart --no-block gaia-master

# The lab's client config on this machine, so `gaia --cluster $GAIA_CLUSTER ...` works here.
gaia cluster add "$GAIA_CLUSTER" --etcd "$GAIA_ETCD_ENDPOINTS" >/dev/null 2>&1 || \
    echo "note: could not add cluster $GAIA_CLUSTER to the client config" >&2
