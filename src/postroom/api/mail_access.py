"""Which addresses a key reaches, checked the same way by every mailbox route.

A key reaches an address when both hold: the key lists it (``postroom keys create --mailboxes support@shop.example``,
``*@shop.example`` or ``*``), and the address belongs to the key's tenant (an address is registered under one tenant,
which owns its mailboxes and messages, as it owns its sent messages). So ``--mailboxes *`` means every address of the
key's tenant, never another tenant's. A mailbox of an address out of reach answers 403 (the address is in the mailbox
id, so nothing is revealed); a message of one answers 404, as if it did not exist.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from postroom.core.auth import Principal
from postroom.core.errors import ForbiddenError, NotFoundError
from postroom.mailbox.mailbox_content import MailService
from postroom.mailbox.mailbox_store import Mailbox, MailboxNotFoundError, MailNotFoundError, split_mailbox_id

MAILBOX_ID_PATTERN = r"^[^/\s]+@[^/\s]+:[a-z0-9]+$"
# In a path the id may arrive percent-encoded (encodeURIComponent turns "@" into %40 and ":" into %3A).
MAILBOX_PATH_PATTERN = r"^[^/\s]{3,400}$"
MAIL_ID_PATTERN = r"^eml_[0-9a-z]{26}$"


def reaches(service: MailService, principal: Principal, address: str) -> bool:
    """Whether the key may use this address's mailboxes. An address not registered yet belongs to nobody: a key
    that lists it may register it (for its own tenant), and finds no mailboxes under it until then."""
    if not principal.may_access(address):
        return False
    owner = service.store.address_tenant(address)
    return owner is None or owner == principal.tenant


def check_address(service: MailService, principal: Principal, address: str) -> None:
    if not reaches(service, principal, address):
        raise ForbiddenError(f"this API key has no access to the mailboxes of {address}", field="mailboxes")


def mailbox_for(service: MailService, principal: Principal, box_id: str) -> Mailbox:
    box_id = unquote(box_id)
    try:
        address, _ = split_mailbox_id(box_id)
    except MailboxNotFoundError:
        raise NotFoundError(f"no mailbox {box_id}", field="mailbox") from None
    check_address(service, principal, address)
    try:
        return service.store.mailbox(box_id)
    except MailboxNotFoundError:
        raise NotFoundError(f"no mailbox {box_id}", field="mailbox") from None


def mail_for(service: MailService, principal: Principal, mail_id: str) -> dict[str, Any]:
    """The message's index entry, wherever it is now; 404 for strangers."""
    try:
        where = service.store.locate(mail_id)
        if not reaches(service, principal, where["address"]):
            raise MailNotFoundError(mail_id)
        return service.store.message(where["mailbox"], mail_id)
    except MailNotFoundError:
        raise NotFoundError(f"no message {mail_id}", field="id") from None
