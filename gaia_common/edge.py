"""Defences at the gRPC edge that every server shares (rpc.make_server installs them).

  - A request that does not parse (garbage bytes, a message nested past protobuf's recursion
    limit) is INVALID_ARGUMENT naming the message type, not gRPC's INTERNAL "Exception
    deserializing request!": the caller sent something wrong, the server is fine.
  - Status details are bounded: errors quote what the caller sent, and details past gRPC's
    16 KiB metadata limit would reset the stream (the caller would see RESOURCE_EXHAUSTED
    "Stream removed" instead of the reason).
Size limits (rpc.MAX_MESSAGE_BYTES) and bounded concurrency (rpc.make_server) are gRPC's own.
"""
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
