"""Reading the master replicas from etcd: the one etcd read a client is allowed.

Candidates hold keys under masters/election/; the lowest create revision leads and that
revision is its epoch (the fencing token), as in etcd's own election recipe.
"""
from gaia_common.etcd import retry
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2


def list_masters(etcd, keys: Keys) -> list:
    """All live replicas, leader first, each with `epoch` (create revision) and `leader` set."""
    found = []
    for value, meta in retry(lambda: list(etcd.get_prefix(keys.election))):
        info = types_pb2.MasterInfo()
        info.ParseFromString(value)
        info.epoch = meta.create_revision
        found.append(info)
    found.sort(key=lambda m: m.epoch)
    if found:
        found[0].leader = True
    return found


def current_epoch(etcd, keys: Keys) -> int:
    """The leader's epoch, or 0 when no replica is campaigning."""
    masters = list_masters(etcd, keys)
    return masters[0].epoch if masters else 0
