#!/usr/bin/env bash
# Every lab machine: Debian packages Gaia needs and the gaia package in /opt/gaia/venv,
# installed (not editable) from the copy of the repository in /opt/gaia/src.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q python3 python3-venv iproute2 busybox-static </dev/null

if [ ! -x /opt/gaia/venv/bin/python ]; then
    python3 -m venv /opt/gaia/venv
    /opt/gaia/venv/bin/pip install -q --upgrade pip
fi
# Reinstall from the current source on every provision (`vagrant provision` after an edit).
/opt/gaia/venv/bin/pip uninstall -q -y gaia >/dev/null 2>&1 || true
/opt/gaia/venv/bin/pip install -q /opt/gaia/src
ln -sf /opt/gaia/venv/bin/gaia /usr/local/bin/gaia
install -d /etc/gaia
