"""The live DNS check, over the wire against a real (fake) authoritative DNS server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from purelyops.dns_query import DnsLookupError, NameServer, ServerPlan, find_authoritative_servers, parse_resolver_spec
from purelyops.dnscheck import DomainCheck, check_domain, expected_records, lookup_txt, merged_spf
from purelyops.domain_names import InvalidDomain
from tests.fakes.dns_server import FakeDNS

CODE = "purelymail_ownership_proof=3f9a1c0e7b2d4a68"
DOMAIN = "example.com"


@pytest.fixture
def srv() -> Iterator[FakeDNS]:
    server = FakeDNS()
    server.start()
    yield server
    server.stop()
    assert server.errors == [], "the fake DNS server itself broke"


@pytest.fixture
def published(srv: FakeDNS) -> FakeDNS:
    """example.com with every PurelyMail record published correctly."""
    srv.publish_purelymail(DOMAIN, CODE)
    return srv


def check(srv: FakeDNS, domain: str = DOMAIN, timeout: float = 5.0) -> DomainCheck:
    """check_domain against the fake, the way DNS_RESOLVER=127.0.0.1:<port> would."""
    return check_domain(domain, CODE, resolver_spec=srv.spec, timeout=timeout)


# ---- the records PurelyMail expects ----------------------------------------------------


def test_expected_records_follow_purelymails_setup_page() -> None:
    rows = {(r.kind, r.rrtype, r.name, r.host, r.value) for r in expected_records("Example.COM.", CODE)}
    assert rows == {
        ("ownership", "TXT", "example.com", "@", CODE),
        ("mx", "MX", "example.com", "@", "50 mailserver.purelymail.com"),
        ("spf", "TXT", "example.com", "@", "v=spf1 include:_spf.purelymail.com ~all"),
        *(
            (f"dkim{n}", "CNAME", f"purelymail{n}._domainkey.example.com", f"purelymail{n}._domainkey",
             f"key{n}.dkimroot.purelymail.com")
            for n in (1, 2, 3)
        ),
        ("dmarc", "CNAME", "_dmarc.example.com", "_dmarc", "dmarcroot.purelymail.com"),
    }
    fixes = {r.kind: r.fix for r in expected_records(DOMAIN, CODE)}
    assert fixes["dkim1"] == "purelymail1._domainkey.example.com. CNAME key1.dkimroot.purelymail.com."
    assert fixes["mx"] == "example.com. MX 50 mailserver.purelymail.com."
    assert fixes["spf"] == 'example.com. TXT "v=spf1 include:_spf.purelymail.com ~all"'
    assert fixes["ownership"] == f'example.com. TXT "{CODE}"'
    assert fixes["dmarc"] == "_dmarc.example.com. CNAME dmarcroot.purelymail.com."


# ---- all green ---------------------------------------------------------------------------


def test_a_correctly_published_domain_passes_everything(published: FakeDNS) -> None:
    result = check(published)
    assert result.ok
    assert result.summary() == {"mx": "pass", "spf": "pass", "dkim": "pass", "dmarc": "pass", "ownership": "pass"}
    assert [r.kind for r in result.records] == ["ownership", "mx", "spf", "dkim1", "dkim2", "dkim3", "dmarc"]
    assert all(r.status == "pass" for r in result.records)
    assert result.record("mx").found == ["50 mailserver.purelymail.com"]
    assert result.record("dkim2").found == ["CNAME key2.dkimroot.purelymail.com"]
    assert result.servers == [f"127.0.0.1:{published.port}"] and result.mode == "configured"
    assert result.elapsed < 1
    asked = {(q.name, q.rrtype) for q in published.query_log}
    assert ("example.com", "TXT") in asked and ("example.com", "MX") in asked
    assert ("purelymail3._domainkey.example.com", "TXT") in asked


def test_the_seven_questions_run_concurrently(published: FakeDNS) -> None:
    published.delay = 0.1  # sequentially this would take at least 0.6-0.7 s
    started = time.monotonic()
    result = check(published)
    took = time.monotonic() - started
    assert result.ok
    assert took < 0.5, f"{took:.2f} s: the questions were not asked at once"


# ---- each record missing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "badge", "words"),
    [
        ("ownership", "ownership", "there is no ownership TXT record at example.com"),
        ("mx", "mx", "there is no MX record at example.com"),
        ("spf", "spf", "there is no SPF record (v=spf1) at example.com"),
        ("dkim1", "dkim", "purelymail1._domainkey.example.com does not exist: add the CNAME to key1.dkimroot"),
        ("dkim2", "dkim", "purelymail2._domainkey.example.com does not exist"),
        ("dkim3", "dkim", "purelymail3._domainkey.example.com does not exist"),
        ("dmarc", "dmarc", "_dmarc.example.com does not exist: add the CNAME to dmarcroot.purelymail.com"),
    ],
)
def test_a_missing_record_fails_alone(srv: FakeDNS, kind: str, badge: str, words: str) -> None:
    srv.publish_purelymail(DOMAIN, CODE, skip=[kind])
    result = check(srv)
    assert not result.ok
    failed = [r for r in result.records if r.status != "pass"]
    assert [r.kind for r in failed] == [kind]
    assert words in failed[0].message
    assert failed[0].fix == next(e.fix for e in expected_records(DOMAIN, CODE) if e.kind == kind)
    assert result.summary()[badge] == "fail"


def test_a_dkim_name_that_exists_without_the_cname_says_so(srv: FakeDNS) -> None:
    srv.publish_purelymail(DOMAIN, CODE, skip=["dkim2"])
    srv.set("purelymail2._domainkey.example.com", "A", ["192.0.2.1"])  # exists, but no CNAME/TXT
    dkim2 = check(srv).record("dkim2")
    assert dkim2.status == "fail"
    assert dkim2.message == (
        "purelymail2._domainkey.example.com has no CNAME: add the CNAME to key2.dkimroot.purelymail.com"
    )


# ---- ownership -----------------------------------------------------------------------------


def test_another_accounts_ownership_code_fails(published: FakeDNS) -> None:
    published.set(DOMAIN, "TXT", ["purelymail_ownership_proof=someoneelse", "v=spf1 include:_spf.purelymail.com ~all"])
    ownership = check(published).record("ownership")
    assert ownership.status == "fail"
    assert "holds a different code" in ownership.message
    assert ownership.found == ["purelymail_ownership_proof=someoneelse"]


def test_an_ownership_code_published_with_quote_marks_fails_with_a_hint(published: FakeDNS) -> None:
    published.set(DOMAIN, "TXT", [f'"{CODE}"', "v=spf1 include:_spf.purelymail.com ~all"])
    ownership = check(published).record("ownership")
    assert ownership.status == "fail"
    assert "quote marks" in ownership.message


def test_txt_values_split_into_several_strings_are_joined(published: FakeDNS) -> None:
    long_spf = "v=spf1 " + " ".join(f"ip4:198.51.100.{i}" for i in range(20)) + " include:_spf.purelymail.com ~all"
    assert len(long_spf) > 255
    published.set(DOMAIN, "TXT", [("purelymail_ownership_proof=", CODE.split("=", 1)[1]), long_spf])
    result = check(published)
    assert result.record("ownership").status == "pass"
    assert result.record("spf").status == "pass"
    assert result.record("spf").found == [long_spf]


# ---- MX ----------------------------------------------------------------------------------


def test_mx_with_another_priority_is_a_warning(published: FakeDNS) -> None:
    published.set(DOMAIN, "MX", ["10 mailserver.purelymail.com"])
    result = check(published)
    mx = result.record("mx")
    assert mx.status == "warn" and result.ok
    assert mx.message == "mailserver.purelymail.com has priority 10 instead of 50"


def test_extra_mx_hosts_are_a_warning(published: FakeDNS) -> None:
    published.set(DOMAIN, "MX", ["50 mailserver.purelymail.com", "10 mx.oldhost.net"])
    mx = check(published).record("mx")
    assert mx.status == "warn"
    assert mx.message.startswith("other mail servers also receive mail for this domain: mx.oldhost.net (10)")
    assert "they come first" in mx.message
    assert mx.found == ["10 mx.oldhost.net", "50 mailserver.purelymail.com"]


def test_mx_elsewhere_only_fails(published: FakeDNS) -> None:
    published.set(DOMAIN, "MX", ["1 aspmx.l.google.com"])
    mx = check(published).record("mx")
    assert mx.status == "fail"
    assert mx.message == "mail goes to aspmx.l.google.com, not to mailserver.purelymail.com"


def test_a_null_mx_fails(published: FakeDNS) -> None:
    published.set(DOMAIN, "MX", ["0 ."])
    mx = check(published).record("mx")
    assert mx.status == "fail" and "null MX" in mx.message


# ---- SPF ---------------------------------------------------------------------------------


def test_two_spf_records_are_a_permerror(published: FakeDNS) -> None:
    published.set(DOMAIN, "TXT", [CODE, "v=spf1 include:_spf.purelymail.com ~all",
                                  "v=spf1 include:_spf.google.com -all"])
    spf = check(published).record("spf")
    assert spf.status == "fail"
    assert "permerror (RFC 7208 §4.5): merge them into one" in spf.message
    # Records are merged in sorted order: DNS returns a record set in no fixed order.
    assert spf.fix == 'example.com. TXT "v=spf1 include:_spf.google.com include:_spf.purelymail.com -all"'
    assert spf.found == ["v=spf1 include:_spf.google.com -all", "v=spf1 include:_spf.purelymail.com ~all"]


def test_spf_without_purelymails_include_fails_with_a_merged_fix(published: FakeDNS) -> None:
    published.set(DOMAIN, "TXT", [CODE, "v=spf1 ip4:192.0.2.0/24 include:_spf.google.com -all"])
    spf = check(published).record("spf")
    assert spf.status == "fail"
    assert "does not include _spf.purelymail.com" in spf.message
    assert spf.fix == (
        'example.com. TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.google.com include:_spf.purelymail.com -all"'
    )


def test_spf_that_merges_other_includes_passes(published: FakeDNS) -> None:
    published.set(DOMAIN, "TXT", [CODE, "v=spf1 include:_spf.google.com include:_spf.purelymail.com ~all"])
    assert check(published).record("spf").status == "pass"


def test_merged_spf_keeps_one_all_and_a_redirect_only_without_it() -> None:
    merged = merged_spf(["v=spf1 mx -all", "v=spf1 include:a.example ~all"])
    assert merged == "v=spf1 mx include:a.example include:_spf.purelymail.com -all"
    merged = merged_spf(["v=spf1 redirect=_spf.example.net"])
    assert merged == "v=spf1 include:_spf.purelymail.com redirect=_spf.example.net"
    assert merged_spf(["v=spf1 +include:_spf.purelymail.com ?all"]) == "v=spf1 +include:_spf.purelymail.com ?all"


# ---- DKIM and DMARC ----------------------------------------------------------------------


def test_a_dkim_cname_pointing_elsewhere_fails_naming_the_target(published: FakeDNS) -> None:
    published.set("purelymail1._domainkey.example.com", "CNAME", ["selector1.dkim.otherhost.net"])
    dkim1 = check(published).record("dkim1")
    assert dkim1.status == "fail"
    assert dkim1.message == (
        "purelymail1._domainkey.example.com points to selector1.dkim.otherhost.net instead of "
        "key1.dkimroot.purelymail.com; change the CNAME's target"
    )
    assert dkim1.found == ["CNAME selector1.dkim.otherhost.net"]


def test_a_dkim_key_published_as_txt_fails_explaining_the_cname(published: FakeDNS) -> None:
    key = ("v=DKIM1; k=rsa; ", "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")  # two strings, as hosts split keys
    published.set("purelymail3._domainkey.example.com", "TXT", [key])
    dkim3 = check(published).record("dkim3")
    assert dkim3.status == "fail"
    assert "a DKIM key is published as a TXT record" in dkim3.message
    assert "wants a CNAME to key3.dkimroot.purelymail.com" in dkim3.message
    assert dkim3.found[0].startswith("TXT v=DKIM1; k=rsa; p=MIIB")


def test_a_dkim_cname_chain_that_reaches_purelymail_is_a_warning(published: FakeDNS) -> None:
    published.set("purelymail2._domainkey.example.com", "CNAME", ["dkim2.mail.example.com"])
    published.set("dkim2.mail.example.com", "CNAME", ["key2.dkimroot.purelymail.com"])
    dkim2 = check(published).record("dkim2")
    assert dkim2.status == "warn"
    assert "leads on to key2.dkimroot.purelymail.com" in dkim2.message


def test_a_dmarc_policy_of_its_own_is_a_warning_not_broken_dmarc(published: FakeDNS) -> None:
    published.set("_dmarc.example.com", "TXT", ["v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"])
    result = check(published)
    dmarc = result.record("dmarc")
    assert dmarc.status == "warn" and result.ok
    assert "has its own DMARC policy" in dmarc.message
    assert "PurelyMail expects its CNAME to dmarcroot.purelymail.com" in dmarc.message
    assert "Your policy still applies" in dmarc.message
    for word in ("broken", "invalid", "missing"):
        assert word not in dmarc.message.lower()
    assert result.summary()["dmarc"] == "warn"


def test_two_dmarc_policies_fail(published: FakeDNS) -> None:
    published.set("_dmarc.example.com", "TXT", ["v=DMARC1; p=none", "v=DMARC1; p=reject"])
    dmarc = check(published).record("dmarc")
    assert dmarc.status == "fail" and "RFC 7489" in dmarc.message


def test_a_dmarc_cname_to_another_service_is_a_warning(published: FakeDNS) -> None:
    published.set("_dmarc.example.com", "CNAME", ["example-com._d.dmarc-service.net"])
    dmarc = check(published).record("dmarc")
    assert dmarc.status == "warn"
    assert "points to example-com._d.dmarc-service.net" in dmarc.message


# ---- DNS failures ------------------------------------------------------------------------


def test_a_domain_that_does_not_exist(srv: FakeDNS) -> None:
    srv.add_zone(DOMAIN)
    result = check(srv, "ghost.example.com")
    assert not result.ok
    for kind in ("ownership", "mx", "spf"):
        assert result.record(kind).message.startswith("ghost.example.com does not exist in DNS (NXDOMAIN)")
    assert result.record("dkim1").message.startswith("purelymail1._domainkey.ghost.example.com does not exist")
    with pytest.raises(DnsLookupError) as raised:
        lookup_txt("ghost.example.com", srv.spec, 2)
    assert raised.value.message == "ghost.example.com does not exist in DNS (NXDOMAIN)"
    assert raised.value.kind == "nxdomain"


def test_servfail_is_reported_as_such(published: FakeDNS) -> None:
    published.servfail(DOMAIN)
    result = check(published)
    mx = result.record("mx")
    assert mx.status == "fail"
    assert mx.message.startswith(
        f"the DNS server 127.0.0.1:{published.port} answered SERVFAIL (server failure) for example.com"
    )
    assert result.record("dkim1").status == "pass"
    assert result.elapsed < 1  # a failure is final: no waiting for the timeout
    with pytest.raises(DnsLookupError) as raised:
        lookup_txt(DOMAIN, published.spec, 2)
    assert raised.value.kind == "servfail"


def test_a_server_that_never_answers_hits_the_overall_timeout(published: FakeDNS) -> None:
    published.drop(DOMAIN)
    published.drop("_dmarc.example.com")
    published.delay = 0.05
    started = time.monotonic()
    result = check(published, timeout=1.0)
    took = time.monotonic() - started
    assert 0.9 <= took < 1.5, f"took {took:.2f} s for a 1 s timeout"
    for kind in ("ownership", "mx", "spf", "dmarc"):
        record = result.record(kind)
        assert record.status == "fail"
        assert record.message == f"no answer from 127.0.0.1:{published.port} within 1 s"
    assert result.record("dkim1").status == "pass"


def test_lookup_txt_reports_a_timeout_in_words(published: FakeDNS) -> None:
    published.drop(DOMAIN)
    started = time.monotonic()
    with pytest.raises(DnsLookupError) as raised:
        lookup_txt(DOMAIN, published.spec, 1.0)
    assert time.monotonic() - started < 1.5
    assert raised.value.message == f"the DNS server 127.0.0.1:{published.port} did not answer within 1 s"
    assert raised.value.kind == "timeout"


def test_lookup_txt_sees_the_ownership_code(published: FakeDNS) -> None:
    assert CODE in lookup_txt("Example.com.", published.spec, 2)
    published.set("_dmarc.example.com", "A", ["192.0.2.7"])
    published.remove("_dmarc.example.com", "CNAME")
    assert lookup_txt("_dmarc.example.com", published.spec, 2) == []  # exists, no TXT


def test_a_refusing_server_is_skipped_for_the_next_one(published: FakeDNS) -> None:
    with FakeDNS() as empty:  # serves no zone: REFUSED for everything
        result = check_domain(DOMAIN, CODE, resolver_spec=f"{empty.spec},{published.spec}", timeout=3)
    assert result.ok
    assert result.elapsed < 1


def test_an_unresolvable_resolver_host_fails_every_record() -> None:
    result = check_domain(DOMAIN, CODE, resolver_spec="no-such-resolver.invalid:53", timeout=2)
    assert {r.status for r in result.records} == {"fail"}
    assert "could not find the address of the DNS server no-such-resolver.invalid" in result.records[0].message


def test_big_answers_come_over_tcp_after_truncation(published: FakeDNS) -> None:
    filler = [f"site-verification-{i}=" + "x" * 180 for i in range(12)]
    published.set(DOMAIN, "TXT", [CODE, "v=spf1 include:_spf.purelymail.com ~all", *filler])
    result = check(published)
    assert result.record("ownership").status == "pass" and result.record("spf").status == "pass"
    transports = {q.transport for q in published.queries_for(DOMAIN) if q.rrtype == "TXT"}
    assert transports == {"udp", "tcp"}


# ---- CNAMEs, case and dots ---------------------------------------------------------------


@pytest.mark.parametrize("server_chases", [True, False])
def test_txt_and_mx_follow_a_cname_chain(srv: FakeDNS, server_chases: bool) -> None:
    """shop.example.com is an alias for a name in another zone; its TXT and MX live there."""
    srv.chase_cnames = server_chases
    srv.add_zone("example.com")
    srv.add_zone("hosting.example.net")
    srv.set("shop.example.com", "CNAME", ["edge.hosting.example.net"])
    srv.set("edge.hosting.example.net", "CNAME", ["tenant42.hosting.example.net"])
    srv.set("tenant42.hosting.example.net", "TXT", [CODE, "v=spf1 include:_spf.purelymail.com ~all"])
    srv.set("tenant42.hosting.example.net", "MX", ["50 mailserver.purelymail.com"])
    for n in (1, 2, 3):
        srv.set(f"purelymail{n}._domainkey.shop.example.com", "CNAME", [f"key{n}.dkimroot.purelymail.com"])
    srv.set("_dmarc.shop.example.com", "CNAME", ["dmarcroot.purelymail.com"])
    result = check(srv, "shop.example.com")
    assert result.ok, [r.message for r in result.records if r.status != "pass"]
    asked_target = any(q.name == "tenant42.hosting.example.net" for q in srv.query_log)
    assert asked_target is not server_chases  # we ask again only when the server did not chase
    assert lookup_txt("shop.example.com", srv.spec, 2) == sorted([CODE, "v=spf1 include:_spf.purelymail.com ~all"])


def test_a_cname_chain_into_nothing_is_nxdomain(srv: FakeDNS) -> None:
    srv.add_zone("example.com")
    srv.set("shop.example.com", "CNAME", ["gone.example.com"])
    with pytest.raises(DnsLookupError) as raised:
        lookup_txt("shop.example.com", srv.spec, 2)
    assert raised.value.message == (
        "gone.example.com does not exist in DNS (NXDOMAIN); shop.example.com is an alias (CNAME) for it"
    )


def test_a_cname_loop_is_reported(srv: FakeDNS) -> None:
    srv.add_zone("example.com")
    srv.chase_cnames = False
    srv.set("a.example.com", "CNAME", ["b.example.com"])
    srv.set("b.example.com", "CNAME", ["a.example.com"])
    with pytest.raises(DnsLookupError) as raised:
        lookup_txt("a.example.com", srv.spec, 2)
    assert raised.value.kind == "loop"


def test_case_and_trailing_dots_do_not_matter(srv: FakeDNS) -> None:
    srv.add_zone("example.com")
    srv.set("EXAMPLE.com.", "TXT", [CODE, "v=spf1 INCLUDE:_SPF.PurelyMail.com ~all"])
    srv.set("Example.Com", "MX", ["50 MailServer.PurelyMail.COM."])
    for n in (1, 2, 3):
        srv.set(f"PurelyMail{n}._DomainKey.example.com.", "CNAME", [f"KEY{n}.DKIMroot.purelymail.com."])
    srv.set("_DMARC.example.com", "CNAME", ["DmarcRoot.PurelyMail.com"])
    result = check_domain("EXAMPLE.COM.", CODE, resolver_spec=srv.spec)
    assert result.ok and result.domain == "example.com"
    assert all(r.status == "pass" for r in result.records), [r.message for r in result.records]
    assert result.record("dkim1").found == ["CNAME key1.dkimroot.purelymail.com"]


def test_an_idn_domain_is_checked_in_punycode(srv: FakeDNS) -> None:
    srv.publish_purelymail("xn--bcher-kva.example", CODE)
    result = check_domain("Bücher.example", CODE, resolver_spec=srv.spec)
    assert result.ok
    assert (result.domain, result.unicode_domain) == ("xn--bcher-kva.example", "bücher.example")


# ---- the zone's own nameservers ----------------------------------------------------------
# The real mode asks the system resolver for NS records and then the nameservers on port
# 53, which loopback cannot offer. Here the fake plays both parts: it is the bootstrap
# resolver, and its NS records' glue (127.0.0.1) is asked on its own port.


def test_nameservers_are_found_by_walking_up_from_the_name(srv: FakeDNS) -> None:
    srv.publish_purelymail(DOMAIN, CODE)
    found = find_authoritative_servers("purelymail1._domainkey.example.com", bootstrap_spec=srv.spec,
                                       nameserver_port=srv.port, timeout=2)
    assert found == [NameServer("127.0.0.1", srv.port, hostname="ns1.example.com", authoritative=True)]
    ns_questions = [q.name for q in srv.query_log if q.rrtype == "NS"]
    assert ns_questions == ["purelymail1._domainkey.example.com", "_domainkey.example.com", "example.com"]


def test_nameservers_without_glue_are_looked_up(srv: FakeDNS) -> None:
    srv.add_zone("dns-host.test")  # ns1.dns-host.test at 127.0.0.1
    srv.add_zone(DOMAIN, nameservers=["ns1.dns-host.test."])
    srv.publish_purelymail(DOMAIN, CODE)
    found = find_authoritative_servers(DOMAIN, bootstrap_spec=srv.spec, nameserver_port=srv.port, timeout=2)
    assert [(s.hostname, s.address) for s in found] == [("ns1.dns-host.test", "127.0.0.1")]
    assert any(q.name == "ns1.dns-host.test" and q.rrtype == "A" for q in srv.query_log)


def test_the_check_asks_the_zones_own_nameservers(srv: FakeDNS) -> None:
    srv.publish_purelymail(DOMAIN, CODE)
    bootstrap = [NameServer("127.0.0.1", srv.port)]
    plan = ServerPlan(bootstrap=bootstrap, fallback=[], nameserver_port=srv.port)
    result = check_domain(DOMAIN, CODE, servers=plan, timeout=3)
    assert result.ok and result.mode == "authoritative"
    assert result.servers == [f"ns1.example.com (127.0.0.1:{srv.port})"]


def test_without_nameservers_the_check_falls_back_to_the_resolver(srv: FakeDNS) -> None:
    srv.publish_purelymail(DOMAIN, CODE)
    srv.remove(DOMAIN, "NS")
    resolver = [NameServer("127.0.0.1", srv.port)]
    result = check_domain(DOMAIN, CODE, servers=ServerPlan(bootstrap=resolver, nameserver_port=srv.port), timeout=3)
    assert result.ok and result.mode == "system"
    assert result.servers == [f"127.0.0.1:{srv.port}"]


def test_resolver_spec_parsing() -> None:
    assert parse_resolver_spec("") == []
    assert parse_resolver_spec("1.1.1.1, 127.0.0.1:5353") == [("1.1.1.1", 53), ("127.0.0.1", 5353)]
    assert parse_resolver_spec("[2001:db8::1]:5353,2001:db8::2") == [("2001:db8::1", 5353), ("2001:db8::2", 53)]
    for bad in ("1.1.1.1:0", "1.1.1.1:dns", ":53", "[::1]x"):
        with pytest.raises(ValueError):
            parse_resolver_spec(bad)


def test_check_domain_refuses_a_bad_name_before_any_dns(srv: FakeDNS) -> None:
    with pytest.raises(InvalidDomain):
        check_domain("http://example.com/", CODE, resolver_spec=srv.spec)
    assert srv.query_log == []
