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


def test_accepts_the_current_epoch_and_a_newer_one_once_etcd_confirms_it():
    """Only etcd raises the known epoch (it used to be any higher command epoch, which let a
    made-up one lock the real leader out): a new leader's first command is checked against etcd."""
    epochs = [5]
    g, reads = guard(epochs)
    g.admit(5)
    epochs[0] = 7                # a failover the background refresh has not seen yet
    g.admit(7)                   # forces a read, although the last one is fresh
    assert g.known_epoch == 7 and g.refused_commands == 0 and len(reads) == 2


def test_forged_future_epoch_is_refused_and_does_not_lock_out_the_leader():
    g, reads = guard([5])
    g.admit(5)
    with pytest.raises(StaleEpoch, match=r"epoch 4611686018427387904 is not one etcd knows \(the leader's epoch is 5\)"):
        g.admit(2 ** 62)
    assert g.known_epoch == 5 and g.refused_commands == 1 and len(reads) == 2
    g.admit(5)                   # the real leader still commands the node


def test_without_any_master_a_command_epoch_is_obeyed_but_not_remembered():
    epochs = [0]
    g, _ = guard(epochs)
    g.admit(2 ** 62)             # nobody campaigns: nothing to confirm against, nobody to lock out
    assert g.known_epoch == 0
    epochs[0] = 5                # the first leader is elected
    g.admit(5)
    assert g.known_epoch == 5 and g.refused_commands == 0


def test_future_epoch_is_refused_while_etcd_cannot_confirm_it():
    clock = Clock()
    epochs = [5]
    g, _ = guard(epochs, clock)
    g.admit(5)
    epochs[0] = OSError("down")
    with pytest.raises(StaleEpoch, match="etcd cannot be read to confirm it"):
        g.admit(6)
    clock.now += 5               # the cache is old and etcd still away: the known epoch still works
    g.admit(5)
    assert g.known_epoch == 5 and g.refused_commands == 1


def test_refuses_older_than_leader_and_counts():
    g, _ = guard([9])
    with pytest.raises(StaleEpoch, match="stale epoch 4 < 9"):
        g.admit(4)
    assert g.refused_commands == 1


def test_refuses_older_than_an_accepted_command():
    epochs = [3]
    g, _ = guard(epochs)
    epochs[0] = 10
    g.admit(10)
    epochs[0] = 3                # an etcd that answers late with an older leader lowers nothing
    with pytest.raises(StaleEpoch, match="9 < 10"):
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
