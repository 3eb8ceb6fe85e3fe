"""What every dialect's routes share: the request's JSON payload and the suppression screen.

The screen reads the suppression list (the same lookup the worker's filter makes) so that a message whose every
recipient is suppressed is refused at once with the dialect's own error, as the providers do; a partly suppressed
message is accepted and the worker skips the listed recipients. Nothing about suppression is re-implemented here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from postroom.core.errors import ValidationFailedError
from postroom.core.untrusted import loads
from postroom.wiring.event_services import event_services

if TYPE_CHECKING:
    from postroom.accept.compose import MessageInput
    from postroom.core.auth import Principal


def json_payload(body: str | None) -> Any:
    """The request body as JSON (decoded by postroom.core.untrusted); raises a PostroomError when there is none."""
    if not body:
        raise ValidationFailedError("the request has no JSON body", field="body")
    return loads(body)


def inactive_recipients(message: MessageInput, principal: Principal) -> list[str]:
    """The message's recipients that the suppression list stops."""
    recipients = message.envelope_recipients()
    domain = message.from_.email.rpartition("@")[2].lower()
    listed = event_services().suppressions.check(principal.tenant, recipients, domain=domain, topic=message.topic)
    return [address for address in recipients if address.lower() in listed]


def all_inactive(message: MessageInput, principal: Principal) -> list[str]:
    """The suppressed recipients when every recipient is suppressed, else an empty list."""
    inactive = inactive_recipients(message, principal)
    return inactive if inactive and len(inactive) == len(message.envelope_recipients()) else []
