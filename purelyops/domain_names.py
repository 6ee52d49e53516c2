"""Domain names as admins type them: parsing, IDN, validation. No DNS is asked here.

`normalize_domain` turns what an admin typed into the name DNS and PurelyMail use
(IDN → punycode), or says precisely why it is not a domain name:

    normalize_domain("Bücher.Example.")  # NormalizedDomain("xn--bcher-kva.example", "bücher.example")
    normalize_domain("https://x.com/")   # InvalidDomain: give just the domain name, like x.com, …

`ascii_name` is the looser form for any DNS name (underscores allowed), used to ask DNS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

try:  # IDNA 2008 with UTS #46 mapping; Python's own codec is the older IDNA 2003.
    import idna as _idna
except ImportError:  # pragma: no cover - idna comes with httpx
    _idna = None  # type: ignore[assignment]


class InvalidDomain(ValueError):
    """What an admin typed is not a domain name; the message says why and what to give."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def sentence(self) -> str:
        """The message as a sentence of its own, for a reply rather than a form's field."""
        return f"That is not a domain name: {self.message}."


@dataclass(frozen=True)
class NormalizedDomain:
    """A domain name in both forms: `ascii` for DNS and PurelyMail, `unicode` for people."""

    ascii: str  # "xn--bcher-kva.example": lower case, no trailing dot
    unicode: str  # "bücher.example"

    def __str__(self) -> str:
        return self.ascii


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_IDN_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def normalize_domain(raw: str) -> NormalizedDomain:
    """The domain name in `raw`, lower-cased, without a trailing dot, IDN in punycode.

    Raises `InvalidDomain` with a message for the admin: empty input, a URL or an email
    address instead of a domain, empty labels, bad characters, leading or trailing
    hyphens, labels over 63 or names over 253 characters, single-label names."""
    text = raw.strip().translate(_IDN_DOTS)
    if not text:
        raise InvalidDomain("give a domain name, like example.com")
    if _SCHEME.match(text) or "/" in text:
        host = _host_in_url(text)
        raise InvalidDomain(f"give just the domain name, like {host or 'example.com'}, without http:// or a path")
    if "@" in text:
        domain = text.rsplit("@", 1)[1].strip().lower().rstrip(".")
        if domain:
            raise InvalidDomain(f"that is an email address; the domain is {domain}")
        raise InvalidDomain(
            "that looks like an email address with nothing after the @; give just the domain name, like example.com"
        )
    text = text.lower()
    text = text[:-1] if text.endswith(".") else text  # the root's dot
    labels = text.split(".")
    if "" in labels:
        raise InvalidDomain(f"{raw.strip()} has an empty part between dots; write it like example.com")
    if len(labels) == 1:
        raise InvalidDomain(f"{text} has no dot; give the whole domain name, like {text}.com")
    if all(label.isdigit() for label in labels):
        raise InvalidDomain(f"{text} is an IP address; give a domain name, like example.com")
    ascii_labels = [_ascii_label(label, text) for label in labels]
    name = ".".join(ascii_labels)
    if len(name) > 253:
        raise InvalidDomain(f"that name is {len(name)} characters long; a domain name can have at most 253")
    if ascii_labels[-1].isdigit():
        raise InvalidDomain(f"{text} ends in a number; a domain name ends in a top-level domain like .com")
    return NormalizedDomain(name, ".".join(_unicode_label(label) for label in ascii_labels))


def _host_in_url(text: str) -> str:
    """The host part of something URL-shaped, for the "give just the domain" message."""
    rest = _SCHEME.sub("", text)
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host.lower().rstrip(".")


def _ascii_label(label: str, whole: str) -> str:
    """One label in its ASCII (A-label) form, or `InvalidDomain` saying what is wrong."""
    if label.startswith("-") or label.endswith("-"):
        raise InvalidDomain(f"“{label}” starts or ends with a hyphen; a part between dots cannot")
    if label.isascii():
        bad = sorted({ch for ch in label if not (ch.isalnum() or ch == "-")})
        if bad:
            shown = ", ".join("a space" if ch == " " else ch for ch in bad)
            raise InvalidDomain(
                f"{whole} contains characters a domain name cannot have: {shown} "
                "(only letters, digits, hyphens and dots)"
            )
        ascii_label = label
    else:
        punycode = "xn--" + label.encode("punycode").decode("ascii")
        try:
            ascii_label = _to_alabel(label)
        except (UnicodeError, ValueError) as error:
            if len(punycode) <= 63:  # too long is said below, in the same words as for ASCII
                raise InvalidDomain(f"“{label}” cannot be part of a domain name ({error})") from None
            ascii_label = punycode
    if len(ascii_label) > 63:
        shown = label if len(label) <= 20 else label[:17] + "…"
        raise InvalidDomain(
            f"the part “{shown}” is {len(ascii_label)} characters long; each part between dots can have at most 63"
        )
    return ascii_label


def _to_alabel(label: str) -> str:
    if _idna is not None:
        return _idna.encode(label, uts46=True).decode("ascii")
    return label.encode("idna").decode("ascii")


def _unicode_label(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    try:
        if _idna is not None:
            return _idna.decode(label)
        return label.encode("ascii").decode("idna")
    except (UnicodeError, ValueError) as error:
        raise InvalidDomain(f"“{label}” is not a valid internationalised name ({error})") from None


def ascii_name(name: str) -> str:
    """Any DNS name (underscores allowed, unlike `normalize_domain`) in ASCII: IDN labels
    encoded, lower case, no final dot. ValueError when it is empty or a label cannot be encoded."""
    text = name.strip().translate(_IDN_DOTS).rstrip(".").lower()
    if not text:
        raise ValueError("empty DNS name")
    return ".".join(label if label.isascii() else _to_alabel(label) for label in text.split("."))
