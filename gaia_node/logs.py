"""A container's stdout and stderr, read back for Node.Logs: the tail, then (follow) what comes.

Two sources, one shape ((stream, bytes) pairs):
  files   <container dir>/stdout and /stderr: what the process driver's shim writes, and what
          the docker driver copies there when a container ends (drivers/docker.py, release);
  engine  the Docker engine's own log of a container it still holds.
`tail_bytes` counts per stream (the two are separate files, with no order between them): the
last N bytes of each, 0 for everything kept. Following ends when the container has ended and
its output is drained, when the reader goes away (`active()` turns false), or after
MAX_FOLLOW seconds; every wait in here is bounded.
"""
import collections
import datetime
import os
import queue
import threading
import time

from gaia_node import state

STREAMS = (state.STDOUT, state.STDERR)
CHUNK = 64 * 1024                # at most this much per message
POLL = 0.1                       # how often a follower looks for new output
MAX_FOLLOW = 24 * 3600.0         # one follow never outlives this; the client may ask again


def read(*, directory: str, driver, handle, ended, active, follow: bool = False, tail_bytes: int = 0):
    """(stream, data) pairs of one container. `ended()`: the container has ended;
    `active()`: the reader still wants more."""
    if handle is not None and hasattr(driver, "engine_logs") and driver.has_engine_logs(handle):
        yield from _from_engine(driver, handle, active, follow, tail_bytes)  # ends with the container
    else:
        yield from _from_files(directory, ended, active, follow, tail_bytes)


# ---- files ----

def _from_files(directory: str, ended, active, follow: bool, tail_bytes: int):
    offsets = {}
    for stream in STREAMS:
        size = _size(os.path.join(directory, stream))
        offsets[stream] = max(0, size - tail_bytes) if tail_bytes > 0 else 0
    deadline = time.monotonic() + MAX_FOLLOW
    while True:
        finished = ended()   # read before draining: output written before the end is never lost
        progressed = False
        for stream in STREAMS:
            for data in _read_from(os.path.join(directory, stream), offsets, stream):
                progressed = True
                yield stream, data
        if not follow or finished or not active() or time.monotonic() > deadline:
            return
        if not progressed:
            time.sleep(POLL)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path: str, offsets: dict, stream: str):
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        if _size(path) < offsets[stream]:   # truncated under us: start again from its beginning
            offsets[stream] = 0
        f.seek(offsets[stream])
        while True:
            data = f.read(CHUNK)
            if not data:
                return
            offsets[stream] += len(data)
            yield data


# ---- the Docker engine ----

def _from_engine(driver, handle, active, follow: bool, tail_bytes: int):
    """One reader thread per stream (the engine's API gives one stream per request with
    stream identity), merged here through a queue so the caller's thread can notice a
    reader that went away."""
    out = queue.Queue(maxsize=64)
    stop = threading.Event()
    readers = [_EngineReader(driver, handle, stream, follow, tail_bytes, out, stop) for stream in STREAMS]
    for reader in readers:
        reader.start()
    pending = len(readers)
    deadline = time.monotonic() + MAX_FOLLOW
    try:
        while pending:
            try:
                item = out.get(timeout=POLL)
            except queue.Empty:
                if not active() or time.monotonic() > deadline:
                    return
                continue
            if item is None:
                pending -= 1
            else:
                yield item
    finally:
        stop.set()
        for reader in readers:
            reader.close()


class _EngineReader(threading.Thread):
    def __init__(self, driver, handle, stream, follow, tail_bytes, out, stop):
        super().__init__(name=f"gaia-logs-{handle.container_id}-{stream}", daemon=True)
        self.driver, self.handle, self.stream = driver, handle, stream
        self.follow, self.tail_bytes = follow, tail_bytes
        self.out, self.stop = out, stop
        self._live = None

    def run(self):
        try:
            last = self._history()
            if self.follow and not self.stop.is_set():
                self._follow(after=last)
        except Exception:  # the engine removed the container or went away: the stream ends
            pass
        finally:
            self._put(None)

    def _history(self):
        """The kept output (its last tail_bytes); returns the time of its last entry."""
        entries = self.driver.engine_logs(self.handle, self.stream, follow=False, timestamps=True)
        kept, size, last = collections.deque(), 0, None
        for when, data in _entries(entries):
            last = when
            if self.tail_bytes <= 0:
                self._put(data)
                continue
            kept.append(data)
            size += len(data)
            while size - len(kept[0]) >= self.tail_bytes:
                size -= len(kept.popleft())
        if kept:
            joined = b"".join(kept)
            self._put(joined[max(0, len(joined) - self.tail_bytes):])
        return last

    def _follow(self, after):
        since = _unix(after) if after else None
        self._live = self.driver.engine_logs(self.handle, self.stream, follow=True, timestamps=True, since=since)
        for when, data in _entries(self._live):
            if after is None or when > after:
                self._put(data)
            if self.stop.is_set():
                return

    def _put(self, data):
        """Hand `data` (None: this stream ended) to the merger, unless it stopped listening."""
        pieces = [None] if data is None else [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
        for piece in pieces:
            item = None if piece is None else (self.stream, piece)
            while not self.stop.is_set():
                try:
                    self.out.put(item, timeout=POLL)
                    break
                except queue.Full:
                    continue

    def close(self):
        live = self._live
        if live is not None:
            try:
                live.close()   # unblocks run(): its iteration fails and the thread ends
            except Exception:
                pass


def _entries(chunks):
    """(time, data) of each entry of a timestamped engine log: `<RFC 3339 nano> <data>`.
    Times are (seconds, nanoseconds) so they compare exactly."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            entry = _entry(line + b"\n")
            if entry:
                yield entry
    if pending:
        entry = _entry(pending)
        if entry:
            yield entry


def _entry(line: bytes):
    stamp, sep, data = line.partition(b" ")
    if not sep:
        return None
    try:
        return _parse_stamp(stamp.decode()), data
    except ValueError:
        return None


def _parse_stamp(text: str):
    head, _, frac = text.rstrip("Z").partition(".")
    seconds = int(datetime.datetime.fromisoformat(head + "+00:00").timestamp())
    return seconds, int((frac + "000000000")[:9]) if frac else 0


def _unix(when) -> float:
    return when[0] + when[1] / 1e9
