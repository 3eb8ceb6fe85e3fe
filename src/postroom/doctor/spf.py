"""SPF (RFC 7208), as far as the doctor needs it: parse a domain's record, and evaluate ``check_host()`` for an
address - "would mail from this IP pass?" - including ``include:``, ``redirect=``, ``a``, ``mx`` and the limit of
10 DNS-querying terms. Macros (``%{i}``) and ``ptr`` are reported as not checkable rather than guessed.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum

from postroom.doctor.lookup import Answer, DnsLookup

__all__ = ["SpfError", "SpfRecord", "SpfResult", "SpfTerm", "check_host", "find_spf", "mentions", "parse_spf"]

MAX_DNS_TERMS = 10  # RFC 7208 §4.6.4: more DNS-querying terms than this is a permerror
MAX_MX_HOSTS = 10  # RFC 7208 §4.6.4: per mx mechanism
_VERSION = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_DNS_TERMS = frozenset({"include", "a", "mx", "ptr", "exists", "redirect"})


class SpfResult(StrEnum):
    PASS = "pass"  # noqa: S105 - an SPF result, not a password
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


class SpfError(Exception):
    """The record cannot be evaluated: ``result`` is permerror or temperror, ``reason`` says why."""

    def __init__(self, result: SpfResult, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass(frozen=True)
class SpfTerm:
    qualifier: str  # "+", "-", "~", "?"; "" for a modifier
    name: str  # mechanism or modifier name, lower case
    value: str  # after ":" or "=" ("" if none), CIDR suffixes removed
    cidr4: int | None = None
    cidr6: int | None = None

    @property
    def is_modifier(self) -> bool:
        return self.qualifier == ""

    def __str__(self) -> str:
        if self.is_modifier:
            return f"{self.name}={self.value}"
        prefix = "" if self.qualifier == "+" else self.qualifier
        text = f"{prefix}{self.name}" + (f":{self.value}" if self.value else "")
        text += f"/{self.cidr4}" if self.cidr4 is not None and self.name in ("a", "mx") else ""
        return text + (f"//{self.cidr6}" if self.cidr6 is not None else "")


@dataclass(frozen=True)
class SpfRecord:
    text: str
    terms: tuple[SpfTerm, ...]

    @property
    def all_term(self) -> SpfTerm | None:
        return next((t for t in self.terms if t.name == "all"), None)

    @property
    def redirect(self) -> str | None:
        return next((t.value for t in self.terms if t.is_modifier and t.name == "redirect"), None)

    def dns_terms(self) -> int:
        return sum(1 for t in self.terms if t.name in _DNS_TERMS)


def parse_spf(text: str) -> SpfRecord:
    """Parse ``v=spf1 ...``; raises SpfError(permerror) on a syntax error, naming the term."""
    if not _VERSION.match(text.strip()):
        raise SpfError(SpfResult.PERMERROR, f"not an SPF record: {text!r}")
    terms = []
    for raw in text.split()[1:]:
        terms.append(_term(raw))
    return SpfRecord(text.strip(), tuple(terms))


def _term(raw: str) -> SpfTerm:
    modifier = re.fullmatch(r"([A-Za-z][A-Za-z0-9_.-]*)=(.*)", raw)
    if modifier:
        return SpfTerm("", modifier.group(1).lower(), modifier.group(2))
    qualifier = raw[0] if raw[0] in _QUALIFIERS else "+"
    body = raw[1:] if raw[0] in _QUALIFIERS else raw
    name, _, value = body.partition(":")
    name = name.lower()
    cidr4 = cidr6 = None
    if "/" in name:  # "a/24", "mx/24//64"
        name, _, suffix = name.partition("/")
        value, suffix = "", "/" + suffix
    else:
        suffix = ""
    if name in ("a", "mx") and "/" in value:
        value, _, rest = value.partition("/")
        suffix = "/" + rest
    if suffix:
        match = re.fullmatch(r"(?:/(\d{1,2}))?(?://(\d{1,3}))?", suffix)
        if not match:
            raise SpfError(SpfResult.PERMERROR, f"bad CIDR length in {raw!r}")
        cidr4 = int(match.group(1)) if match.group(1) else None
        cidr6 = int(match.group(2)) if match.group(2) else None
    if name not in _MECHANISMS:
        raise SpfError(SpfResult.PERMERROR, f"unknown mechanism {raw!r}")
    if name in ("include", "exists", "ip4", "ip6") and not value:
        raise SpfError(SpfResult.PERMERROR, f"{name} needs a value: {raw!r}")
    return SpfTerm(qualifier, name, value, cidr4, cidr6)


def find_spf(lookup: DnsLookup, domain: str) -> tuple[SpfRecord | None, Answer]:
    """The domain's one SPF record (None if it has none). Raises SpfError for several records, a broken one, or a
    DNS failure."""
    answer = lookup.query(domain, "TXT")
    if answer.failed:
        raise SpfError(SpfResult.TEMPERROR, f"TXT lookup for {domain} failed: {answer.error}")
    records = [text for text in answer.records if _VERSION.match(text.strip())]
    if not records:
        return None, answer
    if len(records) > 1:
        raise SpfError(SpfResult.PERMERROR, f"{domain} publishes {len(records)} SPF records; RFC 7208 allows one")
    return parse_spf(records[0]), answer


@dataclass
class _Evaluation:
    lookup: DnsLookup
    dns_terms: int = 0
    unsupported: list[str] = field(default_factory=list)

    def count(self, term: str) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise SpfError(
                SpfResult.PERMERROR,
                f"more than {MAX_DNS_TERMS} DNS-querying terms (include, a, mx, exists, redirect) at {term}: "
                "receivers stop evaluating and the result is a permanent error",
            )


def check_host(lookup: DnsLookup, ip: str, domain: str) -> tuple[SpfResult, list[str]]:
    """RFC 7208 ``check_host(ip, domain)``: the result, and notes on what could not be checked."""
    evaluation = _Evaluation(lookup)
    try:
        result = _check(evaluation, ipaddress.ip_address(ip), domain, depth=0)
    except SpfError as error:
        return error.result, [error.reason, *evaluation.unsupported]
    return result, evaluation.unsupported


def _check(ev: _Evaluation, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, domain: str, depth: int) -> SpfResult:
    record, _ = find_spf(ev.lookup, domain)
    if record is None:
        return SpfResult.NONE
    for term in record.terms:
        if term.is_modifier:
            continue
        if _matches(ev, ip, domain, term, depth):
            return SpfResult(_QUALIFIERS[term.qualifier])
    if record.redirect:
        ev.count(f"redirect={record.redirect}")
        result = _check(ev, ip, record.redirect, depth + 1)
        if result is SpfResult.NONE:
            raise SpfError(SpfResult.PERMERROR, f"redirect={record.redirect} names a domain without SPF record")
        return result
    return SpfResult.NEUTRAL


def _matches(
    ev: _Evaluation, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, domain: str, term: SpfTerm, depth: int
) -> bool:
    if "%" in term.value:
        ev.unsupported.append(f"{term} uses SPF macros, which the doctor does not expand")
        return False
    target = term.value or domain
    match term.name:
        case "all":
            return True
        case "ip4" | "ip6":
            try:
                return ip in ipaddress.ip_network(term.value, strict=False)
            except ValueError:
                raise SpfError(SpfResult.PERMERROR, f"{term} is not a valid network") from None
        case "a":
            ev.count(str(term))
            return _in_addresses(ev, ip, target, term)
        case "mx":
            ev.count(str(term))
            answer = ev.lookup.query(target, "MX")
            _raise_temporary(answer)
            hosts = [record.split()[1] for record in answer.records if record.split()[1] != "."][:MAX_MX_HOSTS]
            return any(_in_addresses(ev, ip, host, term) for host in hosts)
        case "include":
            ev.count(str(term))
            result = _check(ev, ip, target, depth + 1)
            if result in (SpfResult.NONE, SpfResult.PERMERROR):
                raise SpfError(SpfResult.PERMERROR, f"{term}: {target} has no usable SPF record")
            return result is SpfResult.PASS
        case "exists":
            ev.count(str(term))
            answer = ev.lookup.query(target, "A")
            _raise_temporary(answer)
            return bool(answer.records)
        case _:  # ptr: deprecated (RFC 7208 §5.5), and slow for receivers
            ev.count(str(term))
            ev.unsupported.append(f"{term} is deprecated (RFC 7208 §5.5) and not evaluated here; replace it")
            return False


def _in_addresses(ev: _Evaluation, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str, term: SpfTerm) -> bool:
    rdtype, prefix = ("A", term.cidr4 or 32) if ip.version == 4 else ("AAAA", term.cidr6 or 128)
    answer = ev.lookup.query(host, rdtype)
    _raise_temporary(answer)
    return any(ip in ipaddress.ip_network(f"{address}/{prefix}", strict=False) for address in answer.records)


def _raise_temporary(answer: Answer) -> None:
    if answer.failed:
        raise SpfError(SpfResult.TEMPERROR, f"{answer.rdtype} lookup for {answer.name} failed: {answer.error}")


def mentions(lookup: DnsLookup, domain: str, included: str, *, depth: int = 0) -> bool:
    """Whether ``domain``'s SPF record, or a record it includes or redirects to, has ``include:<included>``.

    Used for SES, whose own SPF record (amazonses.com) the doctor need not resolve to know it is authorised.
    """
    if depth > MAX_DNS_TERMS:
        return False
    try:
        record, _ = find_spf(lookup, domain)
    except SpfError:
        return False
    if record is None:
        return False
    for term in record.terms:
        if term.name == "include" and term.value.lower().rstrip(".") == included:
            return True
    nested = [t.value for t in record.terms if t.name == "include" and "%" not in t.value]
    if record.redirect:
        nested.append(record.redirect)
    return any(mentions(lookup, name, included, depth=depth + 1) for name in nested)
