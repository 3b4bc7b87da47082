"""A cluster's certificate authority: it issues the certificates that carry identities.

EC P-256 keys (fast handshakes, small certs). Every leaf certificate names its holder in one
URI SAN (identity.py), may name hosts (DNS names, IPs) for serving, and is good for both
server and client authentication: masters and nodes serve and also dial each other.
"""
import dataclasses
import datetime
import hashlib
import ipaddress
import os
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gaia_common.security.identity import Identity, IdentityError, is_reserved_host, node_server_name

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CA_DAYS = 3650
LEAF_DAYS = 365
CLOCK_SKEW = datetime.timedelta(minutes=5)   # backdate: a peer whose clock is a little behind accepts it


class PkiError(ValueError):
    pass


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_file(path: pathlib.Path, data: bytes, mode: int):
    """Write atomically with `mode` from the start (a key is never readable by others, even briefly)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_pair(directory, stem: str, cert_pem: bytes, key_pem: bytes) -> tuple:
    """Write <stem>.crt (0644) and <stem>.key (0600) under `directory`; return both paths."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    write_file(key_path, key_pem, 0o600)
    write_file(cert_path, cert_pem, 0o644)
    return str(cert_path), str(key_path)


def server_names(identity: Identity, serves=()) -> list:
    """The `.gaia` DNS names a certificate of `identity` carries: a node's server name, plus
    those of the further node ids it `serves` (a hollow fleet: many nodes behind one server)."""
    if identity.role != "node":
        if serves:
            raise PkiError(f"serves: only a node certificate serves node ids, not a {identity.role}'s")
        return []
    return list(dict.fromkeys(node_server_name(identity.cluster, n) for n in (identity.name, *serves)))


def _san(identity: Identity, hosts, serves=()) -> x509.SubjectAlternativeName:
    names = [x509.UniformResourceIdentifier(identity.uri())]
    derived = server_names(identity, serves)
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if is_reserved_host(host):
                if host.lower().rstrip(".") in derived:
                    continue     # its own name: added below, once
                raise PkiError(f"hosts: {host!r} is under .gaia, where names come only from the "
                               "certificate's identity (another node's server name?)") from None
            names.append(x509.DNSName(host))
    names += [x509.DNSName(name) for name in derived]
    return x509.SubjectAlternativeName(names)


def _certificate(cert) -> x509.Certificate:
    """`cert` as an x509.Certificate: it is one already, or its PEM (bytes or str)."""
    if isinstance(cert, (bytes, str)):
        return x509.load_pem_x509_certificate(cert.encode() if isinstance(cert, str) else cert)
    return cert


def _dns_sans(signed) -> list:
    """The DNS names in the SAN extension of a certificate or CSR ([] without one)."""
    try:
        san = signed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.DNSName))


def csr_dns_names(csr_pem: bytes) -> list:
    """The DNS names a CSR asks for."""
    try:
        csr = x509.load_pem_x509_csr(bytes(csr_pem))
    except ValueError as e:
        raise PkiError(f"csr_pem: not a PEM certificate signing request: {e}") from None
    return _dns_sans(csr)


def dns_names(cert) -> list:
    """The DNS SANs of a certificate (x509.Certificate or PEM bytes)."""
    return _dns_sans(_certificate(cert))


def identity_of(cert) -> Identity:
    """The identity a certificate (x509.Certificate or PEM bytes) carries in its URI SAN."""
    cert = _certificate(cert)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise PkiError("certificate has no subject alternative names (no gaia identity)") from None
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("gaia://")]
    if len(uris) != 1:
        raise PkiError(f"certificate must carry exactly one gaia:// URI SAN, has {len(uris)}")
    try:
        return Identity.from_uri(uris[0])
    except IdentityError as e:
        raise PkiError(str(e)) from None


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER, hex: what an operator compares out of band."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def make_csr(identity: Identity, hosts=()) -> tuple:
    """A new key and a CSR for `identity` (the key never leaves its owner): (csr_pem, key_pem)."""
    key = _new_key()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.uri()[:64])]))
           .add_extension(_san(identity, hosts), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM), _key_pem(key)


@dataclasses.dataclass
class CertificateAuthority:
    cluster: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def create(cls, directory, cluster: str, days: int = CA_DAYS) -> "CertificateAuthority":
        """A new self-signed CA for `cluster`, written to <directory>/ca.crt and ca.key (0600)."""
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gaia"),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"gaia {cluster} CA")])
        now = _now()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        ca = cls(cluster, cert, key)
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_file(directory / CA_KEY, _key_pem(key), 0o600)
        write_file(directory / CA_CERT, ca.cert_pem, 0o644)
        return ca

    @classmethod
    def load(cls, directory=None, cert_path=None, key_path=None) -> "CertificateAuthority":
        """Load <directory>/ca.crt + ca.key (or the two paths given). The cluster is the one the
        CA was created for (its common name)."""
        cert_path = pathlib.Path(cert_path or pathlib.Path(directory) / CA_CERT)
        key_path = pathlib.Path(key_path or pathlib.Path(directory) / CA_KEY)
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError) as e:
            raise PkiError(f"cannot load the CA from {cert_path} and {key_path}: {e}") from None
        common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        label = common[0].value if common else ""
        cluster = label[len("gaia "):-len(" CA")] if label.startswith("gaia ") and label.endswith(" CA") else ""
        return cls(cluster, cert, key)

    def issue(self, identity: Identity, hosts=(), days: float = LEAF_DAYS, directory=None,
              stem: str = None, not_before: datetime.datetime = None, serves=()) -> tuple:
        """A new key and a certificate for `identity`: (cert_pem, key_pem); also written as
        <directory>/<stem>.crt/.key when `directory` is given. `not_before` (tests: an expired
        certificate) defaults to now. A node's certificate names its server name
        (identity.node_server_name) and those of the node ids in `serves` (hollow fleets)."""
        key = _new_key()
        cert_pem = self._sign(identity, key.public_key(), hosts, days, not_before, serves)
        key_pem = _key_pem(key)
        if directory is not None:
            write_pair(directory, stem or identity.role, cert_pem, key_pem)
        return cert_pem, key_pem

    def sign_csr(self, csr_pem: bytes, identity: Identity, hosts=(), days: float = LEAF_DAYS) -> bytes:
        """Sign a CSR's key for `identity` (chosen by the CA, never taken from the CSR's names:
        a node gets its own server name and no other)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as e:
            raise PkiError(f"csr_pem: not a PEM certificate signing request: {e}") from None
        if not csr.is_signature_valid:
            raise PkiError("csr_pem: the request's signature does not match its key")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.key_size < 256:
            raise PkiError("csr_pem: the key must be an EC key of at least 256 bits")
        return self._sign(identity, public, hosts, days, None)

    def _sign(self, identity: Identity, public_key, hosts, days, not_before, serves=()) -> bytes:
        if self.cluster and identity.cluster != self.cluster:
            raise PkiError(f"cluster: this CA signs for cluster {self.cluster!r}, not {identity.cluster!r}")
        start = (not_before or _now()) - CLOCK_SKEW
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(identity)[:64])]))
                .issuer_name(self.cert.subject).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + CLOCK_SKEW + datetime.timedelta(days=days))
                .add_extension(_san(identity, hosts, serves), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                             key_cert_sign=False, crl_sign=False, content_commitment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM)
