"""Security: identities from certificates (identity, pki), TLS for gRPC (tls), the RPC policy
(policy) and the server interceptor that enforces it (interceptor)."""
from gaia_common.security.identity import ANONYMOUS, Identity, IdentityError, bearer_token, current  # noqa: F401
from gaia_common.security.tls import TlsFiles  # noqa: F401

__all__ = ["ANONYMOUS", "Identity", "IdentityError", "TlsFiles", "bearer_token", "current"]
