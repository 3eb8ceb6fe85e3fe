"""The stored state of one message and its recipients: what ``GET /v1/messages/{id}`` returns."""

from __future__ import annotations

from pydantic import BaseModel, Field

from postroom.core.bounce_types import BounceType
from postroom.core.delivery_results import Outcome, RecipientResult
from postroom.core.status import MessageStatus, RecipientStatus, aggregate, check_transition

_OUTCOME_STATUS = {
    Outcome.DELIVERED: RecipientStatus.DELIVERED,
    Outcome.DEFERRED: RecipientStatus.DEFERRED,
    Outcome.BOUNCED: RecipientStatus.BOUNCED,
    Outcome.SUPPRESSED: RecipientStatus.SUPPRESSED,
    Outcome.SENT: RecipientStatus.SENT,
}


class RecipientState(BaseModel):
    address: str
    status: RecipientStatus = RecipientStatus.PENDING
    attempts: int = 0
    smtp_code: int | None = None
    enhanced_status: str | None = None
    reply: str | None = Field(default=None, description="The server's last reply, or Postroom's diagnostic.")
    mx_host: str | None = None
    tls: bool | None = None
    tls_version: str | None = None
    ses_message_id: str | None = None
    tls_verified: bool | None = Field(default=None, description="Whether the MX's certificate verified (TLS only).")
    tls_policy: str | None = Field(default=None, description="TLS policy of the last attempt: opportunistic, …")
    bounce_type: BounceType | None = Field(default=None, description="hard, soft, policy or mailbox_full.")
    delivery: str | None = Field(
        default=None, description="The agent of the last attempt: ses, smtp, or another agent's name."
    )
    attachments_linked: str | None = Field(
        default=None, description="Attachments sent as expiring download links, too large for the recipient's server."
    )
    first_attempt_at: str | None = None
    last_attempt_at: str | None = None
    final_at: str | None = None

    def record(self, result: RecipientResult, path: str | None, at: str) -> None:
        self.status = _OUTCOME_STATUS[result.outcome]
        if result.outcome is not Outcome.SUPPRESSED:  # a suppressed recipient was never attempted
            self.attempts += 1
        self.smtp_code = result.smtp_code
        self.enhanced_status = result.enhanced_status
        self.reply = result.reply or None
        self.mx_host = result.mx_host
        self.tls = result.tls
        self.tls_version = result.tls_version
        self.ses_message_id = result.ses_message_id or self.ses_message_id
        self.tls_verified = result.tls_verified
        self.tls_policy = result.tls_policy
        self.bounce_type = result.bounce_type
        self.delivery = path
        self.attachments_linked = result.extra.get("attachments_linked") or self.attachments_linked
        self.first_attempt_at = self.first_attempt_at or at
        self.last_attempt_at = at
        if self.status.is_final:
            self.final_at = at


class MessageRecord(BaseModel):
    id: str
    tenant: str
    status: MessageStatus = MessageStatus.QUEUED
    from_address: str
    subject: str
    delivery: str = Field(description="What the request asked for: auto, ses or smtp.")
    message_id_header: str = Field(description="The RFC 5322 Message-ID written into the message.")
    recipients: list[RecipientState]
    attempts: int = 0
    reason: str | None = Field(default=None, description="Why the message failed, when it did.")
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    topic: str | None = Field(default=None, description="The request's topic (suppression scope for unsubscribes).")
    created_at: str
    updated_at: str
    next_attempt_at: str | None = None
    size: int | None = Field(default=None, description="Size in bytes of the built MIME message.")
    send_at: str | None = Field(default=None, description="When a scheduled message is due (UTC).")
    template: str | None = Field(default=None, description="The stored template the message was rendered from.")
    version: int = 0

    def pending(self) -> list[RecipientState]:
        return [r for r in self.recipients if not r.status.is_final]

    def move_to(self, status: MessageStatus) -> None:
        if status is not self.status:
            check_transition(self.status, status)
            self.status = status

    def settle(self) -> MessageStatus:
        """Derive the message status from its recipients after an attempt."""
        self.move_to(aggregate(r.status for r in self.recipients))
        return self.status

    def give_up(self, reason: str, at: str) -> None:
        """Transient failures went on too long: every recipient still waiting is failed with the reason."""
        for recipient in self.pending():
            recipient.status = RecipientStatus.FAILED
            recipient.reply = f"{reason}; last reply: {recipient.reply}" if recipient.reply else reason
            recipient.final_at = at
        self.reason = reason
        self.next_attempt_at = None
        self.settle()

    def public(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"version", "tenant"})
