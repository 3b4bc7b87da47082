"""`gaia dns run`: the DNS server process of one cluster."""
import logging
import sys
import threading

from gaia_common.config import ConfigError, DnsConfig
from gaia_common.daemon import setup_logging, wait_for_termination
from gaia_common.etcd import connect_config
from gaia_common.keys import Keys
from gaia_common.mirror import PrefixMirror
from gaia_dns.cache import Cache
from gaia_dns.names import Zone
from gaia_dns.responder import Responder
from gaia_dns.server import DnsServer, split_listen

log = logging.getLogger("gaia_dns")


def check(cfg: DnsConfig) -> Zone:
    """The zone, or a ConfigError naming the setting at fault."""
    try:
        split_listen(cfg.listen)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(cfg.ttl, int) or cfg.ttl < 0:
        raise ConfigError(f"ttl {cfg.ttl!r}: expected whole seconds, 0 or more")
    if not isinstance(cfg.tcp_connections, int) or cfg.tcp_connections < 1:
        raise ConfigError(f"tcp_connections {cfg.tcp_connections!r}: expected 1 or more")
    if not isinstance(cfg.tcp_idle_timeout, (int, float)) or cfg.tcp_idle_timeout <= 0:
        raise ConfigError(f"tcp_idle_timeout {cfg.tcp_idle_timeout!r}: expected seconds above 0")
    try:
        return Zone(cfg.cluster, cfg.zone)
    except ValueError as e:
        raise ConfigError(f"zone: {e}") from None


class DnsDaemon:
    """The cache, its etcd mirror and the sockets; usable in-process (tests, the bench)."""

    def __init__(self, cfg: DnsConfig):
        zone = check(cfg)
        self.cache = Cache(zone, cfg.ttl)
        # the sockets first: a bad listen address fails at once, not after reaching etcd
        self.server = DnsServer(Responder(self.cache), cfg.listen, cfg.tcp_connections, cfg.tcp_idle_timeout)
        self.etcd = connect_config(cfg)
        self.mirror = PrefixMirror(self.etcd, [Keys(cfg.cluster).services], self.cache.load, self.cache.apply)
        self._stop = threading.Event()

    def start(self) -> "DnsDaemon":
        self.server.start()   # answers SERVFAIL until the first load from etcd
        threading.Thread(target=self.mirror.follow, args=(self._stop,), name="dns-mirror", daemon=True).start()
        return self

    def stop(self):
        self._stop.set()
        self.server.stop()
        self.mirror.close()
        self.etcd.close()


def run(cfg: DnsConfig):
    setup_logging("gaia-dns")
    # a rebuild in the watch's thread (a few ms for a big app) gives the GIL back to the UDP
    # loop every 0.5 ms instead of Python's default 5 ms: queries wait less during changes
    sys.setswitchinterval(0.0005)
    daemon = DnsDaemon(cfg).start()
    log.info("zone %s of cluster %s, from etcd %s", daemon.cache.zone.origin, cfg.cluster, ",".join(cfg.etcd))
    wait_for_termination()
    daemon.stop()
