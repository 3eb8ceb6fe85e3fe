"""DNS lookups for the doctor, with dnspython, inside one time budget.

Unlike the MX resolver used for delivery, the doctor must tell "the record is not there" (something to publish)
from "the DNS did not answer" (nothing can be concluded), so every query returns an :class:`Answer` instead of
raising. Answers are cached for one diagnosis: SPF evaluation asks for the same names more than once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from postroom.deliver.mx import Nameserver, to_a_label

__all__ = ["Answer", "DnsLookup"]

QUERY_TIMEOUT_SECONDS = 4.0  # one query, retries included
BUDGET_SECONDS_DEFAULT = 20.0  # the whole diagnosis: API Gateway gives a request 29 s


@dataclass(frozen=True)
class Answer:
    """What the DNS said about ``name``/``rdtype``: records (presentation text), or that the name does not exist, or
    a temporary failure (``error``) from which nothing can be concluded."""

    name: str
    rdtype: str
    records: tuple[str, ...] = ()
    nxdomain: bool = False
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


class DnsLookup:
    def __init__(
        self,
        nameservers: list[Nameserver] | None = None,
        *,
        budget_seconds: float = BUDGET_SECONDS_DEFAULT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port) for address, port in nameservers]
        else:
            resolver = dns.resolver.Resolver(configure=True)
        resolver.timeout = min(resolver.timeout, QUERY_TIMEOUT_SECONDS)
        self._resolver = resolver
        self._clock = clock
        self._deadline = clock() + budget_seconds
        self._cache: dict[tuple[str, str], Answer] = {}
        self.queries = 0

    def query(self, name: str, rdtype: str) -> Answer:
        try:
            key = (to_a_label(name), rdtype.upper())
        except ValueError:  # not a domain name at all: nothing can exist there
            return Answer(name, rdtype, nxdomain=True)
        if key in self._cache:
            return self._cache[key]
        answer = self._ask(*key)
        self._cache[key] = answer
        return answer

    def _ask(self, name: str, rdtype: str) -> Answer:
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            return Answer(name, rdtype, error="not checked: the doctor's time budget ran out")
        self.queries += 1
        try:
            answer = self._resolver.resolve(
                dns.name.from_text(name + "."),
                dns.rdatatype.from_text(rdtype),
                raise_on_no_answer=False,
                lifetime=min(QUERY_TIMEOUT_SECONDS, remaining),
                search=False,
            )
        except dns.resolver.NXDOMAIN:
            return Answer(name, rdtype, nxdomain=True)
        except dns.resolver.NoNameservers:
            return Answer(name, rdtype, error="no nameserver gave an answer (SERVFAIL or refused)")
        except dns.exception.Timeout:
            return Answer(name, rdtype, error="the DNS query timed out")
        except dns.exception.DNSException as error:
            return Answer(name, rdtype, error=str(error) or type(error).__name__)
        if answer.rrset is None:
            return Answer(name, rdtype)
        return Answer(name, rdtype, records=tuple(_text(rdata) for rdata in answer.rrset))


def _text(rdata: object) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:  # TXT: the character-strings of one record are one value (RFC 7208 §3.3)
        return b"".join(strings).decode("utf-8", errors="replace")
    target = getattr(rdata, "target", None)
    if target is not None:  # CNAME
        return str(target.to_text(omit_final_dot=True)).lower()
    exchange = getattr(rdata, "exchange", None)
    if exchange is not None:  # MX: "preference host", "." for a null MX (RFC 7505)
        host = "." if exchange == dns.name.root else exchange.to_text(omit_final_dot=True).lower()
        return f"{rdata.preference} {host}"  # type: ignore[attr-defined]
    return str(rdata.to_text())  # type: ignore[attr-defined]
