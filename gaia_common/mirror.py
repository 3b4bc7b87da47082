"""Mirror etcd prefixes in memory: one range read, then a watch from the read's revision + 1.

No event can fall between the read and the watch, so the mirror is exact. A broken watch (an
etcd member gone, the stream closed, the start revision compacted) sets `broken`; the owner
calls sync() again (or runs follow() in a thread), which reloads everything: after missed
events a full reload is the simplest way to be right. gaia_master/node_view.py works the same
way with its three tables; this is the reusable form for processes that follow a prefix
(`gaia dns`).

The owner gets:
  on_load(revision, {prefix: [(rest, value bytes)]})   after each (re)load
  on_events(revision, [(prefix, rest, value bytes or None for a delete)])
never both at once (a lock serialises them) and never from a watch that was replaced.
"""
import logging
import threading

from etcd3 import events as etcd_events

log = logging.getLogger(__name__)


class PrefixMirror:
    def __init__(self, etcd, prefixes, on_load, on_events):
        self.etcd = etcd
        self.prefixes = list(prefixes)
        self.on_load, self.on_events = on_load, on_events
        self.lock = threading.Lock()
        self.revision = 0
        self.broken = True
        self._generation = 0       # callbacks of replaced watches are ignored
        self._watch_ids = []

    def sync(self):
        """(Re)load every prefix at one revision and follow each from revision + 1."""
        self._cancel()
        with self.lock:
            self._generation += 1
            generation = self._generation
            revision, items = self._read()
            self.revision = revision
            self.on_load(revision, items)
        # cleared before the watches exist, so that one breaking at once is not forgotten
        self.broken = False
        callback = lambda response: self._on_watch(generation, response)  # noqa: E731
        try:
            for prefix in self.prefixes:   # one at a time, so that a failure cancels those made
                self._watch_ids.append(self.etcd.add_watch_prefix_callback(prefix, callback,
                                                                           start_revision=revision + 1))
        except Exception:
            self.broken = True
            raise

    def follow(self, stop: threading.Event, retry: float = 1.0, poll: float = 0.2):
        """Keep the mirror synced until `stop` is set: reload whenever the watch breaks."""
        while not stop.is_set():
            if self.broken:
                try:
                    self.sync()
                    log.info("mirror of %s loaded at revision %d", ",".join(self.prefixes), self.revision)
                except Exception as e:  # etcd unreachable: keep serving what we have, try again
                    log.warning("mirror reload failed: %s", e)
                    self.broken = True
                    stop.wait(retry)
                    continue
            stop.wait(poll)

    def close(self):
        self._cancel()

    def _read(self):
        revision, items = None, {}
        for prefix in self.prefixes:  # every prefix at the first read's revision: one snapshot
            response = self.etcd.get_prefix_response(prefix, revision=revision)
            revision = revision or response.header.revision
            items[prefix] = [(kv.key.decode()[len(prefix):], kv.value) for kv in response.kvs]
        return revision, items

    def _cancel(self):
        for watch_id in self._watch_ids:
            try:
                self.etcd.cancel_watch(watch_id)
            except Exception:  # the stream may be gone already; nothing to cancel then
                pass
        self._watch_ids = []

    def _on_watch(self, generation, response):
        # None: the stream ended without an error; an exception: it broke (or was compacted)
        if response is None or isinstance(response, Exception):
            if generation == self._generation:
                log.warning("watch of %s broke: %s", ",".join(self.prefixes), response)
                self.broken = True
            return
        with self.lock:
            if generation != self._generation:
                return
            changes = [self._change(event) for event in response.events]
            self.revision = max(self.revision, response.header.revision)
            if changes:
                self.on_events(self.revision, changes)

    def _change(self, event):
        key = event.key.decode()
        prefix = next(p for p in self.prefixes if key.startswith(p))
        value = None if isinstance(event, etcd_events.DeleteEvent) else event.value
        return prefix, key[len(prefix):], value
