"""Prebuilt answers: the records of one name, packed once, replied with the query's id patched in.

Every record is packed by dnslib right after the question it answers, so its names compress
only into that question (the owner is a pointer to the question's name; an SRV target's A
record points at the app's name inside it). Such a record is position-independent: records
can be reordered (round-robin rotations), dropped (to fit 512 bytes) and concatenated without
packing again. A reply is then

    query id + prebuilt flags and counts + the query's own question + prebuilt records

which keeps the query's letter case in the question, as resolvers that randomise case expect.
"""
import functools
import ipaddress

from dnslib import AAAA, QTYPE, RR, SOA, SRV, A, DNSBuffer, DNSHeader, DNSQuestion

UDP_PLAIN = 512          # without EDNS (RFC 1035)
EDNS_SIZE = 1232         # what we offer and use with EDNS: fits any path's MTU (DNS flag day 2020)
# An OPT record: root owner, type 41, our UDP size, extended rcode 0, version 0, no flags or options.
OPT_RR = b"\x00\x00\x29" + EDNS_SIZE.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"
# Which prebuilt variant a reply uses: a plain UDP reply, EDNS with a small buffer, EDNS, TCP.
PLAIN, EDNS_SMALL, EDNS, TCP = range(4)
LIMITS = (UDP_PLAIN, UDP_PLAIN - len(OPT_RR), EDNS_SIZE - len(OPT_RR), 65535 - len(OPT_RR))
MAX_ROTATIONS = 16       # round-robin orders kept per name; bigger sets rotate in steps
FLAG_QR_AA = 0x84        # response, authoritative; RD is copied from the query, RA is never set
FLAG_TC = 0x02


class Encoder:
    """Packs records after one question; see the module's docstring."""

    def __init__(self, qname: str, qtype: int):
        buf = DNSBuffer()
        DNSHeader().pack(buf)
        DNSQuestion(qname, qtype).pack(buf)
        self._data, self._names = bytes(buf.data), dict(buf.names)
        self.key = self._data[12:]

    def pack(self, rr: RR) -> bytes:
        buf = DNSBuffer(self._data)
        buf.offset, buf.names = len(self._data), dict(self._names)
        rr.pack(buf)
        return bytes(buf.data[len(self._data):])


class Answer:
    """Every variant of the reply to one question: rotations x (plain, EDNS small, EDNS, TCP).

    variants[rotation][transport] = (heads, body): heads[rd | opt << 1] is the reply's flags
    and counts (10 bytes) for the query's RD bit and whether an OPT record follows."""

    __slots__ = ("variants",)

    def __init__(self, question_len: int, answers: list, additional: list = ()):
        additional = list(additional)
        self.variants = [_variants(question_len, _rotate(answers, k), _rotate(additional, k))
                         for k in rotations(len(answers))]

    def reply(self, data: bytes, qend: int, rd: int, opt: int, transport: int, turn: int) -> bytes:
        variants = self.variants
        heads, body = variants[turn % len(variants)][transport]
        out = data[:2] + heads[rd | opt << 1] + data[12:qend] + body
        return out + OPT_RR if opt else out


def rotations(n: int) -> list:
    """The round-robin starting points: every record first once, in at most MAX_ROTATIONS steps."""
    if n <= 1:
        return [0]
    count = min(n, MAX_ROTATIONS)
    return [k * n // count for k in range(count)]


def _rotate(items: list, k: int) -> list:
    k = k % len(items) if items else 0
    return items[k:] + items[:k]


def _variants(question_len: int, answers: list, additional: list) -> tuple:
    """One (heads, body) per transport; a reply that fits whole in a smaller limit is shared."""
    out, whole = [], None
    for limit in LIMITS:
        if whole is None:
            fitted, complete = _fit(question_len, answers, additional, limit)
            whole = fitted if complete else None
            out.append(fitted)
        else:
            out.append(whole)
    return tuple(out)


def _fit(question_len: int, answers: list, additional: list, limit: int):
    """((heads, body), whether nothing was left out) for the records that fit in `limit` bytes:
    all answers or none (then TC, and the client asks again over TCP: a partial RRset must not
    be cached), and the additional records that fit (dropping those needs no TC, RFC 2181 9)."""
    room = limit - 12 - question_len
    size = sum(map(len, answers))
    tc = size > room
    if tc:  # over TCP no larger transport is left: as many as fit (apps of thousands only)
        answers = _prefix(answers, room) if limit == LIMITS[TCP] else []
        additional = []
    kept = _prefix(additional, room - sum(map(len, answers)))
    complete = not tc and len(kept) == len(additional)
    return (_heads(tc, len(answers), len(kept)), b"".join(answers + kept)), complete


def _prefix(records: list, room: int) -> list:
    """The leading records that fit in `room` bytes."""
    kept = []
    for record in records:
        if len(record) > room:
            break
        kept.append(record)
        room -= len(record)
    return kept


@functools.lru_cache(maxsize=4096)   # a few shapes recur across every name
def _heads(tc: bool, an: int, ar: int) -> tuple:
    flags = [bytes((FLAG_QR_AA | (FLAG_TC if tc else 0) | rd, 0)) for rd in (0, 1)]
    counts = [b"\x00\x01" + an.to_bytes(2, "big") + b"\x00\x00" + (ar + opt).to_bytes(2, "big") for opt in (0, 1)]
    return tuple(flags[i & 1] + counts[i >> 1] for i in range(4))


# ---- the records ----

def address_rr(name: str, host: str, ttl: int):
    """An A or AAAA record for `host`, or None when it is not an IP address (no record for it)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4:
        return RR(name, QTYPE.A, ttl=ttl, rdata=A(str(ip)))
    return RR(name, QTYPE.AAAA, ttl=ttl, rdata=AAAA(str(ip)))


def address_type(host: str):
    """QTYPE.A, QTYPE.AAAA or None, as address_rr would make it."""
    try:
        return QTYPE.A if ipaddress.ip_address(host).version == 4 else QTYPE.AAAA
    except ValueError:
        return None


def srv_rr(name: str, port: int, target: str, ttl: int) -> RR:
    # equal priority and weight: clients spread over every instance
    return RR(name, QTYPE.SRV, ttl=ttl, rdata=SRV(priority=0, weight=1, port=port, target=target))


def soa_rr(origin: str, serial: int, ttl: int) -> RR:
    """The zone's SOA; its minimum (the negative-caching TTL, RFC 2308) is the record TTL too."""
    return RR(origin, QTYPE.SOA, ttl=ttl, rdata=SOA(origin, "hostmaster." + origin,
                                                    (serial & 0xFFFFFFFF, 60, 10, 3600, ttl)))


def build(qname: str, qtype: int, answers: list, additional: list = ()) -> tuple:
    """(fast-path key, Answer) for records `answers` (+ `additional`) of question (qname, qtype)."""
    encoder = Encoder(qname, qtype)
    return encoder.key, Answer(len(encoder.key), [encoder.pack(rr) for rr in answers],
                               [encoder.pack(rr) for rr in additional])
