"""An authoritative DNS server on loopback, for tests that must do real DNS over the wire.

It answers the way an authoritative server does: the AA bit on every in-zone answer,
NXDOMAIN for names that do not exist in a served zone, NOERROR with no data (and the SOA
in the authority section) when the name exists with other types, a CNAME plus the
records it leads to when the target is in a served zone, REFUSED outside served zones,
and the TC bit over UDP when the answer does not fit, so clients retry over TCP.

    srv = FakeDNS()
    srv.start()                      # 127.0.0.1, a free port, UDP and TCP: srv.port
    srv.publish_purelymail("example.com", "purelymail_ownership_proof=abc")
    srv.set("example.com", "MX", ["10 mx.other.net"])    # replaces the MX set
    srv.remove("_dmarc.example.com")
    srv.delay = 0.1                  # seconds before every answer; queries run in parallel
    srv.servfail("example.com")      # SERVFAIL for that name
    srv.drop("example.com")          # never answer that name: the client times out
    srv.chase_cnames = False         # answer a CNAME alone, even when its target is ours
    srv.query_log                    # every query received, in order
    srv.stop()

Names may be given with or without the trailing dot and in any case. Record values are
in zone-file form ("50 mailserver.purelymail.com", "key1.dkimroot.purelymail.com"),
except TXT values, which are plain text; a TXT value given as a tuple of strings is
published as that many character-strings, like a long DKIM key split by a DNS host.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

TxtValue = str | tuple[str, ...]

# The record set PurelyMail's "Custom Domain Setup" page asks for (purelymail-api.md),
# written out here on its own so the fake does not trust the code under test.
PURELYMAIL_RECORDS: dict[str, tuple[str, str, str]] = {
    # kind: (owner relative to the domain, type, value)
    "mx": ("@", "MX", "50 mailserver.purelymail.com."),
    "spf": ("@", "TXT", "v=spf1 include:_spf.purelymail.com ~all"),
    "dkim1": ("purelymail1._domainkey", "CNAME", "key1.dkimroot.purelymail.com."),
    "dkim2": ("purelymail2._domainkey", "CNAME", "key2.dkimroot.purelymail.com."),
    "dkim3": ("purelymail3._domainkey", "CNAME", "key3.dkimroot.purelymail.com."),
    "dmarc": ("_dmarc", "CNAME", "dmarcroot.purelymail.com."),
}

MAX_CNAME_CHASE = 8
UDP_PAYLOAD = 1232  # the largest UDP answer this server sends (the DNS flag day 2020 size)


@dataclass(frozen=True)
class LoggedQuery:
    """One query as the server received it."""

    name: str  # lower case, no trailing dot
    rrtype: str  # "TXT", "MX", …
    transport: str  # "udp" or "tcp"


def _name(text: str | dns.name.Name) -> dns.name.Name:
    if isinstance(text, dns.name.Name):
        return text
    return dns.name.from_text(text.rstrip(".") + ".").canonicalize()


def _txt_rdata(value: TxtValue) -> dns.rdata.Rdata:
    parts = (value,) if isinstance(value, str) else tuple(value)
    chunks: list[bytes] = []
    for part in parts:
        raw = part.encode()
        # A character-string holds at most 255 bytes; longer text is split, as DNS hosts do.
        chunks.extend([raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""])
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks)


class FakeDNS:
    """A small authoritative DNS server whose zones tests change while it runs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.delay = 0.0
        self.chase_cnames = True  # False: answer with the CNAME alone, so the client must ask again
        self.query_log: list[LoggedQuery] = []
        self.errors: list[str] = []  # the fake's own failures: a test should find none
        self._lock = threading.Lock()
        self._zones: set[dns.name.Name] = set()
        self._records: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        self._servfail: set[tuple[dns.name.Name, int | None]] = set()
        self._drop: set[tuple[dns.name.Name, int | None]] = set()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._running = False
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # ---- life cycle ------------------------------------------------------------------

    def start(self) -> FakeDNS:
        """Listen on UDP and TCP on the same free loopback port."""
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(64)
            tcp.settimeout(0.2)
            udp.settimeout(0.2)
            self._udp, self._tcp, self.port = udp, tcp, port
            break
        else:  # pragma: no cover - the machine is out of ports
            raise RuntimeError("no free port for the fake DNS server")
        self._running = True
        for target, name in ((self._serve_udp, "fake-dns-udp"), (self._serve_tcp, "fake-dns-tcp")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._running = False
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()

    def __enter__(self) -> FakeDNS:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def spec(self) -> str:
        """This server as a DNS_RESOLVER value: "127.0.0.1:<port>"."""
        return f"{self.host}:{self.port}"

    # ---- zone contents ---------------------------------------------------------------

    def add_zone(self, origin: str, *, nameservers: Sequence[str] = ("ns1",), address: str | None = None) -> None:
        """Serve `origin` with an SOA and NS records; each NS name under the zone gets an
        A record (glue) at `address`, default this server's own address."""
        apex = _name(origin)
        with self._lock:
            self._zones.add(apex)
        self.set(apex, "SOA", [f"ns1.{apex} hostmaster.{apex} 1 7200 900 1209600 60"], ttl=3600)
        ns_names = [_name(f"{ns}.{apex}") if "." not in ns.rstrip(".") else _name(ns) for ns in nameservers]
        self.set(apex, "NS", [n.to_text() for n in ns_names], ttl=3600)
        for ns in ns_names:
            if ns.is_subdomain(apex):
                self.set(ns, "A", [address or self.host], ttl=3600)

    def set(self, name: str | dns.name.Name, rrtype: str, values: Iterable[TxtValue], ttl: int = 60) -> None:
        """Replace the `rrtype` records at `name` (inside a served zone) with `values`."""
        owner = _name(name)
        rdtype = dns.rdatatype.from_text(rrtype)
        if self._zone_of(owner) is None:
            raise ValueError(f"{owner} is not in a served zone; call add_zone first")
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, rdtype)
        for value in values:
            if rdtype == dns.rdatatype.TXT:
                rdata = _txt_rdata(value)
            else:
                assert isinstance(value, str), "only TXT values may be tuples"
                rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False)
            rrset.add(rdata, ttl)
        with self._lock:
            node = self._records.setdefault(owner, {})
            if rdtype == dns.rdatatype.CNAME:
                node.clear()  # a CNAME owns its name alone
            else:
                node.pop(dns.rdatatype.CNAME, None)
            node[rdtype] = rrset

    def remove(self, name: str, rrtype: str | None = None) -> None:
        """Delete every record at `name`, or only its `rrtype` records."""
        owner = _name(name)
        with self._lock:
            node = self._records.get(owner)
            if node is None:
                return
            if rrtype is None:
                del self._records[owner]
            else:
                node.pop(dns.rdatatype.from_text(rrtype), None)
                if not node:
                    del self._records[owner]

    def servfail(self, name: str, rrtype: str | None = None) -> None:
        """Answer SERVFAIL for `name` (all types, or only `rrtype`)."""
        with self._lock:
            self._servfail.add((_name(name), dns.rdatatype.from_text(rrtype) if rrtype else None))

    def drop(self, name: str, rrtype: str | None = None) -> None:
        """Never answer queries for `name` (all types, or only `rrtype`)."""
        with self._lock:
            self._drop.add((_name(name), dns.rdatatype.from_text(rrtype) if rrtype else None))

    def heal(self) -> None:
        """Forget every `servfail` and `drop`."""
        with self._lock:
            self._servfail.clear()
            self._drop.clear()

    def publish_purelymail(self, domain: str, ownership_code: str, *, skip: Iterable[str] = ()) -> None:
        """Publish the full, correct PurelyMail record set for `domain` (adding its zone if
        needed), leaving out the kinds in `skip` ("ownership", "mx", "spf", "dkim1", …)."""
        apex = _name(domain)
        if apex not in self._zones:
            self.add_zone(domain)
        skipped = set(skip)
        txt: list[TxtValue] = []
        if "ownership" not in skipped:
            txt.append(ownership_code)
        for kind, (owner, rrtype, value) in PURELYMAIL_RECORDS.items():
            if kind in skipped:
                continue
            if kind == "spf":
                txt.append(value)
                continue
            self.set(apex if owner == "@" else f"{owner}.{apex}", rrtype, [value])
        if txt:
            self.set(apex, "TXT", txt)

    def queries_for(self, name: str) -> list[LoggedQuery]:
        wanted = name.rstrip(".").lower()
        with self._lock:
            return [q for q in self.query_log if q.name == wanted]

    # ---- answering -------------------------------------------------------------------

    def _zone_of(self, name: dns.name.Name) -> dns.name.Name | None:
        best: dns.name.Name | None = None
        for origin in self._zones:
            if name.is_subdomain(origin) and (best is None or len(origin) > len(best)):
                best = origin
        return best

    def _exists(self, name: dns.name.Name) -> bool:
        """True if `name` has records or is an empty non-terminal (a name below it has)."""
        return name in self._records or any(owner.is_subdomain(name) for owner in self._records)

    def answer(self, query: dns.message.Message, transport: str) -> dns.message.Message | None:
        """The response to one query, or None to stay silent."""
        if not query.question:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname, qtype = question.name.canonicalize(), question.rdtype
        with self._lock:
            logged = LoggedQuery(qname.to_text(omit_final_dot=True), dns.rdatatype.to_text(qtype), transport)
            self.query_log.append(logged)
            dropped = (qname, None) in self._drop or (qname, qtype) in self._drop
            failing = (qname, None) in self._servfail or (qname, qtype) in self._servfail
        if dropped:
            return None
        if self.delay:
            time.sleep(self.delay)
        response = dns.message.make_response(query, our_payload=UDP_PAYLOAD)
        response.flags &= ~dns.flags.RA
        if failing:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        with self._lock:
            self._fill(response, qname, qtype)
        return response

    def _fill(self, response: dns.message.Message, qname: dns.name.Name, qtype: int) -> None:
        zone = self._zone_of(qname)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return
        response.flags |= dns.flags.AA
        name = qname
        for _ in range(MAX_CNAME_CHASE):
            node = self._records.get(name, {})
            cname = node.get(dns.rdatatype.CNAME)
            if qtype == dns.rdatatype.ANY and node:
                response.answer.extend(node.values())
                return
            if qtype in node:
                response.answer.append(node[qtype])
                if qtype == dns.rdatatype.NS:
                    self._add_glue(response, node[qtype])
                return
            if cname is not None and qtype != dns.rdatatype.CNAME:
                response.answer.append(cname)
                target = cname[0].target.canonicalize()
                target_zone = self._zone_of(target)
                if target_zone is None or not self.chase_cnames:
                    return  # out of our zones (or chasing is off): the client asks again
                name, zone = target, target_zone
                continue
            if not self._exists(name):
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._records[zone][dns.rdatatype.SOA])
            return

    def _add_glue(self, response: dns.message.Message, ns_rrset: dns.rrset.RRset) -> None:
        """Addresses for the NS names inside the zone itself (glue); like a server with
        minimal responses, nothing for names elsewhere: the client looks those up."""
        for rdata in ns_rrset:
            host = rdata.target.canonicalize()
            if not host.is_subdomain(ns_rrset.name):
                continue
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue = self._records.get(host, {}).get(rdtype)
                if glue is not None:
                    response.additional.append(glue)

    # ---- transports ------------------------------------------------------------------

    def _serve_udp(self) -> None:
        assert self._udp is not None
        while self._running:
            try:
                wire, peer = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._reply_udp, args=(wire, peer), daemon=True, name="fake-dns-q").start()

    def _reply_udp(self, wire: bytes, peer: tuple[str, int]) -> None:
        out = self._wire(wire, "udp")
        if out is not None and self._udp is not None:
            with contextlib.suppress(OSError):
                self._udp.sendto(out, peer)

    def _wire(self, wire: bytes, transport: str) -> bytes | None:
        """The response to `wire` as bytes: at most the client's UDP size (else an empty
        answer with the TC bit), SERVFAIL if the fake itself breaks."""
        try:
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:
                return None  # not DNS: ignore, as servers do
            response = self.answer(query, transport)
            if response is None:
                return None
            if transport == "tcp":
                return response.to_wire(max_size=65535)  # (the default is the client's UDP size)
            limit = max(512, min(query.payload, UDP_PAYLOAD)) if query.edns >= 0 else 512
            try:
                return response.to_wire(max_size=limit)
            except dns.exception.TooBig:
                for section in (response.answer, response.authority, response.additional):
                    section.clear()
                response.flags |= dns.flags.TC
                return response.to_wire()
        except Exception as error:  # a bug in the fake must show in the test, not kill a thread
            self.errors.append(repr(error))
            broken = dns.message.make_response(dns.message.from_wire(wire))
            broken.set_rcode(dns.rcode.SERVFAIL)
            return broken.to_wire()

    def _serve_tcp(self) -> None:
        assert self._tcp is not None
        while self._running:
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._reply_tcp, args=(conn,), daemon=True, name="fake-dns-tcp-conn").start()

    def _reply_tcp(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while self._running:
                    header = _recv_exactly(conn, 2)
                    if header is None:
                        return
                    wire = _recv_exactly(conn, struct.unpack("!H", header)[0])
                    if wire is None:
                        return
                    out = self._wire(wire, "tcp")
                    if out is None:
                        self._stopped.wait(10)  # like a server that accepted and then went silent
                        return
                    conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                return


def _recv_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
