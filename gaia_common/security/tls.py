"""Where a process finds its TLS material, and the gRPC credentials made from it.

Daemons name three files in their config (`tls: {ca, cert, key}`); an ApplicationMaster finds
them in the directory its node wrote (GAIA_TLS_DIR: ca.crt, tls.crt, tls.key). Servers always
require a client certificate signed by the cluster's CA (mutual TLS); only the enrolment port
(a joining node has no certificate yet) serves without one.
"""
import dataclasses
import os
import pathlib

import grpc

ENV_DIR = "GAIA_TLS_DIR"
ENV_FILES = ("GAIA_TLS_CA", "GAIA_TLS_CERT", "GAIA_TLS_KEY")
DIR_NAMES = ("ca.crt", "tls.crt", "tls.key")


class TlsConfigError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str = ""        # "" with key "": a client that only checks the server (enrolment)
    key: str = ""

    @classmethod
    def from_config(cls, value, check_files: bool = True) -> "TlsFiles | None":
        """The `tls:` setting of a config: None (absent or empty: plaintext) or {ca, cert, key}
        (with check_files, each must be readable here)."""
        if not value:
            return None
        if isinstance(value, TlsFiles):
            return value
        if not isinstance(value, dict):
            raise TlsConfigError("tls: must be a mapping {ca, cert, key}")
        unknown = sorted(set(value) - {"ca", "cert", "key"})
        if unknown:
            raise TlsConfigError(f"tls.{unknown[0]}: unknown setting (known: ca, cert, key)")
        if not value.get("ca"):
            raise TlsConfigError("tls.ca: the cluster CA certificate is required")
        if bool(value.get("cert")) != bool(value.get("key")):
            raise TlsConfigError("tls.cert and tls.key: give both or neither")
        files = cls(str(value["ca"]), str(value.get("cert") or ""), str(value.get("key") or ""))
        if check_files:
            files.check()
        return files

    @classmethod
    def from_env(cls, env=None) -> "TlsFiles | None":
        """GAIA_TLS_CA/CERT/KEY, else GAIA_TLS_DIR/{ca.crt,tls.crt,tls.key}, else None."""
        env = os.environ if env is None else env
        if env.get(ENV_FILES[0]):
            return cls.from_config({"ca": env[ENV_FILES[0]], "cert": env.get(ENV_FILES[1], ""),
                                    "key": env.get(ENV_FILES[2], "")})
        if env.get(ENV_DIR):
            directory = pathlib.Path(env[ENV_DIR])
            return cls.from_config(dict(zip(("ca", "cert", "key"), (str(directory / n) for n in DIR_NAMES))))
        return None

    def check(self):
        for field in ("ca", "cert", "key"):
            path = getattr(self, field)
            if path and not os.access(path, os.R_OK):
                raise TlsConfigError(f"tls.{field}: cannot read {path}")

    def as_config(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v}

    def read(self) -> tuple:
        """(ca_pem, cert_pem or None, key_pem or None)."""
        def load(path):
            return pathlib.Path(path).read_bytes() if path else None
        return load(self.ca), load(self.cert), load(self.key)


def server_credentials(files: TlsFiles, require_client_auth: bool = True) -> grpc.ServerCredentials:
    ca, cert, key = files.read()
    if not cert:
        raise TlsConfigError("tls.cert: a server needs its own certificate and key")
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=require_client_auth)


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    ca, cert, key = files.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def write_bundle(directory, bundle) -> str:
    """Write a TlsBundle (ca_pem, cert_pem, key_pem) as <directory>/{ca.crt,tls.crt,tls.key},
    all 0600 in a 0700 directory (the container's own user reads them); return the directory."""
    from gaia_common.security.pki import write_file   # cryptography: loaded only where keys are written
    directory = pathlib.Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, data in zip(DIR_NAMES, (bundle.ca_pem, bundle.cert_pem, bundle.key_pem)):
        write_file(directory / name, bytes(data), 0o600)
    return str(directory)
