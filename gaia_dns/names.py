"""The names `gaia dns` answers for, in the zone `<cluster>.<suffix>.` (suffix default `gaia`):

  <cluster>.<suffix>                        the zone's apex: SOA
  <app>.<cluster>.<suffix>                  A/AAAA: the host of every resolvable instance
  <instance>.<app>.<cluster>.<suffix>       A/AAAA: that instance's host
  _<port>._tcp.<app>.<cluster>.<suffix>     SRV: one per resolvable instance with that port
  _<port>._udp.<app>.<cluster>.<suffix>     the same (the registry does not say a port's protocol)

Pure: no etcd, no sockets. Names are compared lowercased (DNS is case-insensitive).
"""
import dataclasses
import re

PROTOCOLS = ("_tcp", "_udp")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


@dataclasses.dataclass(frozen=True)
class Name:
    kind: str              # apex | app | instance | srv | proto (the empty `_tcp.<app>` level)
    app: str = ""
    instance: str = ""
    port: str = ""         # the port's name, without its leading underscore
    protocol: str = ""     # _tcp or _udp


class Zone:
    """One cluster's zone: builds the names of its records and parses queried names."""

    def __init__(self, cluster: str, suffix: str = "gaia"):
        suffix = suffix.strip(".").lower()
        if not suffix or not all(valid_label(label) for label in suffix.split(".")):
            raise ValueError(f"zone suffix {suffix!r}: expected a domain name such as 'gaia'")
        self.origin = f"{cluster.lower()}.{suffix}."   # absolute, with the trailing dot
        self.labels = tuple(self.origin.rstrip(".").split("."))

    def app(self, app: str) -> str:
        return f"{app}.{self.origin}"

    def instance(self, app: str, instance: str) -> str:
        return f"{instance}.{app}.{self.origin}"

    def srv(self, app: str, port: str, protocol: str = "_tcp") -> str:
        return f"_{port}.{protocol}.{app}.{self.origin}"

    def relative(self, qname: str):
        """The labels of `qname` below the apex (lowercased), or None when it is outside the zone."""
        labels = tuple(label for label in qname.lower().rstrip(".").split(".") if label)
        n = len(self.labels)
        if len(labels) < n or labels[len(labels) - n:] != self.labels:
            return None
        return labels[:len(labels) - n]

    def parse(self, qname: str):
        """What `qname` would name: a Name, or None outside the zone or for no shape of ours.

        None for outside (REFUSED) and for an unknown shape (NXDOMAIN) are told apart by
        `relative()`."""
        labels = self.relative(qname)
        if labels is None:
            return None
        return _shape(labels)


def _shape(labels):
    if not labels:
        return Name("apex")
    if len(labels) == 1:
        return Name("app", app=labels[0]) if not labels[0].startswith("_") else None
    if len(labels) == 2 and labels[0] in PROTOCOLS:
        return Name("proto", app=labels[1], protocol=labels[0])
    if len(labels) == 2 and not labels[0].startswith("_"):
        return Name("instance", app=labels[1], instance=labels[0])
    if len(labels) == 3 and labels[0].startswith("_") and len(labels[0]) > 1 and labels[1] in PROTOCOLS:
        return Name("srv", app=labels[2], port=labels[0][1:], protocol=labels[1])
    return None


def valid_label(label: str) -> bool:
    return bool(_LABEL.fullmatch(label))
