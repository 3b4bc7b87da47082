"""The cluster CA: files and modes, issued certificates carry the identity and hosts, CSRs."""
import datetime
import os
import stat

import pytest
from cryptography import x509

from gaia_common.security import pki
from gaia_common.security.identity import Identity


@pytest.fixture
def ca(tmp_path):
    return pki.CertificateAuthority.create(tmp_path / "ca", "prod")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ca_files_and_reload(ca, tmp_path):
    assert mode(tmp_path / "ca" / "ca.key") == 0o600
    again = pki.CertificateAuthority.load(tmp_path / "ca")
    assert again.cluster == "prod"
    assert again.cert_pem == ca.cert_pem


def test_issued_certificate_carries_identity_and_hosts(ca, tmp_path):
    node = Identity("node", "node-1", "prod")
    cert_pem, key_pem = ca.issue(node, hosts=("127.0.0.1", "node-1.example"), directory=tmp_path / "n", stem="node")
    assert pki.identity_of(cert_pem) == node
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["node-1.example", "node-1.node.prod.gaia"]   # + its server name
    assert cert.issuer == ca.cert.subject
    assert mode(tmp_path / "n" / "node.key") == 0o600
    assert (tmp_path / "n" / "node.crt").read_bytes() == cert_pem
    assert b"PRIVATE KEY" in key_pem


def test_expired_certificate_can_be_made_for_tests(ca):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3)
    cert_pem, _ = ca.issue(Identity("user", "old", "prod"), days=1, not_before=past)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc)


def test_ca_refuses_another_clusters_identity(ca):
    with pytest.raises(pki.PkiError, match="cluster"):
        ca.issue(Identity("user", "x", "other"))


def test_csr_signed_for_the_identity_the_ca_chooses(ca):
    # the CSR asks to be the master; the CA signs it as node-2: the CSR's names count for nothing
    csr_pem, key_pem = pki.make_csr(Identity("master", "evil", "prod"), hosts=("10.0.0.2",))
    cert_pem = ca.sign_csr(csr_pem, Identity("node", "node-2", "prod"), hosts=("10.0.0.2",))
    assert pki.identity_of(cert_pem) == Identity("node", "node-2", "prod")
    with pytest.raises(pki.PkiError, match="csr_pem"):
        ca.sign_csr(b"not a csr", Identity("node", "n", "prod"))


def test_fingerprint_is_stable_and_distinct(ca):
    a, _ = ca.issue(Identity("user", "a", "prod"))
    b, _ = ca.issue(Identity("user", "a", "prod"))
    assert pki.fingerprint(a) == pki.fingerprint(a) and pki.fingerprint(a) != pki.fingerprint(b)
    assert len(pki.fingerprint(a)) == 64


def test_certificate_without_gaia_uri_has_no_identity(ca):
    with pytest.raises(pki.PkiError, match="subject alternative"):
        pki.identity_of(ca.cert_pem)
