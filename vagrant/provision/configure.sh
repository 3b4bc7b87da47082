#!/usr/bin/env bash
# One lab host's Gaia configuration, rendered from vagrant/templates into DIR. Both labs run
# this step: the VMs' provisioning (master.sh, node.sh) and the network-namespace lab
# (`gaia lab up`, gaia_cli/lab/render.py), so the two configure a host alike. The settings
# are GAIA_* environment variables, the ones the Vagrantfile passes.
#
#   configure.sh master DIR   DIR/etcd.env (the etcd member's ETCD_* settings), DIR/master.yaml
#   configure.sh node DIR     DIR/node.yaml
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ $# -ne 2 ]; then
    echo "usage: $0 master|node DIR" >&2
    exit 2
fi
case "$1" in
    master)
        render etcd.default "$2/etcd.env"
        render master.yaml "$2/master.yaml"
        ;;
    node)
        render node.yaml "$2/node.yaml"
        ;;
    *)
        echo "configure.sh: unknown role '$1' (master or node)" >&2
        exit 2
        ;;
esac
