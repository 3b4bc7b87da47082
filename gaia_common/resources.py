"""Arithmetic over Resources messages: the dimensions Sfair and the node account for."""
from gaia_common.pb import types_pb2

DIMENSIONS = tuple(f.name for f in types_pb2.Resources.DESCRIPTOR.fields)


def as_tuple(r: types_pb2.Resources) -> tuple:
    return tuple(getattr(r, d) for d in DIMENSIONS)


def add(a: types_pb2.Resources, b: types_pb2.Resources) -> types_pb2.Resources:
    return types_pb2.Resources(**{d: getattr(a, d) + getattr(b, d) for d in DIMENSIONS})


def sub(a: types_pb2.Resources, b: types_pb2.Resources) -> types_pb2.Resources:
    return types_pb2.Resources(**{d: getattr(a, d) - getattr(b, d) for d in DIMENSIONS})


def fits(request: types_pb2.Resources, free: types_pb2.Resources) -> bool:
    """True when every requested dimension is within what is free."""
    return all(getattr(request, d) <= getattr(free, d) for d in DIMENSIONS)


def shortfall(request: types_pb2.Resources, free: types_pb2.Resources) -> list:
    """Dimensions in which `request` exceeds `free` (explains why nothing fits)."""
    return [d for d in DIMENSIONS if getattr(request, d) > getattr(free, d)]


def total(items) -> types_pb2.Resources:
    out = types_pb2.Resources()
    for r in items:
        out = add(out, r)
    return out
