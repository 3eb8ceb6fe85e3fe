"""Email address rules: parsing ``"Name <user@example.com>"`` and validating with email-validator.

Addresses are normalised once, here, so every later stage (identities, MX grouping, envelope) sees the same form:
the local part as given, the domain in its IDNA A-label (ASCII) form, lower-case.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from email.utils import getaddresses
from typing import TYPE_CHECKING

from email_validator import EmailNotValidError, validate_email

if TYPE_CHECKING:
    from email.headerregistry import Address as HeaderAddress

# C0 controls and DEL: never legitimate in a display name, and CR/LF are how header injection starts. C1 controls and
# U+2028/U+2029 too: the email package ends header lines wherever str.splitlines() does (NEL, LS, PS included).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# An RFC 2047 encoded word. The email package decodes encoded words in the header values it is given, so text that
# is harmless as typed can carry a CR/LF inside one (and CPython before 3.11.10/3.12.5 writes it out raw:
# CVE-2024-6923, header injection).
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
MAX_NAME_LENGTH = 200


class AddressError(ValueError):
    """The text is not a usable email address; the message says why in plain words."""


@dataclass(frozen=True, slots=True)
class EmailAddress:
    address: str  # local@domain, domain in ASCII (IDNA) lower-case
    name: str = ""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    def header_value(self) -> HeaderAddress:
        """The email package's Address, which encodes non-ASCII display names per RFC 2047 on output."""
        # Imported here: only the worker builds headers, and the email package's header machinery is a noticeable
        # part of the send API's cold start.
        from email.headerregistry import Address as HeaderAddress

        return HeaderAddress(display_name=self.name, username=self.local_part, domain=self.domain)

    def __str__(self) -> str:
        return str(self.header_value())


def hides_control_characters(text: str) -> bool:
    """Whether an RFC 2047 encoded word in ``text`` decodes to a control or line-breaking character."""
    if "=?" not in text:
        return False
    from email.header import decode_header  # rare path: keep the import off the start-up path

    for word in _ENCODED_WORD.findall(text):
        try:
            chunks = decode_header(word)
        except ValueError:  # a malformed word: the email package leaves it as it is
            continue
        for chunk, charset in chunks:
            decoded = chunk.decode(charset or "latin-1", errors="replace") if isinstance(chunk, bytes) else chunk
            if _CONTROL.search(decoded.replace("\t", " ")):
                return True
    return False


def check_display_name(name: str) -> str:
    if _CONTROL.search(name) or hides_control_characters(name):
        raise AddressError("display name must not contain control characters (CR, LF, tab, NUL…)")
    if len(name) > MAX_NAME_LENGTH:
        raise AddressError(f"display name is longer than {MAX_NAME_LENGTH} characters")
    return name.strip()


@functools.lru_cache(maxsize=4096)  # pure; a request validates each mailbox twice, and senders repeat across requests
def normalise_address(email: str, name: str = "") -> EmailAddress:
    if _CONTROL.search(email):
        raise AddressError("address must not contain control characters (CR, LF, tab, NUL…)")
    try:
        # Deliverability (DNS) checks belong to delivery, not to request validation: a slow resolver must not
        # slow down the accept path, and a domain can gain MX records between accept and delivery.
        result = validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
    return EmailAddress(address=f"{result.local_part}@{result.ascii_domain.lower()}", name=check_display_name(name))


def parse_mailbox(text: str) -> EmailAddress:
    """Parse ``user@example.com`` or ``Display Name <user@example.com>``."""
    if _CONTROL.search(text):
        raise AddressError("address must not contain control characters (CR, LF, tab, NUL…)")
    parsed = getaddresses([text])
    if len(parsed) != 1:
        raise AddressError(f"expected exactly one address, got {len(parsed)}: give each address as its own item")
    name, email = parsed[0]
    if not email or "@" not in email:
        raise AddressError(f"not an email address: {text[:100]!r}")
    return normalise_address(email, name)
