"""Scorers. Packing (most allocated after placing) keeps whole nodes free for large requests;
spreading (least allocated) is used where the request asks for it."""
import numpy as np


def _utilisation_after(state, eq, rows) -> np.ndarray:
    """Mean over the class's dimensions of the node's allocated share once one more instance
    is placed: 0 (empty) .. 1 (full) on nodes where it fits."""
    if eq.dims.size == 0:
        return np.zeros(len(rows))
    free_after = state.free[rows[:, None], eq.dims] - eq.shape_dims
    # above 1 only where the shape does not fit, and those nodes are never picked
    # np.add.reduce rather than .sum(): the same sum without a Python wrapper (see Fits.room)
    return 1.0 - np.add.reduce(free_after * eq.inv_capacity_dims[rows], axis=1) / eq.dims.size


class MostAllocated:
    name = "packing"

    def applies(self, eq) -> bool:
        return eq.spread is None or not eq.spread.prefer_spread

    def score(self, state, eq, rows) -> np.ndarray:
        return _utilisation_after(state, eq, rows)


class LeastAllocated:
    name = "spreading"

    def applies(self, eq) -> bool:
        return eq.spread is not None and eq.spread.prefer_spread

    def score(self, state, eq, rows) -> np.ndarray:
        return 1.0 - _utilisation_after(state, eq, rows)
