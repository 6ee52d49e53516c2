"""The live DNS check of one domain against the seven records PurelyMail asks for.

PurelyMail's "Custom Domain Setup" page lists what a customer publishes: the account's
ownership TXT, an MX to mailserver.purelymail.com, an SPF TXT that includes
_spf.purelymail.com, three DKIM CNAMEs and a DMARC CNAME. `check_domain` asks DNS for
all of them at once, under one overall timeout, and says for each whether it passes,
what is wrong in words an admin can act on, and a zone-file line to copy.

Which servers are asked follows the DNS_RESOLVER setting: the servers it names, or,
when it is empty, the zone's own authoritative nameservers (found through the system
resolver), so a record published a minute ago is seen despite caches; the system
resolver is the fallback when they cannot be found or do not answer. Finding and asking
those servers is `purelyops.dns_query`; this module knows the records and judges them.

    check = check_domain("example.com", code, resolver_spec="")
    check.ok, check.summary(), check.records

`lookup_txt` reads the TXT records at one name, for the "is the ownership code visible
yet?" step before `addDomain`. Domain names themselves (parsing, IDN, validation) are
`purelyops.domain_names`.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import dns.name
import dns.rdata
import dns.rdatatype

from purelyops.dns_query import (
    Answer,
    Budget,
    DnsLookupError,
    ServerPlan,
    dns_name,
    listing,
    name_text,
    resolve,
    short_seconds,
    timeout_error,
)
from purelyops.domain_names import normalize_domain

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
                outcomes[key] = timeout_error(name_text(qname), plan.labels_for(qname), clock.seconds)
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
    qname = dns_name(name)
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
        message = f"no answer from {listing(error.servers, 'or')} within {short_seconds(error.seconds)} s"
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
    hosts = sorted((r.preference, name_text(r.exchange)) for r in outcome.records)  # type: ignore[attr-defined]
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
                       f"mail goes to {listing([h for _, h in others], 'and')}, not to {PURELYMAIL_MX}")
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
