"""Enrolment's pure rules (gaia_master/enrol.py): token shape, node ids, and which hosts a
joining node's certificate may name."""
import grpc
import pytest

from gaia_master.enrol import MAX_HOSTS, Refused, TokenRecord, check_hosts, check_node_id, parse_token


def test_token_shape():
    assert parse_token("0123456789ab.s3cr3t-s3cr3t_s3cr3t") == ("0123456789ab", "s3cr3t-s3cr3t_s3cr3t")
    for bad in ("", "0123456789ab", "0123456789ab.", "../etc/passwd.xxxxxxxxxxxxxxxxxxxx", "ABCDEF012345.x" * 3,
                "0123456789ab.short"):
        with pytest.raises(Refused) as refused:
            parse_token(bad)
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED and "token" in refused.value.message


def test_node_ids_become_etcd_keys_so_they_are_plain():
    assert check_node_id("gaia-node-1") == "gaia-node-1"
    for bad in ("", "a/b", "../x", "-x", "a b", "x" * 300):
        with pytest.raises(Refused, match="node_id"):
            check_node_id(bad)


def test_hosts_may_be_ips_and_dns_names():
    assert check_hosts(["10.0.0.5", "node-5.example.com", "NODE-5.example.com.", "::1"], set()) == \
        ["10.0.0.5", "node-5.example.com", "::1"]


@pytest.mark.parametrize("bad", ["*.example.com", "a..b", "-x.example", "x" * 64 + ".com", "a b", "a/b"])
def test_hosts_that_are_not_names_are_refused(bad):
    with pytest.raises(Refused) as refused:
        check_hosts([bad], set())
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and bad in refused.value.message


def test_a_host_another_live_server_uses_is_refused():
    with pytest.raises(Refused) as refused:
        check_hosts(["10.0.0.11"], {"10.0.0.11", "10.0.0.12"})
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(Refused):
        check_hosts(["Master-1.Example.com"], {"master-1.example.com"})
    with pytest.raises(Refused):          # the same IPv6 address written another way
        check_hosts(["fd00:0::11"], {"fd00::11"})


def test_loopback_is_shared_on_one_machine():
    assert check_hosts(["127.0.0.1", "localhost"], {"127.0.0.1", "localhost"}) == ["127.0.0.1", "localhost"]


def test_a_certificate_names_few_hosts():
    with pytest.raises(Refused, match="at most"):
        check_hosts([f"10.0.0.{i}" for i in range(MAX_HOSTS + 1)], set())


def test_token_records_keep_hashes_only():
    record = TokenRecord(hash="ab" * 32, expires=1.5, node_id="n1", created_by="user admin")
    assert TokenRecord.load(record.dump()) == record
    assert b"secret" not in record.dump()


def test_no_join_may_ask_for_a_server_name_under_gaia():
    with pytest.raises(Refused, match="under .gaia") as err:
        check_hosts(["10.0.0.5", "node-1.node.prod.gaia"], set())
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_a_csr_naming_another_nodes_server_name_is_refused():
    from gaia_common.security.identity import Identity
    from gaia_common.security.pki import make_csr
    from gaia_master.enrol import check_csr_names
    node2 = Identity("node", "node-2", "prod")
    own, _ = make_csr(node2, ["10.0.0.2"])          # carries node-2's own name: fine
    check_csr_names(own, node2)
    posing, _ = make_csr(Identity("node", "node-1", "prod"), ["10.0.0.2"])
    with pytest.raises(Refused, match="node-1.node.prod.gaia") as err:
        check_csr_names(posing, node2)
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
