"""A real DNS server on loopback (UDP and TCP, one port), serving a zone written as a dict.

Tests point ``MxResolver`` at it to exercise MX preference, implicit MX, null MX, NXDOMAIN and SERVFAIL over the wire.
The local stack runs it in sandbox mode (``catch_all_mx``): every domain's MX is one local host, so all outbound mail
lands in a local sink.

A zone looks like::

    {
        "example.org": {"MX": [(10, "mx1.example.org"), (20, "mx2.example.org")], "TXT": ["v=spf1 -all"]},
        "mx1.example.org": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
        "nullmx.example": {"MX": [(0, ".")]},
        "broken.example": {"SERVFAIL": True},
    }

MX values are ``(preference, exchange)``; TXT values are strings, split into 255-octet character-strings on the wire;
any other type takes its values in presentation format (``{"CNAME": ["target.example.org."]}``), served as is to
queries of that type. Names are absolute whether or not they end with a dot. A name absent from the zone is NXDOMAIN
(unless it has names below it); a name present without the asked type answers NOERROR with no records.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

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

__all__ = ["SANDBOX_MX_HOST", "LoopbackDnsServer", "Zone"]

Zone = Mapping[str, Mapping[str, Any]]
logger = logging.getLogger(__name__)

SANDBOX_MX_HOST = "mx.sandbox.postroom.invalid"  # RFC 2606: .invalid can never clash with a real name
SANDBOX_MX_PREFERENCE = 10
TTL_DEFAULT = 0  # resolvers must not cache, so that set_zone()/update_zone() are seen at once
UDP_SIZE_WITHOUT_EDNS = 512  # RFC 1035 §4.2.1; a bigger answer is truncated (TC) and the client retries over TCP
TCP_SIZE_MAX = 65535  # RFC 1035 §4.2.2: two-octet length prefix
TXT_STRING_MAX = 255  # RFC 1035 §3.3: a <character-string> holds at most 255 octets
BIND_ATTEMPTS = 20  # tries at finding an ephemeral port free for both UDP and TCP
POLL_INTERVAL = 0.05  # seconds; how quickly stop() is noticed

_SANDBOX_NAME = dns.name.from_text(SANDBOX_MX_HOST)


@dataclass(frozen=True)
class _Node:
    rrsets: Mapping[dns.rdatatype.RdataType, dns.rrset.RRset]
    servfail: bool


class LoopbackDnsServer:
    """Serves ``zone`` on ``host`` (default 127.0.0.1), UDP and TCP on one port (0 = pick a free one)."""

    def __init__(
        self,
        zone: Zone | None = None,
        *,
        catch_all_mx: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ttl: int = TTL_DEFAULT,
        zone_file: Path | None = None,
    ) -> None:
        self._host = host
        # Records another process publishes (`postroom domains publish-local` beside `postroom local`): a JSON zone,
        # re-read whenever its modification time changes, whose names take precedence over ``zone``.
        self._zone_file = zone_file
        self._file_stamp: int | None = None
        self._file_zone: dict[dns.name.Name, _Node] = {}
        self._requested_port = port
        self._ttl = ttl
        self._catch_all = _catch_all_rdtype(catch_all_mx) if catch_all_mx else None
        self._catch_all_address = catch_all_mx
        self._lock = threading.Lock()
        self._zone: dict[dns.name.Name, _Node] = _compile(zone or {}, ttl)
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self._port = 0

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._servers:
            raise RuntimeError("the DNS server is already running")
        udp, tcp = self._bind()
        self._port = udp.server_address[1]
        self._servers = [udp, tcp]
        self._threads = [
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": POLL_INTERVAL},
                name=f"loopback-dns-{kind}:{self._port}",
                daemon=True,
            )
            for kind, server in (("udp", udp), ("tcp", tcp))
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._servers:
            raise RuntimeError("the DNS server is not running")
        return self._port

    @property
    def nameserver(self) -> tuple[str, int]:
        """``(host, port)``, the shape ``MxResolver`` takes."""
        return self._host, self.port

    # -- records ---------------------------------------------------------------------------------------------------

    def set_zone(self, zone: Zone) -> None:
        """Replace every record."""
        compiled = _compile(zone, self._ttl)
        with self._lock:
            self._zone = compiled

    def update_zone(self, zone: Zone) -> None:
        """Replace the records of the names given (all their types); other names keep theirs."""
        compiled = _compile(zone, self._ttl)
        with self._lock:
            self._zone = {**self._zone, **compiled}

    # -- answering -------------------------------------------------------------------------------------------------

    def _bind(self) -> tuple[_UdpServer, _TcpServer]:
        for _ in range(BIND_ATTEMPTS):
            udp = _UdpServer((self._host, self._requested_port), self)
            try:
                tcp = _TcpServer((self._host, udp.server_address[1]), self)
            except OSError:
                udp.server_close()
                if self._requested_port:
                    raise
                continue
            return udp, tcp
        raise OSError(f"no port on {self._host} was free for both UDP and TCP after {BIND_ATTEMPTS} attempts")

    def respond(self, wire: bytes, *, max_size: int | None = None) -> bytes | None:
        """The wire answer to one wire query; None for garbage. ``max_size`` None means the UDP limit the query sets."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not a DNS message: stay silent, as servers do
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        else:
            self._answer(response, query.question[0])
        if max_size is None:
            max_size = query.payload if query.edns >= 0 else UDP_SIZE_WITHOUT_EDNS
        return response.to_wire(max_size=max_size, prefer_truncation=True)

    def _published(self) -> dict[dns.name.Name, _Node]:
        """The zone file's records, re-read when the file changed (one stat per query: a loopback test server)."""
        if self._zone_file is None:
            return {}
        try:
            stamp = self._zone_file.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        with self._lock:
            return self._reload(stamp) if stamp != self._file_stamp else self._file_zone

    def _reload(self, stamp: int | None) -> dict[dns.name.Name, _Node]:
        if self._zone_file is not None:
            try:
                loaded = json.loads(self._zone_file.read_text()) if stamp is not None else {}
                self._file_zone = _compile(loaded, self._ttl)
            except (ValueError, OSError) as error:  # a half-written or broken file: keep serving the last good one
                logger.warning("zone file %s not loaded: %s", self._zone_file, error)
        self._file_stamp = stamp
        return self._file_zone

    def _answer(self, response: dns.message.Message, question: dns.rrset.RRset) -> None:
        published = self._published()
        # one consistent snapshot; set_zone() replaces the dict, never mutates it
        zone = {**self._zone, **published} if published else self._zone
        node = zone.get(question.name)
        if node is not None:
            if node.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
            elif (rrset := node.rrsets.get(question.rdtype)) is not None:
                response.answer.append(rrset)
            return  # NOERROR, possibly with no records (the resolver's NoAnswer)
        if self._catch_all is not None:
            self._answer_sandbox(response, question)
            return
        if any(name.is_subdomain(question.name) for name in zone):
            return  # an empty non-terminal exists (RFC 8020): NOERROR, no records
        response.set_rcode(dns.rcode.NXDOMAIN)

    def _answer_sandbox(self, response: dns.message.Message, question: dns.rrset.RRset) -> None:
        if question.rdtype == dns.rdatatype.MX:
            exchange = f"{SANDBOX_MX_PREFERENCE} {SANDBOX_MX_HOST}."
            response.answer.append(dns.rrset.from_text(question.name, self._ttl, "IN", "MX", exchange))
        elif question.name == _SANDBOX_NAME and question.rdtype == self._catch_all:
            address = self._catch_all_address
            response.answer.append(dns.rrset.from_text(question.name, self._ttl, "IN", question.rdtype, address))
        # every other name exists, with no records of the asked type


class _UdpServer(socketserver.UDPServer):
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: LoopbackDnsServer) -> None:
        self.address_family = _family(address[0])
        self.owner = owner
        super().__init__(address, _UdpHandler)


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False  # a client holding a connection open must not block stop()

    def __init__(self, address: tuple[str, int], owner: LoopbackDnsServer) -> None:
        self.address_family = _family(address[0])
        self.owner = owner
        super().__init__(address, _TcpHandler)


class _UdpHandler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        data, sock = self.request
        answer = self.server.owner.respond(data)
        if answer is not None:
            sock.sendto(answer, self.client_address)


class _TcpHandler(socketserver.StreamRequestHandler):
    server: _TcpServer

    def handle(self) -> None:
        # RFC 1035 §4.2.2: each message is prefixed with its length as two octets; a connection may carry several.
        with contextlib.suppress(OSError):
            while len(prefix := self.rfile.read(2)) == 2:
                (length,) = struct.unpack("!H", prefix)
                data = self.rfile.read(length)
                answer = self.server.owner.respond(data, max_size=TCP_SIZE_MAX) if len(data) == length else None
                if answer is None:
                    return
                self.wfile.write(struct.pack("!H", len(answer)) + answer)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def _catch_all_rdtype(address: str) -> dns.rdatatype.RdataType:
    return dns.rdatatype.AAAA if ipaddress.ip_address(address).version == 6 else dns.rdatatype.A


def _compile(zone: Zone, ttl: int) -> dict[dns.name.Name, _Node]:
    nodes: dict[dns.name.Name, _Node] = {}
    for owner, records in zone.items():
        name = dns.name.from_unicode(owner.rstrip(".") + ".", idna_codec=dns.name.IDNA_2008_Practical)
        rrsets: dict[dns.rdatatype.RdataType, dns.rrset.RRset] = {}
        servfail = False
        for type_text, values in records.items():
            if type_text.upper() == "SERVFAIL":
                servfail = bool(values)
                continue
            rdtype = dns.rdatatype.from_text(type_text)
            rdatas = [_rdata(rdtype, value, owner) for value in values]
            if rdatas:
                rrsets[rdtype] = dns.rrset.from_rdata_list(name, ttl, rdatas)
        nodes[name] = _Node(rrsets, servfail)
    return nodes


def _rdata(rdtype: dns.rdatatype.RdataType, value: Any, owner: str) -> dns.rdata.Rdata:
    where = f"{owner} {dns.rdatatype.to_text(rdtype)}"
    if rdtype == dns.rdatatype.MX:
        if not (isinstance(value, tuple | list) and len(value) == 2):
            raise ValueError(f"{where}: an MX value is (preference, exchange), got {value!r}")
        preference, exchange = value
        return _from_text(rdtype, f"{int(preference)} {exchange.rstrip('.')}.", where)
    if rdtype == dns.rdatatype.TXT:
        if not isinstance(value, str | bytes):
            raise ValueError(f"{where}: a TXT value is a string, got {value!r}")
        data = value.encode() if isinstance(value, str) else value
        strings = [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, strings)
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected the record in presentation format, got {value!r}")
    return _from_text(rdtype, value, where)


def _from_text(rdtype: dns.rdatatype.RdataType, text: str, where: str) -> dns.rdata.Rdata:
    try:
        # Names inside the record are absolute, trailing dot or not.
        return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False)
    except (dns.exception.DNSException, ValueError) as error:
        raise ValueError(f"{where}: bad record {text!r}: {error}") from None
