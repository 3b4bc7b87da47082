"""The AM's view of its app: the master's WatchApp stream, GetApp polling when it fails.

A thread follows the stream and keeps the newest status; the AM's loop takes it when it
changes (or on its periodic tick). The stream is re-opened whenever it breaks; opening
follows the leader like every call (MasterClient), so a failover costs one re-open. The
master sends a keepalive at least every 5 s: a stream silent for SILENT seconds is taken for
dead (a paused master keeps its connections open) and cancelled. While no stream delivers,
the loop polls GetApp, as AMs did before there were streams; a master that refuses the watch
(too many open, or one that has no WatchApp) is asked again after REFUSED_PAUSE.
"""
import itertools
import logging
import threading
import time

import grpc

from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2, types_pb2

log = logging.getLogger(__name__)
SILENT = 8.0
POLL = 0.5
REOPEN_PAUSE = 0.2
REFUSED_PAUSE = 30.0
FINISHED = (types_pb2.APP_STATE_SUCCEEDED, types_pb2.APP_STATE_FAILED, types_pb2.APP_STATE_KILLED)


class StatusFeed:
    def __init__(self, client, app_id: str, attempt: int):
        self.client = client
        self.app_id = app_id
        self.attempt = attempt
        self._cond = threading.Condition()
        self._latest = None
        self._fresh = False         # a status arrived since the loop took one
        self._poked = False         # something else wants a pass (a charge was stored)
        self._streaming = False
        self._heard = 0.0           # monotonic: last message, or when the current call opened
        self._call = None
        self._stop = threading.Event()
        self._thread = None

    def start(self, status):
        self._latest = status
        self._thread = threading.Thread(target=self._run, name="am-watch", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()

    def poke(self):
        with self._cond:
            self._poked = True
            self._cond.notify()

    def next(self, timeout: float):
        """The newest status, once something changed or after `timeout` (the AM's tick)."""
        with self._cond:
            wait = timeout if self._healthy() else min(timeout, POLL)
            self._cond.wait_for(lambda: self._fresh or self._poked, wait)
            self._fresh = self._poked = False
            latest, healthy = self._latest, self._healthy()
        if healthy:
            return latest
        self._unstick()
        return self._poll() or latest

    # ---- the stream ----

    def _healthy(self) -> bool:
        return self._streaming and time.monotonic() - self._heard < SILENT

    def _unstick(self):
        """Cancel a call that is open but silent: its thread then opens another."""
        call = self._call
        if call is not None and time.monotonic() - self._heard >= SILENT:
            self._heard = time.monotonic()
            call.cancel()

    def _poll(self):
        name = self._latest.app.spec.name
        try:
            status = self.client.call("GetApp", master_pb2.GetAppRequest(name=name))
        except GaiaError as e:
            log.warning("GetApp %s: %s", name, e.message)
            return None
        with self._cond:
            self._latest = status
        return status

    def _run(self):
        while not self._stop.is_set():
            pause = REOPEN_PAUSE
            try:
                self._follow()
            except GaiaError as e:
                log.info("watch of %s broke: %s: %s", self.app_id, e.code, e.message)
                if e.code in (grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND):
                    return   # superseded, or the app is gone: the loop learns it by polling
                if e.code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNIMPLEMENTED):
                    pause = REFUSED_PAUSE
            except Exception:
                log.exception("watch of %s failed", self.app_id)
                pause = 1.0
            finally:
                self._streaming = False
                self._call = None
            if self._latest is not None and _over(self._latest, self.app_id, self.attempt):
                return
            self._stop.wait(pause)

    def _follow(self):
        request = master_pb2.WatchAppRequest(app_id=self.app_id, attempt=self.attempt)
        call, head = self.client.open_stream("WatchApp", request, on_call=self._opened)
        try:
            self._streaming = True
            for status in itertools.chain(head, call):
                self._publish(status)
                if self._stop.is_set():
                    return
        except grpc.RpcError as e:
            raise GaiaError(e.code(), e.details()) from None
        finally:
            call.cancel()

    def _opened(self, call):
        self._call = call
        self._heard = time.monotonic()   # the watchdog gives a new call SILENT seconds

    def _publish(self, status):
        with self._cond:
            self._latest = status
            self._fresh = True
            self._heard = time.monotonic()
            self._cond.notify()


def _over(status, app_id: str, attempt: int) -> bool:
    """Nothing more to follow: the app finished, was replaced, or another attempt leads it."""
    app = status.app
    return app.state in FINISHED or app.app_id != app_id or app.am_attempt != attempt
