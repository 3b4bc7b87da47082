#!/usr/bin/env bash
# A node machine: one Gaia node manager (gaia-node.service), enrolled with the one-time token
# the Vagrantfile made for it. Settings come from the Vagrantfile as GAIA_*; the lab's CA
# certificate was uploaded to $GAIA_LAB_FILES.
set -euo pipefail
. /opt/gaia/src/vagrant/provision/lib.sh

install -d -m 700 "$GAIA_STATE_DIR"
install -d -m 755 "$GAIA_TLS_DIR"
if [ -d "$GAIA_LAB_FILES" ]; then
    install -m 644 "$GAIA_LAB_FILES/ca.crt" "$GAIA_TLS_DIR/ca.crt"
    rm -rf "$GAIA_LAB_FILES"
fi
# The base settings (base/node.yaml), by the step the netns lab (gaia lab) runs too.
bash /opt/gaia/src/vagrant/provision/configure.sh node /etc/gaia/base

# Enrol once: the node makes its key here, a master signs its certificate and hands it the
# node etcd login; node.yaml in the state dir is the base plus those. The masters may still
# be setting etcd up: the join waits for one to answer.
if [ ! -s "$GAIA_STATE_DIR/node.yaml" ]; then
    masters=()
    for master in ${GAIA_JOIN_MASTERS//,/ }; do
        masters+=(--master "$master")
    done
    GAIA_JOIN_TOKEN="$GAIA_JOIN_TOKEN" gaia node join --cluster "$GAIA_CLUSTER" "${masters[@]}" \
        --ca "$GAIA_TLS_DIR/ca.crt" --state-dir "$GAIA_STATE_DIR" --id "$GAIA_ID" \
        --config /etc/gaia/base/node.yaml --retry-for 1800
fi
ln -sf "$GAIA_STATE_DIR/node.yaml" /etc/gaia/node.yaml

# the packaged unit, as operators install it (packaging/systemd/)
install -m 644 /opt/gaia/src/packaging/systemd/gaia-node.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable gaia-node
systemctl restart --no-block gaia-node
