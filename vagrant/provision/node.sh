#!/usr/bin/env bash
# A node machine: one Gaia node manager (gaia-node.service). Settings come from the
# Vagrantfile as GAIA_*.
set -euo pipefail
. /opt/gaia/src/vagrant/provision/lib.sh

install -d -m 700 /var/lib/gaia/node
render node.yaml /etc/gaia/node.yaml
render gaia-node.service /etc/systemd/system/gaia-node.service
systemctl daemon-reload
systemctl enable gaia-node
systemctl restart --no-block gaia-node
