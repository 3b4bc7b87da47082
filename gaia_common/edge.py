"""Defences at the gRPC edge that every server shares (rpc.make_server installs them).

  - A request that does not parse (garbage bytes, a message nested past protobuf's recursion
    limit) is INVALID_ARGUMENT naming the message type, not gRPC's INTERNAL "Exception
    deserializing request!": the caller sent something wrong, the server is fine.
  - Status details are bounded: errors quote what the caller sent, and details past gRPC's
    16 KiB metadata limit would reset the stream (the caller would see RESOURCE_EXHAUSTED
    "Stream removed" instead of the reason).
  - Long calls are counted (Slots): a server stream holds one of the server's workers for its
    whole life, so servers cap them in total (below the workers they have for them, so unary
    calls always find one) and per caller (so no one caller takes every place).
Size limits (rpc.MAX_MESSAGE_BYTES) and calls in flight (rpc.make_server) are gRPC's own.
"""
import collections
import threading

import grpc

MAX_DETAILS = 2000     # characters of a status's details


def details(text: str, limit: int = MAX_DETAILS) -> str:
    """`text` cut to `limit` characters, saying so."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:limit - 40] + f"... ({len(text) - limit + 40} more characters)"


class _Malformed:
    """What the deserializer hands on when the bytes do not parse."""

    def __init__(self, error: Exception):
        self.error = error


class MalformedRequests(grpc.ServerInterceptor):
    """Answer a request that does not parse with INVALID_ARGUMENT (unary and server-streaming
    methods: every Gaia service's)."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        method = handler_call_details.method.rsplit("/", 1)[-1]

        def safe_parse(data):
            try:
                return parse(data)
            except Exception as e:  # noqa: BLE001 - whatever the parser raises, the bytes were bad
                return _Malformed(e)

        def guard(behaviour):
            if behaviour is None:
                return None

            def run(request, context):
                if isinstance(request, _Malformed):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  details(f"request: not a valid {method} request ({request.error})"))
                return behaviour(request, context)
            return run

        return handler._replace(request_deserializer=safe_parse, unary_unary=guard(handler.unary_unary),
                                unary_stream=guard(handler.unary_stream))


class Slots:
    """Counted places for long calls (server streams), each of which holds a server worker for
    its whole life: at most `total` at once, and at most a cap of its own per key (a caller, a
    tenant), so no one caller can take the places everyone shares. Thread-safe; a place is
    taken for all of its keys at once or not at all. `setting`: the name of the total's limit,
    for the refusal's words."""

    def __init__(self, total: int, setting: str = "total"):
        if total < 1:
            raise ValueError(f"{setting}: must be at least 1, not {total}")
        self.total = total
        self.setting = setting
        self._lock = threading.Lock()
        self._held = 0
        self._by_key = collections.Counter()
        self.refused = collections.Counter()      # setting -> places refused (tests, metrics)

    def take(self, limits=()) -> str:
        """Take a place counted against each Limit of `limits` (cap 0: not capped, not counted).
        Returns '' when taken, else why not, naming the limit."""
        limits = [limit for limit in limits if limit.cap > 0]
        with self._lock:
            if self._held >= self.total:
                self.refused[self.setting] += 1
                return f"{self.total} streams are already open on this server (limit {self.setting})"
            for limit in limits:
                if self._by_key[limit.key] >= limit.cap:
                    self.refused[limit.setting] += 1
                    return f"{limit.who} already has {limit.cap} streams open (limit {limit.setting})"
            self._held += 1
            for limit in limits:
                self._by_key[limit.key] += 1
        return ""

    def give(self, limits=()) -> None:
        """Give back a place taken with the same `limits`."""
        with self._lock:
            self._held -= 1
            for limit in limits:
                if limit.cap > 0:
                    self._by_key[limit.key] -= 1
                    if self._by_key[limit.key] <= 0:
                        del self._by_key[limit.key]

    def held(self, key=None) -> int:
        """Places held in all (key None), or counted against `key`."""
        with self._lock:
            return self._held if key is None else self._by_key.get(key, 0)


class Limit(collections.namedtuple("Limit", "key cap who setting")):
    """One cap a Slots place counts against: `key` (hashable: ('user', name)), `cap` (0: none),
    `who` and `setting` for the refusal's words ("user alice", "max_streams_per_user")."""
