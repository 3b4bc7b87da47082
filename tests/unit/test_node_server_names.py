"""Node server names: what a node's certificate names it, that nothing else can get that name,
and that callers dial a node expecting it (gaia_common/node_channels.py)."""
import grpc
import pytest

from gaia_common import node_channels, rpc
from gaia_common.security import pki
from gaia_common.security.identity import Identity, node_server_name
from gaia_common.security.tls import TlsFiles


@pytest.fixture
def ca(tmp_path):
    return pki.CertificateAuthority.create(tmp_path / "ca", "prod")


def test_plain_node_ids_read_as_themselves():
    assert node_server_name("prod", "node-1") == "node-1.node.prod.gaia"
    assert node_server_name("prod", "rack1.n7") == "rack1.n7.node.prod.gaia"


def test_names_that_are_not_dns_labels_are_hashed_one_to_one():
    odd = ["Node-1", "node_1", "a@b", "x" * 200, "h-" + "0" * 32]
    names = [node_server_name("prod", n) for n in odd + ["node-1"]]
    assert len(set(names)) == len(names)            # Node-1 and node-1 do not share a name
    for name in names[:-1]:
        label = name.split(".")[0]
        assert label.startswith("h-") and len(label) == 34
    assert node_server_name("prod", "n") != node_server_name("test", "n")


def test_a_node_certificate_names_its_own_server_name_only(ca):
    cert, _ = ca.issue(Identity("node", "node-2", "prod"), hosts=("127.0.0.1",))
    assert pki.dns_names(cert) == ["node-2.node.prod.gaia"]
    master, _ = ca.issue(Identity("master", "m1", "prod"), hosts=("127.0.0.1",))
    assert pki.dns_names(master) == []


@pytest.mark.parametrize("host", ["node-1.node.prod.gaia", "NODE-1.node.prod.gaia.", "anything.gaia"])
def test_no_certificate_gets_another_name_under_gaia(ca, host):
    with pytest.raises(pki.PkiError, match=r"hosts: .*\.gaia"):
        ca.issue(Identity("node", "node-2", "prod"), hosts=(host,))
    csr, _ = pki.make_csr(Identity("node", "node-2", "prod"))
    with pytest.raises(pki.PkiError, match=r"hosts: .*\.gaia"):
        ca.sign_csr(csr, Identity("node", "node-2", "prod"), hosts=(host,))


def test_a_csr_asking_for_another_nodes_name_gets_only_its_own(ca):
    # a CSR's names count for nothing: node-2 asking for node-1's server name gets node-2's
    csr, _ = pki.make_csr(Identity("node", "node-1", "prod"), hosts=("node-1.node.prod.gaia",))
    cert = ca.sign_csr(csr, Identity("node", "node-2", "prod"), hosts=("10.0.0.2",))
    assert pki.dns_names(cert) == ["node-2.node.prod.gaia"]


def test_a_hollow_fleet_certificate_serves_each_of_its_node_ids(ca):
    ids = [f"f-hollow-{i}" for i in range(3)]
    cert, _ = ca.issue(Identity("node", "f", "prod"), serves=ids)
    assert pki.dns_names(cert) == [node_server_name("prod", n) for n in ["f", *ids]]
    with pytest.raises(pki.PkiError, match="serves"):
        ca.issue(Identity("master", "m", "prod"), serves=ids)


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, address, tls=rpc.DEFAULT, token=None, server_name=None):
        self.calls.append((address, server_name))
        return grpc.insecure_channel(address)     # lazy: connects to nothing until called


def test_channels_are_per_node_and_expect_its_name_under_tls(monkeypatch, tmp_path):
    dialed = _Recorder()
    monkeypatch.setattr(node_channels.rpc, "channel", dialed)
    channels = node_channels.NodeChannels("prod", tls=TlsFiles(str(tmp_path / "ca.crt")))
    channels.stub(node_channels.NodeRef("node-1", "10.0.0.1:7000"))
    channels.stub(node_channels.NodeRef("node-2", "10.0.0.1:7000"))   # node-2 "moved" to node-1's address
    channels.stub(node_channels.NodeRef("node-1", "10.0.0.1:7000"))   # reused
    assert dialed.calls == [("10.0.0.1:7000", "node-1.node.prod.gaia"), ("10.0.0.1:7000", "node-2.node.prod.gaia")]
    with pytest.raises(ValueError, match="node_id"):
        channels.stub(node_channels.NodeRef("", "10.0.0.1:7000"))


def test_plaintext_channels_are_per_address(monkeypatch):
    dialed = _Recorder()
    monkeypatch.setattr(node_channels.rpc, "channel", dialed)
    channels = node_channels.NodeChannels("prod", tls=None)
    for i in range(3):   # a hollow fleet's nodes share one address, and one channel
        channels.stub(node_channels.NodeRef(f"h-{i}", "127.0.0.1:7000"))
    assert dialed.calls == [("127.0.0.1:7000", None)]
