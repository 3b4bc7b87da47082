"""Reads the fake driver's shared device timeline (tests/vcuda/fake_cuda_exec.c, struct timeline):
how much device time each tag (FAKE_CUDA_TAG: one per container in the tests) got, in total and
per 10 ms bucket since the timeline's origin. Keep the layout in step with the C struct."""
import struct
from dataclasses import dataclass

MAGIC = 0x31304C54454B4146  # "FAKETL01"
_HEADER = struct.Struct("<QqqqiiqqQ")  # magic origin end bucket_ns nbuckets ntags busy launches reserved
_TAGS_OFFSET = 128
_TAG = struct.Struct("<32sqqqq")  # name busy_ns launches first_start_ns last_end_ns


@dataclass
class Tag:
    name: str
    busy_ns: int
    launches: int
    first_start_ns: int
    last_end_ns: int
    buckets: tuple  # device ns per bucket


@dataclass
class Timeline:
    origin_ns: int  # CLOCK_MONOTONIC (time.monotonic_ns() in Python) when the file was created
    end_ns: int
    bucket_ns: int
    tags: dict  # name -> Tag

    def share(self, tag: str, start_s: float, end_s: float) -> float:
        """Percent of device time `tag` got in [start_s, end_s) seconds after the origin (rounded
        to whole buckets)."""
        i0 = int(round(start_s * 1e9 / self.bucket_ns))
        i1 = int(round(end_s * 1e9 / self.bucket_ns))
        if i1 <= i0:
            raise ValueError(f"empty window [{start_s}, {end_s})")
        t = self.tags.get(tag)
        busy = sum(t.buckets[i0:i1]) if t else 0
        return 100.0 * busy / ((i1 - i0) * self.bucket_ns)

    def active_window(self, tag: str):
        """(first, last) second after the origin in which `tag` had device time."""
        t = self.tags[tag]
        nz = [i for i, b in enumerate(t.buckets) if b]
        return nz[0] * self.bucket_ns / 1e9, (nz[-1] + 1) * self.bucket_ns / 1e9

    def max_share(self, tag: str, start_s: float, end_s: float, window_s: float) -> float:
        """The largest share `tag` got over any window of window_s seconds inside [start_s, end_s)."""
        n = max(1, int(round(window_s * 1e9 / self.bucket_ns)))
        i0 = int(round(start_s * 1e9 / self.bucket_ns))
        i1 = int(round(end_s * 1e9 / self.bucket_ns))
        b = self.tags[tag].buckets
        best = 0
        for i in range(i0, max(i0, i1 - n) + 1):
            best = max(best, sum(b[i:i + n]))
        return 100.0 * best / (n * self.bucket_ns)


def read(path) -> Timeline:
    data = open(path, "rb").read()
    magic, origin, end, bucket_ns, nbuckets, ntags, _busy, _launches, _r = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise ValueError(f"{path}: not a fake-driver timeline (magic {magic:#x})")
    tags = {}
    for i in range(ntags):
        off = _TAGS_OFFSET + _TAG.size * i
        raw, busy, launches, first, last = _TAG.unpack_from(data, off)
        name = raw.split(b"\0", 1)[0].decode()
        if not name:
            continue
        boff = _TAGS_OFFSET + _TAG.size * ntags + i * nbuckets * 8
        buckets = struct.unpack_from(f"<{nbuckets}q", data, boff)
        tags[name] = Tag(name, busy, launches, first, last, buckets)
    return Timeline(origin, end, bucket_ns, tags)
