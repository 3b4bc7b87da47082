"""What Gaia's daemons, its AM and its CLI share: etcd key layout, config, resources, specs, RPC."""
import os

__version__ = "0.1.0"

# Gaia's processes fork only to exec at once (shims, containers, daemons), never to use gRPC
# in the child: gRPC's fork handlers are pure cost, and log a line per fork while calls are in
# flight. Set before grpc is imported, which every entry point does after importing gaia_common.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
