#!/usr/bin/env bash
# A node machine: one Gaia node manager (gaia-node.service). Settings come from the
# Vagrantfile as GAIA_*.
set -euo pipefail
. /opt/gaia/src/vagrant/provision/lib.sh

install -d -m 700 "$GAIA_STATE_DIR"
# node.yaml, by the step the netns lab (gaia lab) runs too.
bash /opt/gaia/src/vagrant/provision/configure.sh node /etc/gaia
# the packaged unit, as operators install it (packaging/systemd/)
install -m 644 /opt/gaia/src/packaging/systemd/gaia-node.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable gaia-node
systemctl restart --no-block gaia-node
