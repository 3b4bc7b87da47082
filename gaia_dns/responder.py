"""From a query's bytes to a reply's bytes.

The fast path reads just enough of the header and question to find a prebuilt answer (a dict
lookup on the lowercased question) and patches the query's id, RD bit and question into it:
no parsing by dnslib, no packing. Anything else (unknown names, other types, odd headers)
takes the slow path, which parses with dnslib and builds NXDOMAIN, NODATA, REFUSED, FORMERR,
NOTIMP or SERVFAIL replies.
"""
from dnslib import EDNS0, OPCODE, QTYPE, RCODE, DNSRecord

from gaia_dns.records import EDNS, EDNS_SIZE, EDNS_SMALL, PLAIN, TCP

_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"   # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
_IN = b"\x00\x01"
CLASS_IN, CLASS_ANY = 1, 255
_ANY_ORDER = (QTYPE.A, QTYPE.AAAA, QTYPE.SRV, QTYPE.SOA)   # what an ANY query gets: the first found


def parse_query(data: bytes):
    """(question end, lowercased question, RD bit, EDNS UDP size or 0) of a plain query, or None
    for anything the fast path leaves to the slow one."""
    try:
        if data[2] & 0xF8 or data[4:10] != _ONE_QUESTION:   # a response, or not a standard query
            return None
        i = 12
        length = data[i]
        while length:
            if length > 63:          # a compression pointer (or garbage) in a question
                return None
            i += length + 1
            length = data[i]
        qend = i + 5
        if qend > len(data):
            return None
        edns = _edns_size(data, qend)
        return None if edns < 0 else (qend, data[12:qend].lower(), data[2] & 1, edns)
    except IndexError:
        return None


def _edns_size(data: bytes, qend: int) -> int:
    """0 without EDNS; the client's UDP size with one OPT record of version 0; -1 otherwise."""
    if data[10:12] == b"\x00\x00":
        return 0
    opt = data[qend:qend + 11]
    if data[10:12] != b"\x00\x01" or len(opt) < 11 or opt[:3] != b"\x00\x00\x29" or opt[6] != 0:
        return -1
    return max(512, int.from_bytes(opt[3:5], "big"))


def transport(tcp: bool, edns: int) -> int:
    if tcp:
        return TCP
    if not edns:
        return PLAIN
    return EDNS if edns >= EDNS_SIZE else EDNS_SMALL


class Responder:
    def __init__(self, cache):
        self.cache = cache
        self.turn = 0     # round-robin position; unlocked: a lost increment only repeats an order

    def answer(self, data: bytes, tcp: bool = False):
        """The reply to `data`, or None when nothing is to be sent (a response, a runt)."""
        query = parse_query(data)
        if query is not None:
            qend, key, rd, edns = query
            found = self.cache.answers.get(key)
            if found is not None:
                self.turn += 1
                return found.reply(data, qend, rd, edns > 0, transport(tcp, edns), self.turn)
        return self.slow(data, tcp)

    # ---- the slow path ----

    def slow(self, data: bytes, tcp: bool):
        try:
            request = DNSRecord.parse(data)
        except Exception:   # dnslib raises several kinds (DNSError, struct and unicode errors) on garbage
            return _formerr(data)
        if request.header.qr:
            return None                 # never answer a response: no loops between servers
        reply = request.reply(ra=0, aa=1)
        reply.header.ad = 0             # copied from the query by dnslib; we sign nothing
        edns = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
        if edns:
            reply.add_ar(EDNS0(udp_len=EDNS_SIZE))
        if request.header.opcode != OPCODE.QUERY:
            reply.header.rcode = RCODE.NOTIMP
        elif len(request.questions) != 1:
            reply.header.rcode = RCODE.FORMERR
        else:
            found = self._negative_or_any(request, reply, data, tcp)
            if found is not None:
                return found
        return _pack(reply, tcp, edns)

    def _negative_or_any(self, request, reply, data, tcp):
        """Fill `reply` for a question with no prebuilt answer; or return a whole reply (ANY)."""
        q, cache = request.q, self.cache
        if cache.version == 0:
            return _fail(reply, RCODE.SERVFAIL)      # not loaded from etcd yet: we do not know
        if q.qclass not in (CLASS_IN, CLASS_ANY) or cache.zone.relative(str(q.qname)) is None:
            return _fail(reply, RCODE.REFUSED)       # not our zone: we are no resolver
        if q.qtype == QTYPE.ANY or q.qclass == CLASS_ANY:
            found = self._any(data, tcp, _ANY_ORDER if q.qtype == QTYPE.ANY else (q.qtype,))
            if found is not None:
                return found
        name = cache.zone.parse(str(q.qname))
        if name is None or not cache.exists(name):
            reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(cache.soa)                   # negative answers are cached for its minimum
        return None

    def _any(self, data: bytes, tcp: bool, qtypes):
        """A query of type or class ANY gets the records of the first of `qtypes` the name has
        (RFC 8482 allows a subset)."""
        query = parse_query(data)
        if query is None:
            return None
        qend, key, rd, edns = query
        for qtype in qtypes:
            found = self.cache.answers.get(key[:-4] + qtype.to_bytes(2, "big") + _IN)
            if found is not None:
                return found.reply(data, qend, rd, edns > 0, transport(tcp, edns), self.turn)
        return None


def _fail(reply: DNSRecord, rcode: int):
    reply.header.rcode, reply.header.aa = rcode, 0   # not an authoritative answer
    return None


def _pack(reply: DNSRecord, tcp: bool, edns: list) -> bytes:
    out = reply.pack()
    limit = 65535 if tcp else (min(max(512, edns[0].rclass), EDNS_SIZE) if edns else 512)
    if len(out) > limit:          # a negative answer of a very long name: header and question only
        reply.auth, reply.header.tc = [], 1
        out = reply.pack()
    return out


def _formerr(data: bytes):
    if len(data) < 12 or data[2] & 0x80:
        return None               # too short to be a query, or a response: say nothing
    flags = 0x80 | (data[2] & 0x79)  # QR, the query's opcode and RD
    return data[:2] + bytes((flags, RCODE.FORMERR)) + b"\x00" * 8
