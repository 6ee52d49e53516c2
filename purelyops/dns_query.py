"""Asking DNS servers: which ones (the servers DNS_RESOLVER names, a zone's own
authoritative nameservers, or the system resolver), and one question at a time under a
shared time budget, CNAMEs followed, with every failure put in words an admin can act on.

`purelyops.dnscheck` checks a domain's records through this; `purelyops.servers` looks
source hosts up with it.

    plan = ServerPlan.from_spec(settings.dns_resolver)
    answer = resolve(plan, dns_name("example.com"), dns.rdatatype.MX, Budget(5.0))
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

from purelyops.domain_names import ascii_name

# How long one try at one server may take before the next try (or server) gets a turn;
# UDP has no retransmission of its own, so a long timeout is spent in several tries.
TRY_SECONDS = 2.0
MAX_CNAME_HOPS = 8
EDNS_PAYLOAD = 1232


# ---------------------------------------------------------------------------------------
# Names as dnspython sees them
# ---------------------------------------------------------------------------------------


def dns_name(name: str) -> dns.name.Name:
    """Any DNS name (underscores allowed, unlike `normalize_domain`), IDN labels encoded."""
    return dns.name.from_text(ascii_name(name) + ".")


def name_text(name: dns.name.Name) -> str:
    """A name as purelyops compares and shows names: lower case, no final dot ("" for the root)."""
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True).lower()


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


def short_seconds(value: float) -> str:
    return f"{value:g}" if value >= 1 else f"{value:.2g}"


def listing(labels: Sequence[str], word: str) -> str:
    """["a"] → "a"; ["a", "b", "c"] → "a, b or c"."""
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + f" {word} " + labels[-1]


def _server_phrase(labels: Sequence[str]) -> str:
    return f"the DNS server {labels[0]}" if len(labels) == 1 else f"the DNS servers {listing(labels, 'and')}"


def timeout_error(name: str, servers: Sequence[NameServer] | Sequence[str], seconds: float) -> DnsLookupError:
    """The error for servers that did not answer in time."""
    labels = [s.label if isinstance(s, NameServer) else s for s in servers]
    who = _server_phrase(labels) if labels else "no DNS server"
    return DnsLookupError(
        f"{who} did not answer within {short_seconds(seconds)} s",
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
    name = name_text(qname)
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
    asked = name_text(qname)
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
            if name_text(current) in chain or name_text(current) == asked:
                raise DnsLookupError(f"{asked} is a CNAME loop (through {name_text(current)})", kind="loop", name=asked)
            chain.append(name_text(current))
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
    return _discover(dns_name(name), bootstrap, nameserver_port, clock)[1]


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
        raise DnsLookupError(f"found no nameservers for {name_text(name)}", kind="nxdomain", name=name_text(name))
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
                servers.append(NameServer(address, port, hostname=name_text(host), authoritative=True))
    servers.sort(key=lambda s: ":" in s.address)  # IPv4 first: IPv6 is often unreachable
    if not servers:
        raise DnsLookupError(f"found no address for the nameservers of {name_text(candidate)}",
                             kind="nxdomain", name=name_text(name))
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
