"""A dedicated etcd with RBAC (and optionally client TLS) and a LocalCluster whose daemons,
CLI and AMs log in to it with their own credentials.

Never the session's shared etcd (tests/conftest.py): turning auth on there would lock every
other test out.
"""
import contextlib
import pathlib

import yaml

from gaia_common import etcd_auth
from gaia_common.client import MasterClient
from gaia_common.etcd import EtcdServer
from gaia_common.security.identity import Identity
from gaia_common.security.pki import CertificateAuthority
from tests.integration.harness import LocalCluster

ROOT_PASSWORD = "root-secret"


def make_pki(directory, cluster: str) -> CertificateAuthority:
    """A CA for `cluster` in `directory`, with an etcd serving pair (etcd.crt/.key, 127.0.0.1)
    and a root client pair (root.crt/.key) beside it."""
    directory = pathlib.Path(directory)
    ca = CertificateAuthority.create(directory, cluster)
    ca.issue(Identity("master", "etcd", cluster), hosts=("127.0.0.1", "localhost"), directory=directory, stem="etcd")
    ca.issue(Identity("user", "root", cluster), directory=directory, stem="root")
    return ca


def tls_files(directory, stem: str) -> dict:
    directory = pathlib.Path(directory)
    return {"ca": str(directory / "ca.crt"), "cert": str(directory / f"{stem}.crt"),
            "key": str(directory / f"{stem}.key")}


def start_etcd(directory, pki_dir=None, client_cert_auth: bool = False, auth_token_ttl: int = 0) -> EtcdServer:
    """An etcd of its own in `directory`; https with the pki's etcd pair when `pki_dir`."""
    tls = tls_files(pki_dir, "etcd") if pki_dir else None
    pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
    server = EtcdServer(data_dir=str(directory), name="gaia-rbac", tls=tls,
                        client_cert_auth=client_cert_auth, auth_token_ttl=auth_token_ttl)
    return server.start()


def enable_rbac(server: EtcdServer, clusters, password_dir) -> dict:
    """etcd_auth.setup() for each cluster (auth on after the first); returns
    {cluster: {kind: (user, password file)}}; `server.client` becomes root's login."""
    out = {}
    for cluster in clusters:
        client = server.connect()
        try:
            creds = etcd_auth.setup(client, cluster, root_password=ROOT_PASSWORD)
        finally:
            client.close()
        server.client = {"user": etcd_auth.ROOT, "password": ROOT_PASSWORD}
        paths = etcd_auth.write_passwords(password_dir, creds)
        out[cluster] = {kind: (creds[kind][0], paths[kind]) for kind in creds}
    return out


@contextlib.contextmanager
def rbac_etcd(base, clusters, pki_dir=None, client_cert_auth: bool = False, auth_token_ttl: int = 0):
    """start_etcd() in <base>/etcd and enable_rbac() for `clusters` (passwords in <base>/passwords);
    yields (server, creds) and stops the etcd afterwards, also when setting up RBAC failed."""
    base = pathlib.Path(base)
    server = start_etcd(base / "etcd", pki_dir=pki_dir, client_cert_auth=client_cert_auth,
                        auth_token_ttl=auth_token_ttl)
    try:
        yield server, enable_rbac(server, clusters, base / "passwords")
    finally:
        server.stop()


class RbacCluster(LocalCluster):
    """A LocalCluster on an RBAC etcd: masters and nodes log in as their kind's user, the CLI
    (client config) and the test's own clients as the client user, its admin view as root.
    `tls`: mutual TLS on gRPC too (LocalCluster's own CA; the CLI is user admin)."""

    def __init__(self, server: EtcdServer, name: str, workdir, creds: dict, etcd_tls: dict = None,
                 tls: bool = False):
        super().__init__(server.endpoint, name, workdir, tls=tls)
        self.etcd.close()
        self.etcd = server.connect()          # root: the test looks at everything
        self.creds = creds
        self.etcd_tls = etcd_tls or {}
        user, password_file = creds["client"]
        entry = {"etcd": self.etcd_endpoints, "etcd_user": user, "etcd_password_file": password_file}
        if self.etcd_tls:
            entry["etcd_tls"] = self.etcd_tls
        if self.admin_tls:
            entry["tls"] = self.admin_tls
        with open(self.client_config, "w") as f:
            yaml.safe_dump({"current": name, "clusters": {name: entry}}, f)

    def daemon_settings(self, kind: str) -> dict:
        user, password_file = self.creds[kind]
        settings = {"etcd_user": user, "etcd_password_file": password_file}
        if self.etcd_tls:
            settings["etcd_tls"] = self.etcd_tls
        return settings

    def start_master(self, env_extra=None, lease_ttl: int = 2, **overrides):
        return super().start_master(env_extra, lease_ttl, **{**self.daemon_settings("master"), **overrides})

    def start_node(self, node_id: str = None, **overrides):
        return super().start_node(node_id, **{**self.daemon_settings("node"), **overrides})

    def client(self, **kwargs) -> MasterClient:
        kwargs.setdefault("tls", self.admin_tls)
        c = MasterClient(self.name, etcd_endpoints=self.etcd_endpoints, etcd_options=self.client_options(), **kwargs)
        self._clients.append(c)
        return c

    def leader(self):
        c = self.client()
        masters = c.masters()
        return masters[0] if masters else None

    def client_options(self) -> dict:
        user, password_file = self.creds["client"]
        options = {"user": user, "password": pathlib.Path(password_file).read_text().strip()}
        if self.etcd_tls:
            options.update(ca_file=self.etcd_tls["ca"], cert_file=self.etcd_tls.get("cert"),
                           key_file=self.etcd_tls.get("key"))
        return options
