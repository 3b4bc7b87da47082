#!/usr/bin/env bash
# A master machine: one member of the lab's etcd cluster (Debian's etcd-server) and one
# Gaia master replica (gaia-master.service). Settings come from the Vagrantfile as GAIA_*.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
. /opt/gaia/src/vagrant/provision/lib.sh

apt-get install -y -q etcd-server </dev/null

# etcd.env and master.yaml, by the step the netns lab (gaia lab) runs too.
bash /opt/gaia/src/vagrant/provision/configure.sh master /etc/gaia

# The package starts a single-member etcd of its own; replace it with our member. The data
# dir is new, so the member bootstraps with the cluster named in ETCD_INITIAL_CLUSTER.
if ! cmp -s /etc/gaia/etcd.env /etc/default/etcd; then
    systemctl stop etcd || true
    cp /etc/gaia/etcd.env /etc/default/etcd
    rm -rf "$GAIA_ETCD_DATA_DIR"
fi
install -d -o etcd -g etcd -m 700 "$GAIA_ETCD_DATA_DIR"
systemctl enable etcd
# --no-block: a member waits for a quorum, and the other members may not be up yet.
systemctl start --no-block etcd

# the packaged unit, as operators install it (packaging/systemd/)
install -m 644 /opt/gaia/src/packaging/systemd/gaia-master.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable gaia-master
systemctl restart --no-block gaia-master

# The lab's client config on this machine, so `gaia --cluster $GAIA_CLUSTER ...` works here.
gaia cluster add "$GAIA_CLUSTER" --etcd "$GAIA_ETCD_ENDPOINTS" >/dev/null 2>&1 || \
    echo "note: could not add cluster $GAIA_CLUSTER to the client config" >&2
