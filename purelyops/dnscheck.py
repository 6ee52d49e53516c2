"""The live DNS check of one domain against the seven records PurelyMail asks for.

PurelyMail's "Custom Domain Setup" page lists what a customer publishes: the account's
ownership TXT, an MX to mailserver.purelymail.com, an SPF TXT that includes
_spf.purelymail.com, three DKIM CNAMEs and a DMARC CNAME. `check_domain` asks DNS for
all of them at once, under one overall timeout, and says for each whether it passes,
what is wrong in words an admin can act on, and a zone-file line to copy.

Which servers are asked follows the DNS_RESOLVER setting: the servers it names, or,
when it is empty, the zone's own authoritative nameservers (found through the system
resolver), so a record published a minute ago is seen despite caches; the system
resolver is the fallback when they cannot be found or do not answer.

    check = check_domain("example.com", code, resolver_spec="")
    check.ok, check.summary(), check.records

`lookup_txt` reads the TXT records at one name, for the "is the ownership code visible
yet?" step before `addDomain`. Domain names themselves (parsing, IDN, validation) are
`purelyops.domain_names`.
"""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from purelyops.domain_names import ascii_name, normalize_domain

RecordKind = Literal["ownership", "mx", "spf", "dkim1", "dkim2", "dkim3", "dmarc"]
Status = Literal["pass", "warn", "fail"]

KINDS: tuple[RecordKind, ...] = ("ownership", "mx", "spf", "dkim1", "dkim2", "dkim3", "dmarc")
CNAME_KINDS: tuple[RecordKind, ...] = ("dkim1", "dkim2", "dkim3", "dmarc")

PURELYMAIL_MX = "mailserver.purelymail.com"
MX_PRIORITY = 50
SPF_INCLUDE = "_spf.purelymail.com"
SPF_RECORD = f"v=spf1 include:{SPF_INCLUDE} ~all"
DMARC_TARGET = "dmarcroot.purelymail.com"
OWNERSHIP_PREFIX = "purelymail_ownership_proof="


def dkim_target(n: int) -> str:
    return f"key{n}.dkimroot.purelymail.com"


# How long one try at one server may take before the next try (or server) gets a turn;
# UDP has no retransmission of its own, so a long timeout is spent in several tries.
TRY_SECONDS = 2.0
MAX_CNAME_HOPS = 8
EDNS_PAYLOAD = 1232


# ---------------------------------------------------------------------------------------
# Names as dnspython sees them
# ---------------------------------------------------------------------------------------


def _dns_name(name: str) -> dns.name.Name:
    """Any DNS name (underscores allowed, unlike `normalize_domain`), IDN labels encoded."""
    return dns.name.from_text(ascii_name(name) + ".")


def _text(name: dns.name.Name) -> str:
    """A name as this module compares and shows names: lower case, no final dot ("" for the root)."""
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


# ---------------------------------------------------------------------------------------
# The records PurelyMail expects
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedRecord:
    """One record PurelyMail's setup page asks the customer to publish."""

    kind: RecordKind
    rrtype: str  # "TXT", "MX" or "CNAME"
    name: str  # the owner, fully qualified, no trailing dot: "_dmarc.example.com"
    host: str  # the owner as DNS hosts' forms ask for it: "@" or "_dmarc"
    value: str  # "50 mailserver.purelymail.com", a CNAME target, or the TXT text
    fix: str  # the record as a zone-file line, to copy


def zone_line(name: str, rrtype: str, value: str) -> str:
    """A zone-file line: `name. TYPE data`, with TXT text quoted (and split at 255
    bytes) and MX/CNAME targets given their final dot."""
    if rrtype == "TXT":
        data = " ".join(_quote_txt(value[i:i + 255]) for i in range(0, max(len(value), 1), 255))
    elif rrtype == "MX":
        priority, host = value.split(None, 1)
        data = f"{priority} {host.rstrip('.')}."
    else:
        data = value.rstrip(".") + "."
    return f"{name.rstrip('.')}. {rrtype} {data}"


def _quote_txt(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def expected_records(domain: str, ownership_code: str) -> list[ExpectedRecord]:
    """The seven records for `domain` (normalised first; `InvalidDomain` if it is not a
    domain name), in the order of PurelyMail's setup page."""
    apex = normalize_domain(domain).ascii
    rows: list[tuple[RecordKind, str, str, str]] = [
        ("ownership", "TXT", "@", ownership_code),
        ("mx", "MX", "@", f"{MX_PRIORITY} {PURELYMAIL_MX}"),
        ("spf", "TXT", "@", SPF_RECORD),
        ("dkim1", "CNAME", "purelymail1._domainkey", dkim_target(1)),
        ("dkim2", "CNAME", "purelymail2._domainkey", dkim_target(2)),
        ("dkim3", "CNAME", "purelymail3._domainkey", dkim_target(3)),
        ("dmarc", "CNAME", "_dmarc", DMARC_TARGET),
    ]
    records = []
    for kind, rrtype, host, value in rows:
        name = apex if host == "@" else f"{host}.{apex}"
        records.append(ExpectedRecord(kind, rrtype, name, host, value, zone_line(name, rrtype, value)))
    return records


# ---------------------------------------------------------------------------------------
# Asking DNS servers
# ---------------------------------------------------------------------------------------


class DnsLookupError(Exception):
    """A DNS question got no usable answer. The message says what happened in plain
    words; `kind` lets callers tell apart "timeout", "nxdomain", "servfail", "refused",
    "unreachable", "lame", "loop", "no-resolver" and "bad-server"."""

    def __init__(self, message: str, *, kind: str, name: str = "", servers: Sequence[str] = (),
                 seconds: float = 0.0) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.name = name
        self.servers = list(servers)
        self.seconds = seconds


@dataclass(frozen=True)
class NameServer:
    """A DNS server to ask, and how to name it in messages."""

    address: str
    port: int = 53
    hostname: str = ""  # "ns1.example.net" when found through the zone's NS records
    authoritative: bool = False  # found as the zone's nameserver: its answers must be authoritative

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        where = host if self.port == 53 else f"{host}:{self.port}"
        return f"{self.hostname} ({where})" if self.hostname else where


def _seconds(value: float) -> str:
    return f"{value:g}" if value >= 1 else f"{value:.2g}"


def _either(labels: Sequence[str], word: str) -> str:
    """["a"] → "a"; ["a", "b", "c"] → "a, b or c"."""
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + f" {word} " + labels[-1]


def _server_phrase(labels: Sequence[str]) -> str:
    return f"the DNS server {labels[0]}" if len(labels) == 1 else f"the DNS servers {_either(labels, 'and')}"


def timeout_error(name: str, servers: Sequence[NameServer] | Sequence[str], seconds: float) -> DnsLookupError:
    """The error for servers that did not answer in time."""
    labels = [s.label if isinstance(s, NameServer) else s for s in servers]
    who = _server_phrase(labels) if labels else "no DNS server"
    return DnsLookupError(
        f"{who} did not answer within {_seconds(seconds)} s",
        kind="timeout", name=name, servers=labels, seconds=seconds,
    )


class Budget:
    """One overall time budget, shared by every question of a check: each try at a
    server may use only what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


_RCODE_WORDS = {
    dns.rcode.SERVFAIL: "answered SERVFAIL (server failure) for {name}, which usually means a broken delegation "
                        "or a DNSSEC problem at the domain's DNS host",
    dns.rcode.REFUSED: "refused to answer for {name} (REFUSED): it is not a nameserver for that name, "
                       "or does not resolve for this bot",
    dns.rcode.FORMERR: "could not parse the question about {name} (FORMERR)",
    dns.rcode.NOTIMP: "does not support the question about {name} (NOTIMP)",
}


def ask(servers: Sequence[NameServer], qname: dns.name.Name, rdtype: dns.rdatatype.RdataType,
        clock: Budget) -> tuple[dns.message.Message, NameServer]:
    """Ask `servers` one question until one gives a usable answer (NOERROR or NXDOMAIN,
    authoritative if it must be) or the clock runs out. UDP first, TCP when truncated;
    servers that time out get another try in turn, servers that fail are dropped.
    Raises DnsLookupError."""
    name = _text(qname)
    if not servers:
        raise DnsLookupError(
            "no DNS server to ask: this machine has no resolver configured and DNS_RESOLVER is empty",
            kind="no-resolver", name=name,
        )
    query = dns.message.make_query(qname, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
    live = list(servers)
    failures: list[tuple[NameServer, str, str]] = []  # (server, kind, words)
    while live:
        for server in list(live):
            remaining = clock.remaining()
            if remaining <= 0:
                raise timeout_error(name, live, clock.seconds)
            try:
                response = _exchange(query, server, min(remaining, TRY_SECONDS), clock)
            except dns.exception.Timeout:
                continue
            except OSError as error:
                failures.append((server, "unreachable", f"could not be reached ({error.strerror or error})"))
            except dns.exception.DNSException as error:
                failures.append((server, "bad-server", f"sent an answer about {name} that could not be read ({error})"))
            else:
                rcode = response.rcode()
                if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                    words = _RCODE_WORDS.get(rcode, f"answered {dns.rcode.to_text(rcode)} for {{name}}")
                    failures.append((server, dns.rcode.to_text(rcode).lower(), words.format(name=name)))
                elif server.authoritative and not response.flags & dns.flags.AA:
                    words = f"is listed as a nameserver for {name} but did not answer authoritatively"
                    failures.append((server, "lame", words))
                else:
                    return response, server
            live.remove(server)
    kinds = sorted({kind for _, kind, _ in failures})
    message = "; ".join(f"the DNS server {server.label} {words}" for server, _, words in failures)
    kind = "servfail" if "servfail" in kinds else kinds[0]
    raise DnsLookupError(message, kind=kind, name=name, servers=[s.label for s in servers])


def _exchange(query: dns.message.Message, server: NameServer, wait: float, clock: Budget) -> dns.message.Message:
    response = dns.query.udp(query, server.address, timeout=wait, port=server.port, ignore_unexpected=True)
    if response.flags & dns.flags.TC:
        response = dns.query.tcp(query, server.address, timeout=max(clock.remaining(), 0.01), port=server.port)
    return response


@dataclass
class Answer:
    """What DNS says about one name and type, after following CNAMEs."""

    name: str  # the name asked
    status: Literal["data", "nodata", "nxdomain", "alias"]  # "alias": a CNAME not followed
    records: list[dns.rdata.Rdata] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)  # CNAME targets, in order
    server: str = ""

    @property
    def final(self) -> str:
        return self.chain[-1] if self.chain else self.name


ServerChooser = Callable[[dns.name.Name, Budget], list[NameServer]]


def resolve(choose: ServerChooser, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, clock: Budget, *,
            follow: bool = True) -> Answer:
    """The `rdtype` records at `qname`, following a CNAME chain through the answer and,
    when `follow` and the server did not chase it (authoritative servers stop at their
    zone's edge), with further questions. Raises `DnsLookupError`."""
    asked = _text(qname)
    chain: list[str] = []
    current = qname
    for _ in range(MAX_CNAME_HOPS):
        response, server = ask(choose(current, clock), current, rdtype, clock)
        moved = False
        while True:
            rrset = _find(response.answer, current, rdtype)
            if rrset is not None:
                return Answer(asked, "data", list(rrset), chain, server.label)
            cname = _find(response.answer, current, dns.rdatatype.CNAME)
            if cname is None:
                break
            current = cname[0].target
            if _text(current) in chain or _text(current) == asked:
                raise DnsLookupError(f"{asked} is a CNAME loop (through {_text(current)})", kind="loop", name=asked)
            chain.append(_text(current))
            moved = True
            if len(chain) > MAX_CNAME_HOPS:
                break
        if len(chain) > MAX_CNAME_HOPS:
            break
        if response.rcode() == dns.rcode.NXDOMAIN:
            return Answer(asked, "nxdomain", [], chain, server.label)
        if not moved or not follow:
            return Answer(asked, "alias" if moved else "nodata", [], chain, server.label)
        # The answer stopped at a CNAME whose target it did not cover: ask about the target.
    raise DnsLookupError(f"{asked} has a CNAME chain longer than {MAX_CNAME_HOPS}", kind="loop", name=asked)


def _find(section: list[dns.rrset.RRset], name: dns.name.Name,
          rdtype: dns.rdatatype.RdataType) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN and rrset.name == name:
            return rrset
    return None


# ---------------------------------------------------------------------------------------
# Which servers to ask
# ---------------------------------------------------------------------------------------


def parse_resolver_spec(spec: str) -> list[tuple[str, int]]:
    """DNS_RESOLVER's "host[:port],host[:port]" as (host, port) pairs; IPv6 addresses
    are written bare (no port) or in brackets: "[2001:db8::1]:5353". ValueError if bad."""
    servers = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ("" if not rest else "x")
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host, port = item, ""
        if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
            raise ValueError(f"{item!r} is not host[:port]")
        servers.append((host, int(port) if port else 53))
    return servers


def configured_servers(spec: str) -> list[NameServer]:
    """The servers DNS_RESOLVER names, host names looked up. DnsLookupError if one of
    them cannot be found."""
    servers = []
    for host, port in parse_resolver_spec(spec):
        if dns.inet.is_address(host):
            servers.append(NameServer(host, port))
            continue
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError:
            raise DnsLookupError(f"could not find the address of the DNS server {host} named in DNS_RESOLVER",
                                 kind="bad-server", name=host) from None
        servers.append(NameServer(str(infos[0][4][0]), port, hostname=host))
    return servers


def system_servers() -> list[NameServer]:
    """The machine's own resolvers (resolv.conf or the platform's equivalent)."""
    try:
        resolver = dns.resolver.get_default_resolver()
    except dns.resolver.NoResolverConfiguration:
        return []
    ports = getattr(resolver, "nameserver_ports", {}) or {}
    return [NameServer(ns, int(ports.get(ns, resolver.port))) for ns in resolver.nameservers if isinstance(ns, str)]


def find_authoritative_servers(name: str, *, bootstrap_spec: str = "", nameserver_port: int = 53,
                               timeout: float = 5.0) -> list[NameServer]:
    """The nameservers of the zone holding `name`: walk up from `name` asking for NS
    records (through the servers in `bootstrap_spec`, default the system resolver),
    then take their addresses from the glue or ask for them. `nameserver_port` is the
    port they will be asked on (53 in real life; tests use a loopback port).
    DnsLookupError if none are found."""
    clock = Budget(timeout)
    bootstrap = configured_servers(bootstrap_spec) if bootstrap_spec.strip() else system_servers()
    return _discover(_dns_name(name), bootstrap, nameserver_port, clock)[1]


def _discover(name: dns.name.Name, bootstrap: list[NameServer], port: int,
              clock: Budget) -> tuple[dns.name.Name, list[NameServer]]:
    """The zone holding `name` and its nameservers, asked on `port` (see find_authoritative_servers)."""
    candidate = name
    ns_rrset: dns.rrset.RRset | None = None
    response: dns.message.Message | None = None
    while len(candidate.labels) > 2:  # never ask a top-level domain's servers
        try:
            response, _ = ask(bootstrap, candidate, dns.rdatatype.NS, clock)
        except DnsLookupError as error:
            if error.kind == "timeout":
                raise
            candidate = candidate.parent()
            continue
        ns_rrset = _find(response.answer, candidate, dns.rdatatype.NS)
        if ns_rrset is not None:
            break
        candidate = candidate.parent()
    if ns_rrset is None or response is None:
        raise DnsLookupError(f"found no nameservers for {_text(name)}", kind="nxdomain", name=_text(name))
    hosts = [rdata.target for rdata in ns_rrset]
    addresses: dict[dns.name.Name, list[str]] = {host: [] for host in hosts}
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        for host in hosts:
            glue = _find(response.additional, host, rdtype)
            addresses[host] += [rdata.address for rdata in glue] if glue else []
    missing = [host for host in hosts if not addresses[host]]
    if missing:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(missing), thread_name_prefix="dns-ns") as pool:
            futures = {
                host: pool.submit(resolve, lambda _n, _c: bootstrap, host, dns.rdatatype.A, clock) for host in missing
            }
            for host, future in futures.items():
                try:
                    answer = future.result()
                except DnsLookupError:
                    continue
                addresses[host] += [rdata.address for rdata in answer.records]  # type: ignore[attr-defined]
    servers: list[NameServer] = []
    seen: set[str] = set()
    for host in hosts:
        for address in addresses[host]:
            if address not in seen:
                seen.add(address)
                servers.append(NameServer(address, port, hostname=_text(host), authoritative=True))
    servers.sort(key=lambda s: ":" in s.address)  # IPv4 first: IPv6 is often unreachable
    if not servers:
        raise DnsLookupError(f"found no address for the nameservers of {_text(candidate)}",
                             kind="nxdomain", name=_text(name))
    return candidate, servers


class ServerPlan:
    """Chooses the servers to ask about each name.

    With `configured` servers (DNS_RESOLVER) those are asked about everything. Without,
    each zone's own nameservers are found once (through `bootstrap`, default the system
    resolver) and asked on `nameserver_port`; the `fallback` servers (default the
    bootstrap ones) come after them, and alone when the nameservers cannot be found."""

    def __init__(self, configured: list[NameServer] | None = None, *, bootstrap: list[NameServer] | None = None,
                 fallback: list[NameServer] | None = None, nameserver_port: int = 53) -> None:
        self.configured = configured
        self.bootstrap = system_servers() if configured is None and bootstrap is None else (bootstrap or [])
        self.fallback = self.bootstrap if fallback is None else fallback
        self.nameserver_port = nameserver_port
        self._zones: dict[dns.name.Name, list[NameServer]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, resolver_spec: str) -> ServerPlan:
        """The plan for a DNS_RESOLVER value: those servers, or (empty) the authoritative ones."""
        return cls(configured_servers(resolver_spec) if resolver_spec.strip() else None)

    @property
    def mode(self) -> str:
        """"configured", "authoritative" (a zone's nameservers were found) or "system"."""
        if self.configured is not None:
            return "configured"
        return "authoritative" if any(self._zones.values()) else "system"

    def __call__(self, name: dns.name.Name, clock: Budget) -> list[NameServer]:
        if self.configured is not None:
            return self.configured
        with self._lock:  # one discovery per zone, even when every question wants it at once
            zone = self._known_zone(name)
            if zone is None:
                try:
                    zone, servers = _discover(name, self.bootstrap, self.nameserver_port, clock)
                except DnsLookupError:
                    zone, servers = name, []
                self._zones[zone] = servers
            return self._zones[zone] + [s for s in self.fallback if s not in self._zones[zone]]

    def labels_for(self, name: dns.name.Name) -> list[str]:
        """The servers asked (or to be asked) about `name`, for messages."""
        if self.configured is not None:
            return [s.label for s in self.configured]
        zone = self._known_zone(name)
        servers = self._zones[zone] if zone is not None else []
        return [s.label for s in servers + [s for s in self.fallback if s not in servers]]

    def _known_zone(self, name: dns.name.Name) -> dns.name.Name | None:
        known = [zone for zone in self._zones if name.is_subdomain(zone)]
        return max(known, key=len) if known else None


# ---------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordResult:
    """The verdict on one expected record."""

    kind: RecordKind
    status: Status
    expected: str  # the expected value, as in ExpectedRecord.value
    found: list[str]  # what DNS holds there that bears on it ("CNAME x", TXT text, "10 mx.host")
    message: str  # what is right or wrong, in words for the admin
    fix: str  # a zone-file line to publish (for SPF, merged with what is there)
    name: str = ""  # the owner name that was checked


_RANK: dict[Status, int] = {"pass": 0, "warn": 1, "fail": 2}


def worst(statuses: Sequence[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default="pass")


@dataclass(frozen=True)
class DomainCheck:
    """The outcome of `check_domain`: one result per expected record, in KINDS order."""

    domain: str  # ASCII form
    unicode_domain: str
    records: list[RecordResult]
    elapsed: float  # seconds
    servers: list[str]  # the servers asked about the domain, as labels
    mode: str  # "configured" (DNS_RESOLVER), "authoritative" or "system" (the fallback)

    @property
    def ok(self) -> bool:
        """True when nothing fails (warnings allowed)."""
        return all(r.status != "fail" for r in self.records)

    def record(self, kind: RecordKind) -> RecordResult:
        return next(r for r in self.records if r.kind == kind)

    def summary(self) -> dict[str, Status]:
        """One status per badge: mx, spf, dkim (the worst of the three), dmarc, ownership."""
        by_kind = {r.kind: r.status for r in self.records}
        return {
            "mx": by_kind["mx"],
            "spf": by_kind["spf"],
            "dkim": worst([by_kind["dkim1"], by_kind["dkim2"], by_kind["dkim3"]]),
            "dmarc": by_kind["dmarc"],
            "ownership": by_kind["ownership"],
        }


# ---------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------


def check_domain(domain: str, ownership_code: str, *, resolver_spec: str = "", timeout: float = 5.0,
                 servers: ServerPlan | None = None) -> DomainCheck:
    """Check `domain`'s seven PurelyMail records live, all questions at once, within
    `timeout` seconds overall. `resolver_spec` is DNS_RESOLVER ("host[:port],…"); empty
    means the zone's own nameservers, with the system resolver as the fallback. A ready
    `servers` plan (another bootstrap resolver or nameserver port) overrides it.
    Raises InvalidDomain for a bad name and ValueError for a malformed resolver_spec;
    DNS trouble never raises: it shows in the records."""
    started = time.monotonic()
    clock = Budget(timeout)
    name = normalize_domain(domain)
    expected = {e.kind: e for e in expected_records(name.ascii, ownership_code)}
    apex = dns.name.from_text(name.ascii + ".")

    try:
        plan = servers or ServerPlan.from_spec(resolver_spec)
    except DnsLookupError as error:
        records = [_result(e, "fail", [], error.message) for e in expected.values()]
        return DomainCheck(name.ascii, name.unicode, records, time.monotonic() - started, [], "configured")
    plan(apex, clock)  # find the zone's nameservers before the questions share them

    questions: dict[str, tuple[dns.name.Name, dns.rdatatype.RdataType, bool]] = {
        "apex-txt": (apex, dns.rdatatype.TXT, True),
        "apex-mx": (apex, dns.rdatatype.MX, True),
    }
    for kind in CNAME_KINDS:
        # TXT rather than CNAME: a CNAME answers any type, and a TXT key published in its
        # place shows up in the same answer.
        questions[kind] = (dns.name.from_text(expected[kind].name + "."), dns.rdatatype.TXT, False)

    outcomes: dict[str, Answer | DnsLookupError] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(questions), thread_name_prefix="dnscheck")
    try:
        futures = {key: pool.submit(resolve, plan, qname, rdtype, clock, follow=follow)
                   for key, (qname, rdtype, follow) in questions.items()}
        concurrent.futures.wait(futures.values(), timeout=max(clock.remaining(), 0) + 0.2)
        for key, future in futures.items():
            qname = questions[key][0]
            if not future.done():
                outcomes[key] = timeout_error(_text(qname), plan.labels_for(qname), clock.seconds)
                continue
            try:
                outcomes[key] = future.result()
            except DnsLookupError as error:
                outcomes[key] = error
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    records = [
        _judge_ownership(expected["ownership"], outcomes["apex-txt"], ownership_code),
        _judge_mx(expected["mx"], outcomes["apex-mx"]),
        _judge_spf(expected["spf"], outcomes["apex-txt"]),
        *(_judge_dkim(expected[k], outcomes[k]) for k in CNAME_KINDS if k != "dmarc"),
        _judge_dmarc(expected["dmarc"], outcomes["dmarc"]),
    ]
    return DomainCheck(name.ascii, name.unicode, records, time.monotonic() - started,
                       plan.labels_for(apex), plan.mode)


def lookup_txt(name: str, resolver_spec: str = "", timeout: float = 5.0, *,
               servers: ServerPlan | None = None) -> list[str]:
    """The TXT values at `name` (each record's strings joined), following CNAMEs; an
    empty list when the name exists without TXT records. Raises DnsLookupError for
    NXDOMAIN, timeouts and server failures, with a message for the admin."""
    clock = Budget(timeout)
    qname = _dns_name(name)
    plan = servers or ServerPlan.from_spec(resolver_spec)
    answer = resolve(plan, qname, dns.rdatatype.TXT, clock)
    if answer.status == "nxdomain":
        raise _nxdomain_error(answer)
    return _texts(answer)


def _nxdomain_error(answer: Answer) -> DnsLookupError:
    message = f"{answer.final} does not exist in DNS (NXDOMAIN)"
    if answer.chain:
        message += f"; {answer.name} is an alias (CNAME) for it"
    return DnsLookupError(message, kind="nxdomain", name=answer.name)


def _texts(answer: Answer) -> list[str]:
    """The TXT values of an answer, sorted: DNS gives a record set in no fixed order."""
    return sorted(_txt(rdata) for rdata in answer.records)


def _txt(rdata: dns.rdata.Rdata) -> str:
    return b"".join(rdata.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]


def _result(expected: ExpectedRecord, status: Status, found: list[str], message: str,
            fix: str | None = None) -> RecordResult:
    fix = expected.fix if fix is None else fix
    return RecordResult(expected.kind, status, expected.value, found, message, fix, expected.name)


def _lookup_failure(expected: ExpectedRecord, error: DnsLookupError) -> RecordResult:
    if error.kind == "timeout" and error.servers:
        message = f"no answer from {_either(error.servers, 'or')} within {_seconds(error.seconds)} s"
    else:
        message = error.message
    return _result(expected, "fail", [], message)


def _apex_missing(expected: ExpectedRecord, answer: Answer) -> RecordResult:
    return _result(expected, "fail", [], str(_nxdomain_error(answer))
                   + ": check that the domain is registered and that its nameservers are set at the registrar")


def _chain_note(answer: Answer) -> str:
    return f" (through the CNAME {answer.name} → {' → '.join(answer.chain)})" if answer.chain else ""


def _judge_ownership(expected: ExpectedRecord, outcome: Answer | DnsLookupError, code: str) -> RecordResult:
    """The apex TXT must hold this account's ownership code exactly."""
    if isinstance(outcome, DnsLookupError):
        return _lookup_failure(expected, outcome)
    if outcome.status == "nxdomain":
        return _apex_missing(expected, outcome)
    values = _texts(outcome)
    if code in values:
        return _result(expected, "pass", [code], "the ownership code is published")
    proofs = [v for v in values if OWNERSHIP_PREFIX in v]
    if any(v.strip().strip("\"'").strip() == code for v in proofs):
        return _result(expected, "fail", proofs,
                       "the ownership TXT has quote marks or spaces around the code; publish the code alone")
    if proofs:
        return _result(expected, "fail", proofs,
                       f"the ownership TXT at {expected.name} holds a different code than this account's; "
                       "another PurelyMail account's code, or a typo: publish this account's code")
    return _result(expected, "fail", [], f"there is no ownership TXT record at {expected.name}{_chain_note(outcome)}")


def _judge_mx(expected: ExpectedRecord, outcome: Answer | DnsLookupError) -> RecordResult:
    """PurelyMail's MX must be there, at priority 50 (else a warning); other MX hosts are a warning."""
    if isinstance(outcome, DnsLookupError):
        return _lookup_failure(expected, outcome)
    if outcome.status == "nxdomain":
        return _apex_missing(expected, outcome)
    hosts = sorted((r.preference, _text(r.exchange)) for r in outcome.records)  # type: ignore[attr-defined]
    found = [f"{priority} {host or '.'}" for priority, host in hosts]
    if any(host == "" for _, host in hosts):
        return _result(expected, "fail", found,
                       "the domain publishes a null MX (RFC 7505): it says it accepts no mail; "
                       "replace it with PurelyMail's MX")
    ours = [priority for priority, host in hosts if host == PURELYMAIL_MX]
    others = [(priority, host) for priority, host in hosts if host != PURELYMAIL_MX]
    if not ours:
        if not hosts:
            return _result(expected, "fail", found,
                           f"there is no MX record at {expected.name}{_chain_note(outcome)}: mail has nowhere to go")
        return _result(expected, "fail", found,
                       f"mail goes to {_either([h for _, h in others], 'and')}, not to {PURELYMAIL_MX}")
    problems = []
    if MX_PRIORITY not in ours:
        problems.append(f"{PURELYMAIL_MX} has priority {ours[0]} instead of {MX_PRIORITY}")
    if others:
        words = f"other mail servers also receive mail for this domain: {', '.join(f'{h} ({p})' for p, h in others)}"
        if min(p for p, _ in others) < min(ours):
            words += "; they come first (lower priority number)"
        problems.append(words)
    if problems:
        return _result(expected, "warn", found, "; ".join(problems))
    return _result(expected, "pass", found, f"mail goes to {PURELYMAIL_MX}")


def _is_spf(text: str) -> bool:
    low = text.strip().lower()
    return low == "v=spf1" or low.startswith("v=spf1 ")


def _includes_purelymail(record: str) -> bool:
    return any(token.lower().lstrip("+") == f"include:{SPF_INCLUDE}" for token in record.split()[1:])


def merged_spf(records: Sequence[str]) -> str:
    """One SPF record with every mechanism of `records` and PurelyMail's include: the
    first `all` found (or `~all`), a `redirect=` only when no `all` is left."""
    terms: list[str] = []
    seen: set[str] = set()
    all_term = ""
    redirect = ""
    for record in records:
        for token in record.split()[1:]:
            low = token.lower()
            if low.lstrip("+-~?") == "all":
                all_term = all_term or token
            elif low.startswith("redirect="):
                redirect = redirect or token
            elif low not in seen:
                seen.add(low)
                terms.append(token)
    if f"include:{SPF_INCLUDE}" not in {t.lower().lstrip("+") for t in terms}:
        terms.append(f"include:{SPF_INCLUDE}")
    tail = all_term or redirect or "~all"
    return " ".join(["v=spf1", *terms, tail])


def _judge_spf(expected: ExpectedRecord, outcome: Answer | DnsLookupError) -> RecordResult:
    """Exactly one SPF record, including PurelyMail's; the fix merges what is there."""
    if isinstance(outcome, DnsLookupError):
        return _lookup_failure(expected, outcome)
    if outcome.status == "nxdomain":
        return _apex_missing(expected, outcome)
    spf = [v for v in _texts(outcome) if _is_spf(v)]
    if not spf:
        return _result(expected, "fail", [],
                       f"there is no SPF record (v=spf1) at {expected.name}{_chain_note(outcome)}")
    fix = zone_line(expected.name, "TXT", merged_spf(spf))
    if len(spf) > 1:
        return _result(expected, "fail", spf,
                       f"{len(spf)} SPF records: that is a permerror (RFC 7208 §4.5): merge them into one", fix)
    if not _includes_purelymail(spf[0]):
        return _result(expected, "fail", spf,
                       f"the SPF record does not include {SPF_INCLUDE}, so PurelyMail's servers are not "
                       "allowed to send for this domain: add the include and keep the others", fix)
    return _result(expected, "pass", spf, f"SPF includes {SPF_INCLUDE}", fix)


def _looks_like_dkim_key(text: str) -> bool:
    low = text.replace(" ", "").lower()
    return low.startswith("v=dkim1") or low.startswith("p=") or ";p=" in low


def _judge_dkim(expected: ExpectedRecord, outcome: Answer | DnsLookupError) -> RecordResult:
    """A CNAME to PurelyMail's keyN; a CNAME elsewhere or a TXT key in its place fails."""
    if isinstance(outcome, DnsLookupError):
        return _lookup_failure(expected, outcome)
    target = expected.value
    if outcome.chain:
        found = [f"CNAME {outcome.chain[0]}"]
        if outcome.chain[0] == target:
            return _result(expected, "pass", found, f"{expected.name} points to {target}")
        if target in outcome.chain:
            return _result(expected, "warn", found,
                           f"{expected.name} points to {outcome.chain[0]}, which leads on to {target}; DKIM works this "
                           "way, but PurelyMail's own check may want the direct CNAME")
        return _result(expected, "fail", found,
                       f"{expected.name} points to {outcome.chain[0]} instead of {target}; change the CNAME's target")
    texts = _texts(outcome)
    found = [f"TXT {t}" for t in texts]
    if any(_looks_like_dkim_key(t) for t in texts):
        return _result(expected, "fail", found,
                       f"a DKIM key is published as a TXT record at {expected.name}; PurelyMail rotates its "
                       f"keys and publishes them itself, so it wants a CNAME to {target} there: delete the TXT "
                       "record, then add the CNAME")
    if texts:
        return _result(expected, "fail", found,
                       f"{expected.name} has a TXT record but not the CNAME to {target}: "
                       "delete the TXT record, then add the CNAME")
    missing = "does not exist" if outcome.status == "nxdomain" else "has no CNAME"
    return _result(expected, "fail", [], f"{expected.name} {missing}: add the CNAME to {target}")


def _judge_dmarc(expected: ExpectedRecord, outcome: Answer | DnsLookupError) -> RecordResult:
    """A CNAME to dmarcroot; a DMARC policy of the domain's own is a warning, not a fault."""
    if isinstance(outcome, DnsLookupError):
        return _lookup_failure(expected, outcome)
    if outcome.chain:
        found = [f"CNAME {outcome.chain[0]}"]
        if outcome.chain[0] == DMARC_TARGET:
            return _result(expected, "pass", found, f"{expected.name} points to {DMARC_TARGET}")
        return _result(expected, "warn", found,
                       f"{expected.name} points to {outcome.chain[0]}, so DMARC for this domain is managed there; "
                       f"PurelyMail expects its CNAME to {DMARC_TARGET}. Keep it if you use that service on purpose")
    texts = _texts(outcome)
    found = [f"TXT {t}" for t in texts]
    policies = [t for t in texts if t.replace(" ", "").lower().startswith("v=dmarc1")]
    if len(policies) == 1:
        return _result(expected, "warn", found,
                       f"the domain has its own DMARC policy at {expected.name} ({policies[0]}), and "
                       f"PurelyMail expects its CNAME to {DMARC_TARGET} there. Your policy still applies; "
                       "to let PurelyMail manage DMARC, replace the TXT record with the CNAME")
    if len(policies) > 1:
        return _result(expected, "fail", found,
                       f"{len(policies)} DMARC policies at {expected.name}: receivers ignore them all when "
                       f"there is more than one (RFC 7489 §6.6.3); replace them with the CNAME to {DMARC_TARGET}")
    if texts:
        return _result(expected, "fail", found,
                       f"{expected.name} has a TXT record that is not a DMARC policy, and no CNAME to {DMARC_TARGET}: "
                       "delete the TXT record, then add the CNAME")
    missing = "does not exist" if outcome.status == "nxdomain" else "has no CNAME"
    return _result(expected, "fail", [], f"{expected.name} {missing}: add the CNAME to {DMARC_TARGET}")
