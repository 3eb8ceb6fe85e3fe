"""Originator fields (From, Sender, Resent-From, Resent-Sender, Reply-To): the one check every way in runs.

Mail clients show the originator fields as *they* parse them, and parsers disagree about text that is not clean
RFC 5322: ``From: shop@example.com <ceo@evil-corp.example>`` is ``shop@example.com`` to Python's email package (which
notes a defect and drops the rest) and ``ceo@evil-corp.example`` to many a reader. A message that leaves with such a
field shows a foreign address under the operator's domain reputation. So the rules are:

- A field is read the way a receiver reads the bytes that leave (the email package's header registry,
  ``policy.default``), and refused if that parse notes *any* defect. Obsolete forms the parser tolerates (an
  unquoted ``J. Smith``, a source route) are refused too: they cost the sender a pair of quotes, and every tolerated
  defect is one more place where two parsers may see different addresses.
- From, Sender, Resent-From and Resent-Sender hold exactly one mailbox (no group syntax), and its domain must be a
  configured sending domain: these fields say who wrote or sent the message, which is what DKIM, DMARC and the
  operator's reputation vouch for.
- Reply-To may name any domain - a support desk or a ticket system on another domain is normal for transactional
  mail - but it must be unambiguous too (no defect, every entry a valid address), because a reply goes where the
  *reader's* client thinks it should.

:func:`check_originators` takes the parsed header block of the message that will leave - the raw path's settled
bytes, or the fields the JSON path will write - so what is checked is what is delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING

from postroom.core.addresses import AddressError, EmailAddress, normalise_address
from postroom.core.domain_registry import DomainGate, StaticDomainGate
from postroom.core.errors import SenderNotAllowedError, ValidationFailedError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from email.message import Message

__all__ = [
    "ORIGINATOR_FIELDS",
    "AmbiguousOriginatorError",
    "Originators",
    "check_originators",
    "parse_header_block",
]


@dataclass(frozen=True)
class _Rule:
    one_mailbox: bool  # exactly one mailbox, no group
    own_domain: bool  # the mailbox's domain must be a configured sending domain


# Lower-case field name → rule. Resent-* fields appear once per resent block (RFC 5322 §3.6.6), so each occurrence
# is checked on its own; From, Sender and Reply-To appear at most once (the raw path enforces that count).
ORIGINATOR_FIELDS: dict[str, _Rule] = {
    "from": _Rule(one_mailbox=True, own_domain=True),
    "sender": _Rule(one_mailbox=True, own_domain=True),
    "resent-from": _Rule(one_mailbox=True, own_domain=True),
    "resent-sender": _Rule(one_mailbox=True, own_domain=True),
    "reply-to": _Rule(one_mailbox=False, own_domain=False),
}
# RFC 5322 spelling, for messages and error fields.
_TITLE = {"from": "From", "sender": "Sender", "resent-from": "Resent-From", "resent-sender": "Resent-Sender",
          "reply-to": "Reply-To"}  # fmt: skip


class AmbiguousOriginatorError(ValidationFailedError):
    """An originator field that receivers could read differently from Postroom (a parse defect, a second mailbox, a
    group): 422, and 554 5.6.0 to an SMTP client."""

    code = "ambiguous_originator"


@dataclass(frozen=True)
class Originators:
    """The checked addresses, per field, in the order the fields appear."""

    fields: tuple[tuple[str, tuple[EmailAddress, ...]], ...]

    def get(self, name: str) -> list[tuple[EmailAddress, ...]]:
        """Every occurrence of field ``name`` (lower-case)."""
        return [mailboxes for field, mailboxes in self.fields if field == name]

    @property
    def author(self) -> EmailAddress:
        """The From mailbox (every checked message has exactly one)."""
        return self.get("from")[0][0]

    def addresses(self) -> list[tuple[str, tuple[str, ...]]]:
        """(field, addresses) without display names: what two parses of the same field must agree on."""
        return [(field, tuple(m.address for m in mailboxes)) for field, mailboxes in self.fields]


def parse_header_block(data: bytes) -> Message:
    """Only the header fields of ``data`` (a whole message or just its header block), parsed as a receiver would."""
    return BytesHeaderParser(policy=policy.default).parsebytes(data)


def check_originators(
    msg: Message,
    sending_domains: Collection[str] | DomainGate,
    *,
    field_name: Callable[[str], str] | None = None,
) -> Originators:
    """Check every originator field of ``msg`` (parsed with ``policy.default``) and return their mailboxes.

    Raises :class:`AmbiguousOriginatorError` (422) for a defect, a wrong count or an invalid address, and
    :class:`~postroom.core.errors.SenderNotAllowedError` (403) for a From/Sender/Resent-* domain that is not a sending
    domain. ``field_name`` maps a header name (``"From"``) to the name the caller knows it by (``"from"`` in the JSON
    API); errors carry it as their ``field``. ``sending_domains`` is the configured set, or a gate that also reads
    the domain registry (:mod:`postroom.core.domain_registry`) and says which record an unverified domain lacks.
    """
    name_for = field_name or (lambda title: title)
    gate = sending_domains if isinstance(sending_domains, DomainGate) else StaticDomainGate(sending_domains)
    if not msg.get_all("From"):
        raise AmbiguousOriginatorError("the message has no From header", field=name_for("From"))
    checked: list[tuple[str, tuple[EmailAddress, ...]]] = []
    for header_name, value in msg.items():
        key = header_name.lower()
        rule = ORIGINATOR_FIELDS.get(key)
        if rule is None:
            continue
        title = _TITLE[key]
        mailboxes = _check_field(title, value, rule, name_for(title))
        if rule.own_domain:
            for mailbox in mailboxes:
                # No open relay: only configured (or registered and verified) identities may say who wrote or sent
                # the message.
                refusal = gate.refusal(mailbox.domain)
                if refusal is not None:
                    raise SenderNotAllowedError(refusal, field=name_for(title))
        checked.append((key, mailboxes))
    return Originators(tuple(checked))


def _check_field(title: str, value: object, rule: _Rule, field: str) -> tuple[EmailAddress, ...]:
    defects = list(getattr(value, "defects", ()))
    if defects:
        # The parser's own words ("invalid address in address-list", "period in 'phrase'") say what to fix.
        found = "; ".join(dict.fromkeys(str(defect) for defect in defects))
        raise AmbiguousOriginatorError(
            f"{title} is not a clean RFC 5322 address ({found}): receivers may read a different address than "
            f'Postroom checks; write it as addr@domain or "Display Name" <addr@domain>',
            field=field,
        )
    groups = getattr(value, "groups", None)
    if groups is None:  # not an address header at all: cannot happen for these names under policy.default
        raise AmbiguousOriginatorError(f"{title} could not be read as an address field", field=field)
    mailboxes = [address for group in groups for address in group.addresses]
    if not mailboxes:
        raise AmbiguousOriginatorError(f"{title} holds no address", field=field)
    if rule.one_mailbox and (len(mailboxes) != 1 or groups[0].display_name is not None):
        raise AmbiguousOriginatorError(f"{title} must hold exactly one address (no list, no group)", field=field)
    result = []
    for mailbox in mailboxes:
        try:
            result.append(normalise_address(mailbox.addr_spec, mailbox.display_name))
        except AddressError as exc:
            raise AmbiguousOriginatorError(f"{title}: {exc}", field=field) from None
    return tuple(result)
