"""Epoch fencing: refuse commands older than the newest leader known."""
import pytest

from gaia_node.epoch import EpochGuard, StaleEpoch


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def guard(leader_epochs, clock=None):
    reads = []

    def read():
        reads.append(1)
        value = leader_epochs[0]
        if isinstance(value, Exception):
            raise value
        return value
    return EpochGuard(read, max_age=0.5, errors=(OSError,), clock=clock or Clock()), reads


def test_accepts_current_and_newer_epochs():
    g, _ = guard([5])
    g.admit(5)
    g.admit(7)
    assert g.known_epoch == 7 and g.refused_commands == 0


def test_refuses_older_than_leader_and_counts():
    g, _ = guard([9])
    with pytest.raises(StaleEpoch, match="stale epoch 4 < 9"):
        g.admit(4)
    assert g.refused_commands == 1


def test_refuses_older_than_an_accepted_command():
    g, _ = guard([3])
    g.admit(10)
    with pytest.raises(StaleEpoch, match="10"):
        g.admit(9)


def test_refuses_unset_epoch_even_without_masters():
    g, _ = guard([0])
    for bad in (0, -1):
        with pytest.raises(StaleEpoch):
            g.admit(bad)
    assert g.refused_commands == 2
    g.admit(1)


def test_rereads_etcd_when_the_last_read_is_old():
    clock = Clock()
    epochs = [5]
    g, reads = guard(epochs, clock)
    g.admit(5)
    assert len(reads) == 1
    clock.now += 0.2
    g.admit(5)
    assert len(reads) == 1       # fresh enough
    epochs[0] = 8                # failover: a new leader
    clock.now += 0.6
    with pytest.raises(StaleEpoch, match="5 < 8"):
        g.admit(5)               # the deposed leader's command, right after the failover
    assert len(reads) == 2


def test_keeps_last_known_epoch_when_etcd_is_down():
    clock = Clock()
    epochs = [6]
    g, _ = guard(epochs, clock)
    g.refresh()
    epochs[0] = OSError("down")
    clock.now += 5
    assert not g.refresh()
    with pytest.raises(StaleEpoch):
        g.admit(5)
    g.admit(6)
