"""The server side of authentication: who is calling (the peer certificate), may they (policy).

gRPC server interceptors see only the method and the metadata, so the check runs inside the
method handler's behaviour, where the request and context.auth_context() are at hand; the
caller is then set as identity.current() for the handler (and for every step of a response
stream, which gRPC may iterate after the handler returned).
"""
import collections
import logging
import threading

import grpc

from gaia_common.security import policy
from gaia_common.security.identity import ANONYMOUS, Identity, acting_as
from gaia_common.security.pki import PkiError, identity_of

log = logging.getLogger(__name__)
CACHE_SIZE = 4096          # certificates remembered (parsed once, not on every call)
AUTHORIZATION = "authorization"


class Denied(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks every call against policy.rule_for(method).

    tls: the server serves mutual TLS (a call without a certificate is then refused; without
    TLS every caller is ANONYMOUS and nothing is checked). app_id_of_name(name): the master's
    current app id for an app name (an AM may ask GetApp about its own app only).
    """

    def __init__(self, cluster: str, tls: bool = True, app_id_of_name=None):
        self.cluster = cluster
        self.tls = tls
        self.app_id_of_name = app_id_of_name
        self._certs = {}
        self._lock = threading.Lock()
        self.denied = collections.Counter()      # method -> calls refused (tests, metrics)

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        token = _bearer(details.invocation_metadata)
        if handler is None or (not self.tls and not token):
            return handler       # plaintext without a token: nothing to check or expose
        rule = policy.rule_for(details.method)
        return _wrap(handler, lambda request, context: self._admit(details.method, rule, request, context),
                     token, rule is not None and rule.am_filter)

    # ---- who ----

    def identity(self, context) -> Identity:
        if not self.tls:
            return ANONYMOUS
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            raise Denied(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        pem = pems[0]
        found = self._certs.get(pem)
        if found is None:
            found = self._parse(pem)
            with self._lock:
                if len(self._certs) >= CACHE_SIZE:
                    self._certs.clear()
                self._certs[pem] = found
        if isinstance(found, Denied):
            raise found
        return found

    def _parse(self, pem: bytes):
        try:
            ident = identity_of(pem)
        except (PkiError, ValueError) as e:
            return Denied(grpc.StatusCode.UNAUTHENTICATED, f"certificate: {e}")
        if ident.cluster != self.cluster:
            return Denied(grpc.StatusCode.PERMISSION_DENIED,
                          f"{ident} holds a certificate for cluster {ident.cluster!r}, not {self.cluster!r}")
        return ident

    # ---- may they ----

    def _admit(self, method: str, rule, request, context) -> Identity:
        try:
            ident = self.identity(context)
            if self.tls:
                check(rule, ident, request, method, self.app_id_of_name)
            return ident
        except Denied as e:
            self.denied[method] += 1
            log.info("refused %s: %s", method, e.message)
            context.abort(e.code, e.message)


def check(rule, ident: Identity, request, method: str = "", app_id_of_name=None) -> None:
    """Raise Denied unless `ident` may make this call (request None: a client stream, only the
    role is known)."""
    if rule is None:
        raise Denied(grpc.StatusCode.PERMISSION_DENIED, f"{method}: no policy names this method")
    if rule.public:
        return
    if ident.role not in rule.roles:
        allowed = ", ".join(sorted(rule.roles)) or "nobody"
        raise Denied(grpc.StatusCode.PERMISSION_DENIED,
                     f"{method}: {ident} may not call it (allowed: {allowed})")
    if ident.role == "am":
        _check_am(rule, ident, request, method, app_id_of_name)


def _check_am(rule, ident: Identity, request, method: str, app_id_of_name) -> None:
    def deny(why):
        raise Denied(grpc.StatusCode.PERMISSION_DENIED, f"{method}: {ident} may act only for its own app: {why}")
    if request is None:
        deny("the request could not be checked")
    if rule.am_app and policy.field(request, rule.am_app) != ident.app_id:
        deny(f"{rule.am_app} is {policy.field(request, rule.am_app)!r}")
    if rule.am_attempt and policy.field(request, rule.am_attempt) != ident.attempt:
        deny(f"{rule.am_attempt} is {policy.field(request, rule.am_attempt)}, its attempt is {ident.attempt}")
    if rule.am_container and not policy.owns_container(ident.app_id, policy.field(request, rule.am_container)):
        deny(f"{rule.am_container} {policy.field(request, rule.am_container)!r} is not its app's")
    for path in rule.am_forbid:
        if policy.is_set(request, path):
            deny(f"{path} is the master's to set")
    if rule.am_app_name:
        name = policy.field(request, rule.am_app_name)
        if app_id_of_name is None or app_id_of_name(name) != ident.app_id:
            deny(f"{rule.am_app_name} {name!r} is not its app")


def filter_for_am(response, ident: Identity):
    """Node.Status for an AM: only its own app's containers and their events."""
    own = {c.container_id for c in response.containers if c.app_id == ident.app_id}
    kept = [c for c in response.containers if c.container_id in own]
    del response.containers[:]
    response.containers.extend(kept)
    events = [e for e in response.events if policy.owns_container(ident.app_id, e.container_id)]
    del response.events[:]
    response.events.extend(events)
    return response


def _bearer(metadata) -> str:
    for key, value in metadata or ():
        if key == AUTHORIZATION and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    return ""


def _wrap(handler, admit, token: str, am_filter: bool):
    """The same handler, its behaviour run after `admit(request, context) -> Identity` and with
    that identity current (an AM's answer cut to its own app where the rule says so)."""
    def unary_response(behaviour, streaming_request):
        def run(request, context):
            ident = admit(None if streaming_request else request, context)
            with acting_as(ident, token):
                response = behaviour(request, context)
            return filter_for_am(response, ident) if am_filter and ident.role == "am" else response
        return run

    def stream_response(behaviour, streaming_request):
        def run(request, context):
            ident = admit(None if streaming_request else request, context)
            with acting_as(ident, token):
                responses = iter(behaviour(request, context))
            while True:   # set around each step: gRPC iterates on, after this frame returned
                with acting_as(ident, token):
                    try:
                        item = next(responses)
                    except StopIteration:
                        return
                yield item
        return run

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary, False),
                                                   handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream, False),
                                                    handler.request_deserializer, handler.response_serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary_response(handler.stream_unary, True),
                                                    handler.request_deserializer, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream, True),
                                                 handler.request_deserializer, handler.response_serializer)

