"""Fits: how many instances of the class's shape fit in each node's free capacity."""
import numpy as np

from gaia_common.resources import DIMENSIONS
from gaia_master.sfair.framework import FilterResult

MANY = np.int64(1 << 30)             # a shape of all zeros fits without bound


class Fits:
    name = "fits"

    def applies(self, eq) -> bool:
        return True

    def room(self, state, eq, rows) -> np.ndarray:
        if eq.dims.size == 0:
            return np.full(len(state.free) if rows is None else len(rows), MANY, dtype=np.int64)
        free = state.free[:, eq.dims] if rows is None else state.free[rows[:, None], eq.dims]
        # the ufunc's own reduce: ndarray.min goes through a Python wrapper, and this runs
        # once per scheduling step on a few rows, where call overhead is the whole cost
        return np.minimum.reduce(np.maximum(free // eq.shape_dims, 0), axis=1)

    def explain(self, state, eq, eligible) -> FilterResult:
        mask = self.room(state, eq, None) > 0
        short = state.free[eligible & ~mask][:, eq.dims] < eq.shape[eq.dims]
        dims = [DIMENSIONS[int(eq.dims[j])] for j in np.flatnonzero(short.any(axis=0))] if short.size else []
        return FilterResult(self.name, mask, f"short of {', '.join(dims)}" if dims else "")
