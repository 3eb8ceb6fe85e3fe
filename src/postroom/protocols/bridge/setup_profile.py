"""One-tap mail account setup for the bridge: what ``postroom bridge profile`` writes.

* an Apple configuration profile (``.mobileconfig``, for iOS, iPadOS and macOS Mail): an IMAP account and its SMTP
  server (com.apple.mail.managed), and, for a self-signed bridge certificate, that certificate as a trusted root
  (com.apple.security.root) so the device accepts the TLS ports;
* a Thunderbird autoconfig file (``config-v1.1.xml``, the format Thunderbird, K-9/Thunderbird for Android and
  Evolution read from ``autoconfig.<domain>`` or a local file);
* the settings to type into Outlook, which reads neither.

None of them holds the password (the API key): the device asks for it once, so a profile mailed or shared leaks
nothing. Identifiers are derived from the address and host, so a profile written again replaces the installed one
instead of adding a second account.
"""

from __future__ import annotations

import plistlib
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

_NAMESPACE = uuid.UUID("6b1f0c1e-2f57-4f53-9a51-3f0b2c7d9e10")  # Postroom's: stable profile identifiers


@dataclass(frozen=True)
class AccountSettings:
    address: str  # the mailbox address, also the user name
    host: str  # the name clients reach the bridge (or the AWS submission service) by
    imaps_port: int = 2993
    smtps_port: int = 2465  # implicit TLS (RFC 8314)
    certificate: Path | None = None  # PEM; included as a trusted root in the Apple profile when given
    display_name: str = ""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


def _uuid(settings: AccountSettings, what: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{what}:{settings.address}:{settings.host}")).upper()


def apple_mobileconfig(settings: AccountSettings) -> bytes:
    name = settings.display_name or settings.address
    mail = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"postroom.mail.{settings.address}",
        "PayloadUUID": _uuid(settings, "mail"),
        "PayloadDisplayName": f"Mail: {settings.address}",
        "EmailAccountDescription": f"{settings.address} (Postroom)",
        "EmailAccountName": name,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": settings.address,
        "IncomingMailServerHostName": settings.host,
        "IncomingMailServerPortNumber": settings.imaps_port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": settings.address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": settings.host,
        "OutgoingMailServerPortNumber": settings.smtps_port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": settings.address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    payloads: list[dict[str, object]] = [mail]
    if settings.certificate is not None:
        der = ssl.PEM_cert_to_DER_cert(settings.certificate.read_text())
        payloads.append(
            {
                "PayloadType": "com.apple.security.root",
                "PayloadVersion": 1,
                "PayloadIdentifier": f"postroom.certificate.{settings.host}",
                "PayloadUUID": _uuid(settings, "certificate"),
                "PayloadDisplayName": f"Postroom bridge certificate ({settings.host})",
                "PayloadCertificateFileName": f"{settings.host}.cer",
                "PayloadContent": der,
            }
        )
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"postroom.profile.{settings.address}",
        "PayloadUUID": _uuid(settings, "profile"),
        "PayloadDisplayName": f"{settings.address} (Postroom)",
        "PayloadDescription": "The mail account; the password is your Postroom API key, asked for on install.",
        "PayloadContent": payloads,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


def thunderbird_autoconfig(settings: AccountSettings) -> bytes:
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=settings.domain)
    ET.SubElement(provider, "domain").text = settings.domain
    ET.SubElement(provider, "displayName").text = f"{settings.domain} (Postroom)"
    ET.SubElement(provider, "displayShortName").text = "Postroom"
    for kind, tag, port in (
        ("imap", "incomingServer", settings.imaps_port),
        ("smtp", "outgoingServer", settings.smtps_port),
    ):
        server = ET.SubElement(provider, tag, type=kind)
        ET.SubElement(server, "hostname").text = settings.host
        ET.SubElement(server, "port").text = str(port)
        ET.SubElement(server, "socketType").text = "SSL"
        ET.SubElement(server, "username").text = "%EMAILADDRESS%"
        ET.SubElement(server, "authentication").text = "password-cleartext"
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + document + b"\n"


def outlook_settings(settings: AccountSettings) -> str:
    trust = (
        f"\nThe bridge's certificate is self-signed: install {settings.certificate.name} as a trusted root "
        "certificate on this computer first (Windows: double-click it, Install Certificate, Local Machine, "
        "Trusted Root Certification Authorities).\n"
        if settings.certificate is not None
        else ""
    )
    return (
        f"Outlook: File > Add Account > {settings.address} > Advanced options > Let me set up my account manually > "
        "IMAP\n\n"
        f"Incoming mail   server {settings.host}   port {settings.imaps_port}   encryption SSL/TLS\n"
        f"Outgoing mail   server {settings.host}   port {settings.smtps_port}   encryption SSL/TLS\n"
        f"User name       {settings.address}\n"
        "Password        your Postroom API key (mailbox:read, mailbox:write, messages:send for this address)\n"
        "Sent items      Outlook saves its own copy to Sent; the bridge files the same message there once.\n"
        f"{trust}"
    )


def write_profile(settings: AccountSettings, directory: Path) -> list[Path]:
    """The three files, under ``directory``; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in (
        (f"{settings.address}.mobileconfig", apple_mobileconfig(settings)),
        ("config-v1.1.xml", thunderbird_autoconfig(settings)),
        (f"{settings.address}-outlook.txt", outlook_settings(settings).encode()),
    ):
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    return written
