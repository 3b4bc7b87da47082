"""Placement over a cluster whose every node just left: nothing is placed, nothing raises."""
import types

import numpy as np

from gaia_master.sfair.placement import choose_nodes


class _NoDomain:
    def applies(self, eq):
        return False


def test_one_instance_on_no_nodes_places_nothing():
    eq = types.SimpleNamespace(slots=np.zeros(0, dtype=np.int64), pick=np.zeros(0), score=np.zeros(0), spread=None)
    rows, n = choose_nodes(None, eq, 1, _NoDomain())
    assert rows.size == 0 and n.size == 0
    rows, n = choose_nodes(None, eq, 5, _NoDomain())
    assert rows.size == 0 and n.size == 0
