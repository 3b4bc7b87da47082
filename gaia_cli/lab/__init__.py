"""gaia lab: the Vagrant lab's topology on one Linux machine, out of network namespaces.

    host netns                   switch netns gaialab-<name>          one netns per lab host
    gaialab<hash> 10.x.y.1/24 <-veth-> "host" --+
                                                bridge lab0 -- gaia-master-1 <-veth-> eth0 10.x.y.11
                                                            -- gaia-node-1   <-veth-> eth0 10.x.y.101

Hosts are named and addressed as in vagrant/Vagrantfile: gaia-master-<i> (.10+i) run an etcd
member and a master replica, gaia-node-<i> (.100+i) a node manager. Their configs are rendered
by vagrant/provision/configure.sh from vagrant/templates, the step the VMs' provisioning runs,
so both labs configure a host alike.

The bridge sits in a namespace of its own so that the host's firewall (br_netfilter sends
bridged frames through the host's iptables FORWARD chain, which a Docker engine sets to DROP)
never sees the lab's traffic, and the host keeps one link and one connected route.

Modules: plan (names and addresses, pure), net (namespaces and links), render (the shared
provisioning step), enter (runs a command inside a lab host), lab (up, down, status, faults).
"""
