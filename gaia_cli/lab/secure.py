"""A lab's security, as in the Vagrant lab: its CA, the masters' certificates, etcd client TLS
and logins, and nodes that enrol with one-time tokens (`gaia node join`).

Files, under the lab's directory:
  pki/ca.crt, ca.key             the lab's CA (made by `gaia lab up`)
  pki/admin.crt, admin.key       user admin: the CLI's certificate, for the masters and etcd
  secrets/root.password          etcd's root
  secrets/<user>.password        gaia-<lab>-master, -node, -dns, -client
  hosts/<master>/tls/            ca.crt, ca.key, master.crt/.key, etcd.crt/.key (a VM's /etc/gaia/tls)
  hosts/<master>/secrets/        its master user's password (a VM's /etc/gaia/etcd)
  hosts/<node>/state/            what `gaia node join` wrote: tls/, etcd.password, node.yaml
"""
import pathlib
import shutil

from gaia_common import etcd_auth
from gaia_common.client import MasterClient, etcd_options
from gaia_common.etcd import connect
from gaia_common.security.identity import Identity
from gaia_common.security.pki import CA_CERT, CA_KEY, CertificateAuthority
from gaia_cli.lab.render import secrets_dir, tls_dir

ADMIN = "admin"          # the bootstrap admin every leader makes (gaia_master/tenancy.py)


class LabSecurity:
    def __init__(self, lab_dir: pathlib.Path, name: str):
        self.name = name
        self.pki = lab_dir / "pki"
        self.secrets = lab_dir / "secrets"

    @property
    def admin_tls(self) -> dict:
        return {"ca": str(self.pki / CA_CERT), "cert": str(self.pki / "admin.crt"), "key": str(self.pki / "admin.key")}

    @property
    def root_password_file(self) -> pathlib.Path:
        return self.secrets / "root.password"

    def password_file(self, kind: str) -> pathlib.Path:
        return etcd_auth.password_path(self.secrets, etcd_auth.name(self.name, kind))

    def make(self):
        """The CA, the admin's certificate and every etcd password (random)."""
        ca = CertificateAuthority.create(self.pki, self.name)
        ca.issue(Identity("user", ADMIN, self.name), directory=self.pki, stem="admin")
        etcd_auth.write_password(self.root_password_file, etcd_auth.new_password())
        etcd_auth.write_passwords(self.secrets, {kind: (etcd_auth.name(self.name, kind), etcd_auth.new_password())
                                                 for kind in etcd_auth.KINDS})

    def give_master(self, host, host_dir: pathlib.Path):
        """A master host's certificates (gRPC and etcd serving, for its address) and password."""
        ca = CertificateAuthority.load(self.pki)
        tls = tls_dir(host_dir)
        tls.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.pki / CA_CERT, tls / CA_CERT)
        shutil.copy2(self.pki / CA_KEY, tls / CA_KEY)       # it signs AM certificates and enrolls nodes
        ca.issue(Identity("master", host.id, self.name), hosts=(host.ip,), directory=tls, stem="master")
        # etcd's serving certificate names no Gaia role of any power: a user no one defined
        ca.issue(Identity("user", f"etcd-{host.id}", self.name), hosts=(host.ip, "127.0.0.1"), directory=tls,
                 stem="etcd")
        secrets = secrets_dir(host_dir)
        secrets.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.password_file("master"), secrets / self.password_file("master").name)

    # ---- etcd ----

    def etcd_tls(self) -> dict:
        """connect() options with the admin's certificate (etcd asks every client for one)."""
        tls = self.admin_tls
        return {"ca_file": tls["ca"], "cert_file": tls["cert"], "key_file": tls["key"]}

    def etcd(self, endpoints, timeout: float = 5.0, root: bool = False):
        """A client of the lab's etcd: anonymous (status only), or root's login."""
        login = {"user": etcd_auth.ROOT, "password": self.root_password_file.read_text().strip()} if root else {}
        return connect(endpoints, timeout=timeout, **self.etcd_tls(), **login)

    def setup_etcd(self, endpoints):
        """Roles and users for the lab's cluster (with the passwords made above); auth on."""
        client = self.etcd(endpoints, timeout=10)
        try:
            etcd_auth.setup(client, self.name, etcd_auth.read_passwords(self.secrets, self.name),
                            root_password=self.root_password_file.read_text().strip())
        finally:
            client.close()

    # ---- the CLI's view ----

    def client_entry(self, endpoints) -> dict:
        """The client config's entry: the admin's certificate, etcd TLS and the client login."""
        return {"etcd": list(endpoints), "tls": self.admin_tls, "etcd_tls": self.admin_tls,
                "etcd_user": etcd_auth.name(self.name, "client"),
                "etcd_password_file": str(self.password_file("client"))}

    def client(self, endpoints, **kwargs) -> MasterClient:
        entry = self.client_entry(endpoints)
        return MasterClient(self.name, etcd_endpoints=entry["etcd"], tls=entry["tls"],
                            etcd_options=etcd_options(entry), **kwargs)
