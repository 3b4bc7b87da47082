"""What Gaia's daemons, its AM and its CLI share: etcd key layout, config, resources, specs, RPC."""

__version__ = "0.1.0"
