"""The node's side of enrolment (`gaia node join`): a key made here, a CSR, a one-time token.

The node makes its own key (it never leaves the machine), sends a CSR with the token to a
master's enrolment port, verifying the master against the cluster CA given by the operator
(the node has no certificate yet, so this TLS is server-only), and writes into its state dir:

  tls/ca.crt, tls/node.crt, tls/node.key (0600)   its identity: gaia://<cluster>/node/<id>
  etcd.password (0600)                            the node etcd user's password
  node.yaml                                       the base config given, plus cluster, id,
                                                  state_dir, tls, etcd and its credentials

`gaia node run --config <state dir>/node.yaml` then runs the enrolled node.
"""
import os
import pathlib
import time

import grpc
import yaml
from cryptography import x509

from gaia_common import config, etcd as etcd_mod, rpc
from gaia_common.etcd_auth import write_password
from gaia_common.pb import master_pb2, master_pb2_grpc
from gaia_common.security.identity import Identity
from gaia_common.security.pki import fingerprint, make_csr, write_pair
from gaia_common.security.tls import TlsFiles

JOIN_TIMEOUT = 30.0


class JoinError(Exception):
    pass


def base_settings(path) -> dict:
    """The settings of a base node.yaml (only what it says: unset ones keep their defaults)."""
    if not path:
        return {}
    config.load_daemon_config(config.NodeConfig, str(path))    # unknown or bad settings fail here
    return yaml.safe_load(pathlib.Path(path).read_text()) or {}


def addresses_of(settings: dict, extra=()) -> list:
    """The hosts the node serves on: its advertise host, host_ip, and any given."""
    cfg = config.NodeConfig(**{k: v for k, v in settings.items() if k in ("advertise", "host_ip", "listen")})
    hosts = []
    if cfg.advertise:
        hosts.append(cfg.advertise.rsplit(":", 1)[0].strip("[]"))
    hosts.append(cfg.host_ip)
    hosts.extend(extra)
    return list(dict.fromkeys(h for h in hosts if h))


def request_join(masters, ca_path: str, request, retry_for: float = 0):
    """JoinNode on the first master that answers; masters that do not answer (not up yet) are
    tried again for `retry_for` seconds. A refusal is final: a token is not worth guessing at."""
    deadline = time.monotonic() + retry_for
    while True:
        for master in masters:
            channel = rpc.channel(master, tls=TlsFiles(ca=ca_path))
            try:
                return master_pb2_grpc.EnrolStub(channel).JoinNode(request, timeout=JOIN_TIMEOUT)
            except grpc.RpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise JoinError(f"master {master} refused the join: {e.details()} ({e.code().name})") from None
                last = f"{master}: {e.details()}"
            finally:
                channel.close()
        if time.monotonic() >= deadline:
            raise JoinError(f"no master answered the join ({last})")
        time.sleep(2)


def join(cluster: str, masters, token: str, ca_path: str, state_dir, node_id: str,
         base_config: str = None, extra_hosts=(), retry_for: float = 0) -> pathlib.Path:
    """Enrol node `node_id` through one of `masters` (enrolment addresses); returns the path
    of the node.yaml written into `state_dir`."""
    state_dir = pathlib.Path(state_dir).resolve()
    settings = base_settings(base_config)
    hosts = addresses_of(settings, extra_hosts)
    identity = Identity("node", node_id, cluster)
    csr_pem, key_pem = make_csr(identity, hosts)
    request = master_pb2.JoinNodeRequest(token=token, node_id=node_id, csr_pem=csr_pem, addresses=hosts)
    answer = request_join(list(masters), ca_path, request, retry_for)
    ca_pem = pathlib.Path(ca_path).read_bytes()
    if fingerprint(bytes(answer.ca_pem)) != fingerprint(ca_pem):
        raise JoinError(f"the master's CA is not the one in {ca_path}: refusing its certificate")
    _check_cert(answer.cert_pem, key_pem, identity)
    return write_state(state_dir, settings, cluster, node_id, ca_pem, answer, key_pem)


def _check_cert(cert_pem: bytes, key_pem: bytes, identity: Identity):
    """The certificate is for our key and our identity (a master answering with someone
    else's would leave a node that cannot serve)."""
    from gaia_common.security.pki import identity_of
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(bytes(cert_pem))
    key = serialization.load_pem_private_key(key_pem, password=None)
    ours = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = cert.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    if ours != theirs or identity_of(cert) != identity:
        raise JoinError("the master's certificate is not for this node's key and identity")


def write_state(state_dir: pathlib.Path, settings: dict, cluster: str, node_id: str, ca_pem: bytes,
                answer, key_pem: bytes) -> pathlib.Path:
    tls_dir = state_dir / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    cert_path, key_path = write_pair(tls_dir, "node", bytes(answer.cert_pem), key_pem)
    ca_file = tls_dir / "ca.crt"
    ca_file.write_bytes(ca_pem)
    tls = {"ca": str(ca_file), "cert": cert_path, "key": key_path}
    doc = dict(settings, cluster=cluster, id=node_id, state_dir=str(state_dir), tls=tls)
    if "etcd" not in settings and answer.etcd_endpoints:
        doc["etcd"] = list(answer.etcd_endpoints)
    if answer.etcd_user:
        doc["etcd_user"] = answer.etcd_user
        doc["etcd_password_file"] = write_password(state_dir / "etcd.password", answer.etcd_password)
    endpoints = doc.get("etcd") or config.NodeConfig().etcd
    if "etcd_tls" not in settings and any(etcd_mod.parse_endpoint(e)[2] for e in _listed(endpoints)):
        doc["etcd_tls"] = dict(tls)     # https etcd: the cluster CA signed its members; our cert for client-cert-auth
    path = state_dir / "node.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# written by `gaia node join`; run with `gaia node run --config " + str(path) + "`\n"
                   + yaml.safe_dump(doc, sort_keys=True))
    os.replace(tmp, path)
    config.load_daemon_config(config.NodeConfig, str(path))     # what we wrote loads
    return path


def _listed(endpoints) -> list:
    return [e for e in endpoints.split(",") if e] if isinstance(endpoints, str) else list(endpoints)
