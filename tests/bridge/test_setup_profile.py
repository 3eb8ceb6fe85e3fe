"""``postroom bridge profile`` (issue 20): the Apple configuration profile, the Thunderbird autoconfig file and the
Outlook settings it writes, checked by parsing them as the clients do, and by connecting with what they say: a real
IMAP client (imapclient) over IMAPS to a running bridge, trusting only the certificate the profile carries."""

from __future__ import annotations

import plistlib
import smtplib
import ssl
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from imapclient import IMAPClient

from postroom.cli import main
from postroom.local.stack import LocalStack
from postroom.protocols.bridge.runner import Bridge, BridgeConfig
from tests.bridge.conftest import ADDRESS

pytestmark = pytest.mark.e2e


def write(tmp_path: Path, *extra: str) -> dict[str, Path]:
    out = tmp_path / "profile"
    args = ["bridge", "profile", "--address", ADDRESS, "--host", "localhost", "--out", str(out), *extra]
    assert main(args) == 0
    return {path.name: path for path in out.iterdir()}


def test_the_profile_files_configure_a_client_that_then_connects(local: LocalStack, tmp_path: Path) -> None:
    config = BridgeConfig(
        api_url=local.api_url,
        smtp_port=None,
        smtps_port=0,
        imap_port=None,
        pop3_port=None,
        imaps_port=0,
        pop3s_port=None,
        state_dir=tmp_path / "bridge",
    )
    with Bridge(config) as bridge:
        ports = bridge.ports()
        # WHEN a profile is written for this bridge (its self-signed certificate, its TLS ports)
        files = write(
            tmp_path,
            "--cert",
            str(bridge.certificate),
            "--imaps-port",
            str(ports["imaps"]),
            "--smtps-port",
            str(ports["smtps"]),
        )
        assert set(files) == {f"{ADDRESS}.mobileconfig", "config-v1.1.xml", f"{ADDRESS}-outlook.txt"}
        # THEN the Apple profile holds the IMAP account, its SMTP server and the certificate as a trusted root
        profile = plistlib.loads(files[f"{ADDRESS}.mobileconfig"].read_bytes())
        assert profile["PayloadType"] == "Configuration"
        payloads = {p["PayloadType"]: p for p in profile["PayloadContent"]}
        mail: dict[str, Any] = payloads["com.apple.mail.managed"]
        assert (mail["EmailAccountType"], mail["EmailAddress"], mail["IncomingMailServerUsername"]) == (
            "EmailTypeIMAP",
            ADDRESS,
            ADDRESS,
        )
        assert mail["IncomingMailServerUseSSL"] is True
        assert mail["OutgoingMailServerUseSSL"] is True
        assert not any("Password" in key and key != "OutgoingPasswordSameAsIncomingPassword" for key in mail)
        root = payloads["com.apple.security.root"]["PayloadContent"]
        assert root == ssl.PEM_cert_to_DER_cert(bridge.certificate.read_text())
        # AND a client set up from it, trusting only that certificate, logs in over IMAPS and SMTPS
        trust = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(root))
        host, port = mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]
        with IMAPClient(host, port=port, ssl=True, ssl_context=trust, timeout=10) as client:
            client.login(mail["IncomingMailServerUsername"], local.api_key)
            assert client.select_folder("INBOX")[b"EXISTS"] == 0
        outgoing = mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]
        with smtplib.SMTP_SSL(*outgoing, context=trust, timeout=10) as smtp:
            assert smtp.login(mail["OutgoingMailServerUsername"], local.api_key)[0] == 235
        # AND Thunderbird's autoconfig names the same servers, with SSL and the address as user name
        config_xml = ET.parse(files["config-v1.1.xml"]).getroot()
        assert config_xml.tag == "clientConfig"
        provider = config_xml.find("emailProvider")
        assert provider is not None
        assert provider.get("id") == "shop.example"
        servers = {s.get("type"): s for s in provider if s.tag in ("incomingServer", "outgoingServer")}
        assert {
            kind: (s.findtext("hostname"), s.findtext("port"), s.findtext("socketType")) for kind, s in servers.items()
        } == {
            "imap": ("localhost", str(port), "SSL"),
            "smtp": ("localhost", str(outgoing[1]), "SSL"),
        }
        assert servers["imap"].findtext("username") == "%EMAILADDRESS%"
        # AND the Outlook text names them too
        outlook = files[f"{ADDRESS}-outlook.txt"].read_text()
        assert f"port {port}" in outlook
        assert f"port {outgoing[1]}" in outlook
        assert local.api_key not in outlook


def test_a_publicly_trusted_certificate_puts_none_in_the_profile(tmp_path: Path) -> None:
    files = write(tmp_path, "--no-certificate", "--host", "mail.shop.example")
    profile = plistlib.loads(files[f"{ADDRESS}.mobileconfig"].read_bytes())
    assert [p["PayloadType"] for p in profile["PayloadContent"]] == ["com.apple.mail.managed"]
    assert profile["PayloadContent"][0]["IncomingMailServerHostName"] == "mail.shop.example"
    # written again, the same identifiers: the device replaces the account rather than adding a second one
    again = plistlib.loads(
        write(tmp_path, "--no-certificate", "--host", "mail.shop.example")[f"{ADDRESS}.mobileconfig"].read_bytes()
    )
    assert again["PayloadUUID"] == profile["PayloadUUID"]
