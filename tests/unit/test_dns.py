"""gaia dns without etcd or sockets: name parsing, record building, the reply bytes."""
import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSQuestion, DNSRecord

from gaia_common.pb import types_pb2
from gaia_dns import records
from gaia_dns.cache import Cache
from gaia_dns.names import Name, Zone
from gaia_dns.responder import Responder, parse_query

ZONE = Zone("dev")


def entry(host, health="", **ports):
    return types_pb2.ServiceEndpoint(host=host, ports=ports, health=health).SerializeToString()


def loaded(entries: dict) -> Cache:
    """A cache loaded with {"app/instance": serialised ServiceEndpoint}."""
    cache = Cache(ZONE, ttl=5)
    cache.load(7, {"services/": list(entries.items())})
    return cache


def ask(cache, name, qtype="A", tcp=False, edns=None, rd=True, qid=4242):
    query = DNSRecord(q=DNSQuestion(name, getattr(QTYPE, qtype)))
    query.header.id, query.header.rd = qid, int(rd)
    if edns:
        query.add_ar(EDNS0(udp_len=edns))
    raw = Responder(cache).answer(bytes(query.pack()), tcp=tcp)
    return DNSRecord.parse(raw)


def rdata(reply, section="rr"):
    return sorted(str(rr.rdata) for rr in getattr(reply, section))


HELLO = {"hello/0": entry("10.0.0.1", http=20000), "hello/1": entry("10.0.0.2", "healthy", http=20001),
         "hello/2": entry("10.0.0.3", "starting", http=20002), "hello/3": entry("10.0.0.4", "unhealthy", http=2),
         "sick/0": entry("10.0.1.1", "unhealthy", http=1)}


# ---- names ----

@pytest.mark.parametrize("qname, parsed", [
    ("dev.gaia.", Name("apex")),
    ("hello.dev.gaia", Name("app", app="hello")),
    ("HeLLo.Dev.GAIA.", Name("app", app="hello")),
    ("3.hello.dev.gaia.", Name("instance", app="hello", instance="3")),
    ("_http._tcp.hello.dev.gaia.", Name("srv", app="hello", port="http", protocol="_tcp")),
    ("_dns._udp.hello.dev.gaia.", Name("srv", app="hello", port="dns", protocol="_udp")),
    ("_tcp.hello.dev.gaia.", Name("proto", app="hello", protocol="_tcp")),
    ("a.b.hello.dev.gaia.", None),
    ("_http.hello.dev.gaia.", None),
    ("_._tcp.hello.dev.gaia.", None),
])
def test_names_in_the_zone(qname, parsed):
    assert ZONE.parse(qname) == parsed
    assert ZONE.relative(qname) is not None


@pytest.mark.parametrize("qname", ["gaia.", "hello.prod.gaia.", "hello.dev.gaia.com.", "xdev.gaia.", "example.com."])
def test_names_outside_the_zone(qname):
    assert ZONE.relative(qname) is None and ZONE.parse(qname) is None


def test_zone_builds_names_and_takes_a_suffix():
    zone = Zone("prod", "Svc.Example.")
    assert zone.origin == "prod.svc.example."
    assert (zone.app("web"), zone.instance("web", "0"), zone.srv("web", "http")) == (
        "web.prod.svc.example.", "0.web.prod.svc.example.", "_http._tcp.web.prod.svc.example.")
    assert zone.parse("0.web.prod.svc.example") == Name("instance", app="web", instance="0")
    with pytest.raises(ValueError):
        Zone("dev", "bad suffix!")


# ---- records and replies ----

def test_a_records_are_the_resolvable_instances_hosts():
    cache = loaded(HELLO)
    reply = ask(cache, "hello.dev.gaia", qid=777)
    assert reply.header.id == 777 and reply.header.rcode == RCODE.NOERROR
    assert reply.header.aa == 1 and reply.header.rd == 1 and reply.header.ra == 0
    assert rdata(reply) == ["10.0.0.1", "10.0.0.2"]          # not starting, not unhealthy
    assert {rr.ttl for rr in reply.rr} == {5}
    assert rdata(ask(cache, "1.hello.dev.gaia")) == ["10.0.0.2"]
    assert ask(cache, "hello.dev.gaia", rd=False).header.rd == 0


def test_the_question_comes_back_in_the_querys_letter_case():
    reply = ask(loaded(HELLO), "HeLLo.DEV.gaia")
    assert str(reply.q.qname) == "HeLLo.DEV.gaia."
    assert rdata(reply) == ["10.0.0.1", "10.0.0.2"]


def test_srv_records_with_targets_and_their_addresses():
    cache = loaded(HELLO)
    reply = ask(cache, "_http._tcp.hello.dev.gaia", "SRV")
    assert sorted((rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target)) for rr in reply.rr) == [
        (0, 1, 20000, "0.hello.dev.gaia."), (0, 1, 20001, "1.hello.dev.gaia.")]
    assert sorted((str(rr.rname), str(rr.rdata)) for rr in reply.ar) == [
        ("0.hello.dev.gaia.", "10.0.0.1"), ("1.hello.dev.gaia.", "10.0.0.2")]
    assert rdata(ask(cache, "_http._udp.hello.dev.gaia", "SRV")) == rdata(reply)


def test_negative_answers_and_other_zones():
    cache = loaded(HELLO)
    for name, qtype in (("nope.dev.gaia", "A"), ("9.hello.dev.gaia", "A"), ("_ftp._tcp.hello.dev.gaia", "SRV"),
                        ("a.b.hello.dev.gaia", "A")):
        reply = ask(cache, name, qtype)
        assert reply.header.rcode == RCODE.NXDOMAIN and not reply.rr, name
        assert [rr.rtype for rr in reply.auth] == [QTYPE.SOA]   # cached for the SOA minimum
    for name, qtype in (("sick.dev.gaia", "A"), ("2.hello.dev.gaia", "A"), ("hello.dev.gaia", "AAAA"),
                        ("hello.dev.gaia", "MX"), ("dev.gaia", "A"), ("_tcp.hello.dev.gaia", "A")):
        reply = ask(cache, name, qtype)     # the name exists, without records of that type
        assert reply.header.rcode == RCODE.NOERROR and not reply.rr, (name, qtype)
    for name in ("hello.prod.gaia", "example.com", "gaia"):
        reply = ask(cache, name)
        assert reply.header.rcode == RCODE.REFUSED and reply.header.aa == 0
    assert ask(Cache(ZONE, 5), "hello.dev.gaia").header.rcode == RCODE.SERVFAIL   # before the first load


def test_soa_any_and_ipv6():
    cache = loaded({"v6/0": entry("fd00::1", http=80), "named/0": entry("node-1.example", http=80)})
    soa = ask(cache, "dev.gaia", "SOA")
    assert soa.rr[0].rdata.times[0] == 7 and str(soa.rr[0].rdata.mname) == "dev.gaia."  # serial: the revision
    assert rdata(ask(cache, "v6.dev.gaia", "AAAA")) == ["fd00::1"]
    assert ask(cache, "v6.dev.gaia", "A").rr == []
    assert rdata(ask(cache, "0.v6.dev.gaia", "ANY")) == ["fd00::1"]
    assert ask(cache, "named.dev.gaia").rr == []     # a host that is no address gets no record


def test_changes_rebuild_only_what_they_touch():
    cache = loaded(HELLO)
    cache.apply(8, [("services/", "hello/0", None), ("services/", "hello/3", entry("10.0.0.4", "healthy", http=2))])
    assert rdata(ask(cache, "hello.dev.gaia")) == ["10.0.0.2", "10.0.0.4"]
    assert ask(cache, "0.hello.dev.gaia").header.rcode == RCODE.NXDOMAIN
    cache.apply(9, [("services/", f"hello/{i}", None) for i in range(4)])
    assert ask(cache, "hello.dev.gaia").header.rcode == RCODE.NXDOMAIN
    assert not [k for k in cache.answers if b"hello" in k]      # nothing left behind
    assert rdata(ask(cache, "_http._tcp.sick.dev.gaia", "SRV")) == []
    assert cache.version == 3


def test_big_answers_truncate_over_plain_udp_and_come_whole_over_tcp_or_edns():
    cache = loaded({f"big/{i}": entry(f"10.1.{i // 250}.{i % 250 + 1}", http=30000 + i) for i in range(60)})
    plain = ask(cache, "big.dev.gaia")
    assert plain.header.tc == 1 and plain.rr == []                # 60 x 16 bytes > 512: ask again over TCP
    assert len(ask(cache, "big.dev.gaia", tcp=True).rr) == 60
    with_edns = ask(cache, "big.dev.gaia", edns=4096)
    assert with_edns.header.tc == 0 and len(with_edns.rr) == 60
    assert [rr.rtype for rr in with_edns.ar] == [QTYPE.OPT]       # our OPT, with our size
    assert with_edns.ar[0].rclass == records.EDNS_SIZE
    srv = ask(cache, "_http._tcp.big.dev.gaia", "SRV", tcp=True)
    assert len(srv.rr) == 60 and len(srv.ar) == 60
    small = ask(cache, "_http._tcp.big.dev.gaia", "SRV", edns=1232)
    assert small.header.tc == 1                                  # 60 SRVs do not fit 1232 bytes


def test_additional_records_are_dropped_before_answers_are():
    cache = loaded({f"mid/{i}": entry(f"10.2.0.{i + 1}", http=30000 + i) for i in range(12)})
    reply = ask(cache, "_http._tcp.mid.dev.gaia", "SRV")
    assert reply.header.tc == 0 and len(reply.rr) == 12 and len(reply.ar) < 12
    assert len(Responder(cache).answer(bytes(DNSRecord.question("_http._tcp.mid.dev.gaia", "SRV").pack()))) <= 512


def test_answers_rotate_round_robin():
    cache = loaded({f"rr/{i}": entry(f"10.3.0.{i + 1}") for i in range(3)})
    responder = Responder(cache)
    query = bytes(DNSRecord.question("rr.dev.gaia").pack())
    firsts = {str(DNSRecord.parse(responder.answer(query)).rr[0].rdata) for _ in range(3)}
    assert firsts == {"10.3.0.1", "10.3.0.2", "10.3.0.3"}
    assert records.rotations(100) == [k * 100 // 16 for k in range(16)]


def test_the_fast_path_and_garbage():
    query = bytes(DNSRecord.question("hello.dev.gaia").pack())
    qend, key, rd, edns = parse_query(query)
    assert (qend, key, rd, edns) == (len(query), query[12:].lower(), 1, 0)
    assert parse_query(query[:20]) is None
    responder = Responder(loaded(HELLO))
    formerr = DNSRecord.parse(responder.answer(query[:2] + query[2:12] + b"\x07garbage"))
    assert formerr.header.rcode == RCODE.FORMERR and formerr.header.id == DNSRecord.parse(query).header.id
    response = bytes(DNSRecord.parse(responder.answer(query)).pack())
    assert responder.answer(response) is None                    # never answer an answer
    assert responder.answer(b"\x01") is None


# ---- the config ----

def test_example_config_sets_every_field_and_checks():
    import dataclasses
    import pathlib

    import yaml

    from gaia_common.config import DnsConfig, load_daemon_config
    from gaia_dns.main import check
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "dns.yaml"
    cfg = load_daemon_config(DnsConfig, str(path))
    assert set(yaml.safe_load(path.read_text())) == {f.name for f in dataclasses.fields(DnsConfig)}
    assert check(cfg).origin == "prod.gaia."
    assert check(DnsConfig()).origin == "dev.gaia."     # the defaults are valid too


@pytest.mark.parametrize("setting, value, message", [
    ("listen", "localhost", "listen"), ("ttl", -1, "ttl"), ("tcp_connections", 0, "tcp_connections"),
    ("zone", "a..b!", "zone"), ("tcp_idle_timeout", 0, "tcp_idle_timeout")])
def test_bad_settings_are_named(setting, value, message):
    from gaia_common.config import ConfigError, DnsConfig
    from gaia_dns.main import check
    with pytest.raises(ConfigError, match=message):
        check(DnsConfig(**{setting: value}))


def test_an_answer_too_big_even_for_tcp_keeps_what_fits():
    answer = records.Answer(20, [bytes(1000)] * 70)
    heads, body = answer.variants[0][records.TCP]
    assert heads[0][0] & records.FLAG_TC and heads[0][4:6] == (65).to_bytes(2, "big")   # TC, ANCOUNT 65
    assert len(body) == 65000 and 12 + 20 + len(body) <= records.LIMITS[records.TCP]
    heads, body = answer.variants[0][records.PLAIN]
    assert heads[0][0] & records.FLAG_TC and body == b""              # UDP: none, ask again over TCP
