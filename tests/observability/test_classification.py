"""Recipient domains grouped by mailbox provider, and the receiving server's queue id read from its reply."""

from __future__ import annotations

import pytest

from postroom.observability.domains import DomainClass, classify
from postroom.observability.queue_ids import queue_id


@pytest.mark.parametrize(
    ("domain", "mx_host", "expected"),
    [
        ("gmail.com", None, DomainClass.GMAIL),
        ("GoogleMail.com.", None, DomainClass.GMAIL),
        ("hotmail.co.uk", None, DomainClass.MICROSOFT),
        ("outlook.com", None, DomainClass.MICROSOFT),
        ("live.nl", None, DomainClass.MICROSOFT),
        ("yahoo.fr", None, DomainClass.YAHOO),
        ("aol.com", None, DomainClass.YAHOO),
        ("icloud.com", None, DomainClass.APPLE),
        # company domains hosted by a provider are recognised by the MX host that answered
        ("acme.example", "aspmx.l.google.com", DomainClass.GMAIL),
        ("contoso.example", "contoso-example.mail.protection.outlook.com", DomainClass.MICROSOFT),
        ("shop.example", "mta7.am0.yahoodns.net.", DomainClass.YAHOO),
        # look-alikes stay "other"
        ("live.example.org", None, DomainClass.OTHER),
        ("yahoo.example.org", None, DomainClass.OTHER),
        ("example.org", "mx.notgoogle.com", DomainClass.OTHER),
        ("example.org", "email.amazonses.com", DomainClass.OTHER),
    ],
)
def test_domains_are_classified_by_name_or_mx(domain: str, mx_host: str | None, expected: DomainClass) -> None:
    assert classify(domain, mx_host) is expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("250 2.0.0 Ok: queued as 4F2A1C0D3", "4F2A1C0D3"),  # Postfix
        ("250 2.0.0 OK: queued as 17", "17"),  # Postroom's own test sink
        ("250 OK id=1rXyZa-0004Kq-2B", "1rXyZa-0004Kq-2B"),  # Exim
        (
            "250 2.6.0 <a@b> [InternalId=8413816360961, Hostname=AM0PR01MB.eurprd01.prod.outlook.com] Queued mail",
            "8413816360961",
        ),  # Microsoft 365
        ("250 2.0.0 OK  1700000000 a640c23a62f3a-a9a6b5e2c1si123456.45 - gsmtp", "a640c23a62f3a-a9a6b5e2c1si123456.45"),
        ("250 2.0.0 3AB1C2D3E4F5 Message accepted for delivery", "3AB1C2D3E4F5"),  # Sendmail
        ("250 ok 1700000000 qp 12345", "12345"),  # qmail
        ("250 2.0.0 Ok", None),
        ("250 Message received", None),
    ],
)
def test_queue_ids_are_read_from_common_mta_replies(reply: str, expected: str | None) -> None:
    assert queue_id(reply) == expected
