"""Domain names as admins type them: refused with a reason, or normalized (IDN → punycode)."""

from __future__ import annotations

import pytest

from purelyops.domain_names import InvalidDomain, ascii_name, normalize_domain


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "give a domain name, like example.com"),
        ("   ", "give a domain name, like example.com"),
        (".".join(c * 63 for c in "abcd"), "that name is 255 characters long; a domain name can have at most 253"),
        (".".join(c * 63 for c in "abc") + "." + "d" * 62, "that name is 254 characters long"),
        ("a" * 64 + ".com", "is 64 characters long; each part between dots can have at most 63"),
        ("http://x.com/", "give just the domain name, like x.com, without http:// or a path"),
        ("https://Shop.Example.com/p?q=1", "give just the domain name, like shop.example.com, without http://"),
        ("x.com/about", "give just the domain name, like x.com, without http:// or a path"),
        ("a@b.com", "that is an email address; the domain is b.com"),
        ("-x.com", "“-x” starts or ends with a hyphen; a part between dots cannot"),
        ("x-.com", "“x-” starts or ends with a hyphen"),
        ("x..com", "x..com has an empty part between dots"),
        (".x.com", "has an empty part between dots"),
        ("ex ample.com", "contains characters a domain name cannot have: a space"),
        ("my_site.com", "contains characters a domain name cannot have: _"),
        ("localhost", "localhost has no dot; give the whole domain name, like localhost.com"),
        ("192.0.2.1", "192.0.2.1 is an IP address"),
        ("xn--abc-.com", "“xn--abc-” starts or ends with a hyphen"),
        ("bücher☃.example", "cannot be part of a domain name"),
    ],
)
def test_names_that_are_not_domains_are_refused_with_a_reason(raw: str, message: str) -> None:
    with pytest.raises(InvalidDomain) as raised:
        normalize_domain(raw)
    assert message in raised.value.message


@pytest.mark.parametrize(
    ("raw", "ascii", "unicode"),
    [
        ("bücher.example", "xn--bcher-kva.example", "bücher.example"),
        ("BÜCHER.Example.", "xn--bcher-kva.example", "bücher.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", "bücher.example"),
        ("Example.COM", "example.com", "example.com"),
        ("example.com.", "example.com", "example.com"),
        ("  mail.example.co.uk ", "mail.example.co.uk", "mail.example.co.uk"),
        ("faß.de", "xn--fa-hia.de", "faß.de"),  # IDNA 2008 keeps ß (IDNA 2003 made it "fass")
        ("例え。テスト", "xn--r8jz45g.xn--zckzah", "例え.テスト"),
        ("a" * 63 + ".com", "a" * 63 + ".com", "a" * 63 + ".com"),
        (".".join(c * 63 for c in "abc") + "." + "d" * 61, None, None),  # 253 characters: the most allowed
    ],
)
def test_names_are_normalized(raw: str, ascii: str | None, unicode: str | None) -> None:
    name = normalize_domain(raw)
    expected = raw.strip().lower()
    assert (name.ascii, name.unicode) == (ascii or expected, unicode or expected)
    assert str(name) == name.ascii


@pytest.mark.parametrize(
    ("raw", "ascii"),
    [
        ("_dmarc.Example.COM.", "_dmarc.example.com"),
        ("default._domainkey.bücher.example", "default._domainkey.xn--bcher-kva.example"),
        ("例え。テスト", "xn--r8jz45g.xn--zckzah"),
    ],
)
def test_any_dns_name_in_ascii(raw: str, ascii: str) -> None:
    assert ascii_name(raw) == ascii


def test_an_empty_dns_name_is_refused() -> None:
    with pytest.raises(ValueError):
        ascii_name(" . ")
