"""Where mail for a domain goes: its MX hosts in the order to try them, each with its addresses (RFC 5321 §5.1).

The only module of the delivery package that speaks DNS. Failures come out as the errors of
``postroom.deliver.delivery_errors``, already split into permanent (bounce) and transient (defer).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from postroom.deliver.delivery_errors import (
    DnsTemporaryError,
    NoMxAddressError,
    NoSuchDomainError,
    NullMxError,
    UnroutableDomainError,
)

__all__ = ["DNS_PORT", "MxHost", "MxResolver", "Nameserver", "parse_nameservers", "to_a_label"]

Nameserver = tuple[str, int]

DNS_PORT = 53
DNS_TIMEOUT_DEFAULT = 5.0  # seconds for one whole lookup, retries included
DNS_CACHE_SIZE = 1024  # answers kept per resolver; one resolver serves one worker batch

# Per RFC 5321 §5.1 the client tries IPv4 and IPv6 addresses alike; IPv4 comes first here because Lambda's default
# networking has no IPv6 egress, and an unroutable IPv6 address would cost one failed connect per MX host.
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


def parse_nameservers(spec: str) -> list[Nameserver]:
    """Parse ``"127.0.0.1:5353,[::1]:53,10.0.0.2"`` into (address, port) pairs; the port defaults to 53."""
    if not spec.strip():
        return []
    return [_parse_nameserver(item.strip(), spec) for item in spec.split(",")]


def _parse_nameserver(item: str, spec: str) -> Nameserver:
    if item.startswith("["):  # [IPv6]:port or [IPv6]
        address, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad nameserver {item!r} in {spec!r}: expected [IPv6] or [IPv6]:port")
        port_text = rest[1:] if rest else None
    elif item.count(":") == 1:  # IPv4:port
        address, _, port_text = item.partition(":")
    else:  # a bare IPv4 or IPv6 address
        address, port_text = item, None
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"bad nameserver {item!r} in {spec!r}: {address!r} is not an IP address") from None
    if port_text is None:
        return address, DNS_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad nameserver {item!r} in {spec!r}: {port_text!r} is not a port number")
    return address, int(port_text)


def to_a_label(domain: str) -> str:
    """The ASCII (IDNA A-label) form of a domain, lower-cased, without the final dot; ValueError if it is no domain."""
    return _text(_domain_name(domain))


def _domain_name(domain: str) -> dns.name.Name:
    text = domain.strip().rstrip(".")
    if not text:
        raise ValueError(f"{domain!r} is not a domain name")
    try:
        # UTS 46 mapping + IDNA 2008, what browsers and mail clients do with a typed-in domain.
        return dns.name.from_unicode(text, idna_codec=dns.name.IDNA_2008_Practical)
    except (dns.exception.DNSException, UnicodeError) as error:
        raise ValueError(f"{domain!r} is not a domain name: {error}") from None


@dataclass(frozen=True)
class MxHost:
    preference: int
    hostname: str
    addresses: tuple[str, ...]


class MxResolver:
    """Resolves a domain to the MX hosts to try, in order. ``nameservers=None`` means the system resolver."""

    def __init__(self, nameservers: list[Nameserver] | None = None, timeout: float = DNS_TIMEOUT_DEFAULT) -> None:
        if nameservers is None:
            resolver = dns.resolver.Resolver(configure=True)
        else:
            if not nameservers:
                raise ValueError("nameservers must not be empty (None means the system resolver)")
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port) for address, port in nameservers]
        resolver.lifetime = timeout
        resolver.timeout = min(resolver.timeout, timeout)
        resolver.cache = dns.resolver.LRUCache(DNS_CACHE_SIZE)
        self._resolver = resolver

    def resolve(self, domain: str) -> list[MxHost]:
        try:
            name = _domain_name(domain)
        except ValueError as error:
            raise NoSuchDomainError(str(error)) from None
        try:
            answer = self._resolver.resolve(name, dns.rdatatype.MX)
        except dns.resolver.NXDOMAIN:
            raise NoSuchDomainError(f"domain {domain} does not exist") from None
        except dns.resolver.NoAnswer:
            return [self._implicit_mx(domain, name)]
        except dns.exception.DNSException as error:
            raise DnsTemporaryError(f"MX lookup for {domain} failed: {_describe(error)}") from None

        records = list(answer)
        # RFC 7505 §3: a single MX with preference 0 and the root as exchange means "this domain accepts no mail".
        if len(records) == 1 and records[0].exchange == dns.name.root:
            raise NullMxError(f"{domain} publishes a null MX: it accepts no mail")
        # RFC 5321 §5.1: lowest preference first; hosts of equal preference in random order (shuffle, then a stable
        # sort). A "." among other MX records is no host (RFC 7505 §3 forbids the mix): skip it.
        secrets.SystemRandom().shuffle(records)
        records.sort(key=lambda record: record.preference)
        hosts: list[MxHost] = []
        seen: set[dns.name.Name] = set()
        lookup_failures: list[str] = []
        for record in records:
            if record.exchange == dns.name.root or record.exchange in seen:
                continue
            seen.add(record.exchange)
            addresses, failure = self._addresses(record.exchange)
            if addresses:
                hosts.append(MxHost(record.preference, _text(record.exchange), addresses))
            elif failure:
                lookup_failures.append(failure)
        if hosts:
            return hosts
        if lookup_failures:
            raise DnsTemporaryError(f"no MX host of {domain} could be resolved: {'; '.join(lookup_failures)}")
        # RFC 5321 §5.1: MX records present but none usable "MUST be reported as an error"; transient, since a zone
        # being edited looks like this for a while.
        raise NoMxAddressError(f"no MX host of {domain} has an A or AAAA record")

    def txt(self, name: str) -> list[bytes]:
        """Each TXT record at ``name``, its character-strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2 read them
        so); [] when the name has none. NoSuchDomainError for NXDOMAIN, DnsTemporaryError when the DNS fails."""
        try:
            answer = self._resolver.resolve(_domain_name(name), dns.rdatatype.TXT)
        except ValueError as error:
            raise NoSuchDomainError(str(error)) from None
        except dns.resolver.NXDOMAIN:
            raise NoSuchDomainError(f"{name} does not exist") from None
        except dns.resolver.NoAnswer:
            return []
        except dns.exception.DNSException as error:
            raise DnsTemporaryError(f"TXT lookup for {name} failed: {_describe(error)}") from None
        return [b"".join(record.strings) for record in answer]

    def host_addresses(self, hostname: str) -> tuple[str, ...]:
        """The A and AAAA addresses of a host (IPv4 first); DnsTemporaryError if a lookup failed and none was found,
        UnroutableDomainError if it has none."""
        try:
            name = _domain_name(hostname)
        except ValueError as error:
            raise NoSuchDomainError(str(error)) from None
        addresses, failure = self._addresses(name)
        if addresses:
            return addresses
        if failure:
            raise DnsTemporaryError(failure)
        raise UnroutableDomainError(f"{hostname} has no A or AAAA record")

    def _implicit_mx(self, domain: str, name: dns.name.Name) -> MxHost:
        # RFC 5321 §5.1: no MX records at all: the domain itself is the implicit MX, with preference 0.
        addresses, failure = self._addresses(name)
        if addresses:
            return MxHost(0, _text(name), addresses)
        if failure:
            raise DnsTemporaryError(f"address lookup for {domain} (no MX records) failed: {failure}")
        raise UnroutableDomainError(f"{domain} has no MX records and no A or AAAA record")

    def _addresses(self, host: dns.name.Name) -> tuple[tuple[str, ...], str | None]:
        """The host's addresses, and a description of the last lookup that failed for a temporary reason."""
        addresses: list[str] = []
        failure: str | None = None
        for rdtype in _ADDRESS_TYPES:
            try:
                answer = self._resolver.resolve(host, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException as error:
                failure = f"{dns.rdatatype.to_text(rdtype)} lookup for {_text(host)} failed: {_describe(error)}"
                continue
            addresses.extend(record.address for record in answer)
        return tuple(addresses), failure


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()  # ASCII (A-labels): lower() is the DNS's case folding


def _describe(error: dns.exception.DNSException) -> str:
    if isinstance(error, dns.resolver.NoNameservers):
        return "no nameserver gave an answer (SERVFAIL or refused)"
    if isinstance(error, dns.exception.Timeout):
        return "timed out"
    return str(error) or type(error).__name__
