#!/usr/bin/env bash
# A master machine: one member of the lab's etcd cluster (Debian's etcd-server) and one
# Gaia master replica (gaia-master.service). Settings come from the Vagrantfile as GAIA_*;
# the lab's CA, etcd passwords and join tokens were uploaded to $GAIA_LAB_FILES.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
. /opt/gaia/src/vagrant/provision/lib.sh

apt-get install -y -q etcd-server </dev/null

# The lab's secrets where the configs name them (root only); then the upload goes.
install -d -m 755 "$GAIA_TLS_DIR"
install -d -m 700 "$GAIA_SECRETS_DIR"
if [ -d "$GAIA_LAB_FILES" ]; then
    install -m 644 "$GAIA_LAB_FILES/ca.crt" "$GAIA_TLS_DIR/ca.crt"
    install -m 600 "$GAIA_LAB_FILES/ca.key" "$GAIA_TLS_DIR/ca.key"
    install -m 600 "$GAIA_LAB_FILES"/*.password "$GAIA_LAB_FILES/join-tokens" "$GAIA_SECRETS_DIR/"
    rm -rf "$GAIA_LAB_FILES"
fi
# This machine's certificates from the lab's CA: the master's (gRPC, and its etcd client
# certificate), etcd's serving one, and user admin's for the CLI here.
issue() { gaia ca issue --ca-dir "$GAIA_TLS_DIR" --out "$GAIA_TLS_DIR" "$@" >/dev/null; }
issue --role master --name "$GAIA_ID" --host "$GAIA_IP" --stem master
issue --role user --name "etcd-$GAIA_ID" --host "$GAIA_IP" --host 127.0.0.1 --stem etcd
issue --role user --name admin --stem admin
chown etcd:etcd "$GAIA_TLS_DIR/etcd.key"

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

# etcd's users and roles (RBAC) and the nodes' join tokens, once etcd has a quorum (the other
# members may come up after this machine is done): in the background, then the master starts.
# Every master runs it; it changes nothing the second time, and a used token stays used.
tokens=()
while read -r token; do
    [ -n "$token" ] && tokens+=(--join-token "$token")
done < "$GAIA_SECRETS_DIR/join-tokens"
systemctl stop gaia-lab-etcd-setup 2>/dev/null || true
systemctl reset-failed gaia-lab-etcd-setup 2>/dev/null || true
systemd-run --unit=gaia-lab-etcd-setup --no-block --collect \
    /bin/sh -c '"$@" && systemctl restart gaia-master' sh \
    /opt/gaia/venv/bin/gaia etcd setup --cluster "$GAIA_CLUSTER" --etcd https://127.0.0.1:2379 \
    --root-password-file "$GAIA_SECRETS_DIR/root.password" --out "$GAIA_SECRETS_DIR" \
    --etcd-ca "$GAIA_TLS_DIR/ca.crt" --etcd-cert "$GAIA_TLS_DIR/admin.crt" --etcd-key "$GAIA_TLS_DIR/admin.key" \
    --wait 3600 "${tokens[@]}"

# The lab's client config on this machine, so `gaia --cluster $GAIA_CLUSTER ...` works here:
# user admin on gRPC, and the cluster's client login on etcd (it reads the masters' addresses).
gaia cluster add "$GAIA_CLUSTER" --etcd "$GAIA_ETCD_ENDPOINTS" \
    --ca "$GAIA_TLS_DIR/ca.crt" --cert "$GAIA_TLS_DIR/admin.crt" --key "$GAIA_TLS_DIR/admin.key" \
    --etcd-ca "$GAIA_TLS_DIR/ca.crt" --etcd-cert "$GAIA_TLS_DIR/admin.crt" --etcd-key "$GAIA_TLS_DIR/admin.key" \
    --etcd-user "gaia-$GAIA_CLUSTER-client" \
    --etcd-password-file "$GAIA_SECRETS_DIR/gaia-$GAIA_CLUSTER-client.password" >/dev/null 2>&1 || \
    echo "note: could not add cluster $GAIA_CLUSTER to the client config" >&2
