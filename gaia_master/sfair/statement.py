"""Tentative placements that commit together or roll back in reverse (Volcano's statement).

A gang places its instances through a statement: if the last one does not fit, every
tentative placement is undone in reverse order, so no partial hold leaves the cycle.
"""
from __future__ import annotations


class Statement:
    def __init__(self, state):
        self.state = state
        self._ops: list = []                 # (rows, n, shape, app, pool)

    def place(self, rows, n, shape, app: str, pool: int) -> None:
        self.state.place(rows, n, shape, app, pool)
        self._ops.append((rows, n, shape, app, pool))

    @property
    def placed(self) -> list:
        return list(self._ops)

    def commit(self) -> list:
        ops, self._ops = self._ops, []
        return ops

    def discard(self) -> None:
        while self._ops:
            rows, n, shape, app, pool = self._ops.pop()
            self.state.unplace(rows, n, shape, app, pool)
