"""Serving a daemon's Prometheus metrics at http://<metrics_listen>/metrics.

Each daemon keeps its metrics in a registry of its own, never prometheus_client's global
one: tests run several masters and nodes in one process, and each must show only its own.
"""
import logging

import prometheus_client
from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger("gaia.metrics")


def new_registry() -> CollectorRegistry:
    """A daemon's own registry. The <name>_created series (when each counter was made) are
    turned off: they double the page for nothing a dashboard uses (process-wide, which suits
    a daemon)."""
    prometheus_client.disable_created_metrics()
    return CollectorRegistry()


def split_address(address: str) -> tuple:
    """'host:port' or '[v6]:port' -> (host, port); ValueError when it is neither."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r}: expected host:port with a port from 0 to 65535")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ValueError(f"{address!r}: no host (use 0.0.0.0 for every address)")
    return host, int(port)


class MetricsServer:
    """/metrics of `registry` on `listen` (port 0: any free one), in a thread of its own."""

    def __init__(self, registry, listen: str, daemon: str):
        host, port = split_address(listen)
        self._server, _thread = start_http_server(port, addr=host, registry=registry)
        self.address = f"{listen.rpartition(':')[0]}:{self._server.server_address[1]}"
        log.info("%s metrics at http://%s/metrics", daemon, self.address)

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def serve(registry, listen: str, daemon: str):
    """A MetricsServer, or None when `listen` is empty (metrics not served)."""
    return MetricsServer(registry, listen, daemon) if listen else None
