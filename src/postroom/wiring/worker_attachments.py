"""What uploads and oversize-safe attachments add to the delivery worker: the reader that fills upload references
before the MIME is built, and the SMTP agent wrapper that turns attachments too large for a recipient's server into
expiring links (only with ``POSTROOM_ATTACHMENT_LINKS``; without it the agent is returned as it was)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from postroom.accept.uploads import UploadReader
from postroom.core import aws

if TYPE_CHECKING:
    from postroom.deliver.attachment_links import LinkStore
    from postroom.deliver.deliverer import RequestResolver, SesAgent, SmtpAgent
    from postroom.deliver.smtp_agent import SmtpDeliveryAgent
    from postroom.wiring.services import Services

__all__ = ["link_oversize", "link_oversize_ses", "request_resolvers"]


def request_resolvers(svc: Services) -> list[RequestResolver]:
    return [UploadReader(svc.uploads)]


def link_oversize(agent: SmtpAgent, direct: SmtpDeliveryAgent, svc: Services) -> SmtpAgent:
    """``agent`` (already DKIM-signing) wrapped so that it signs the message as rewritten; ``direct`` is the plain
    agent whose sessions tell each MX's SIZE."""
    if not svc.settings.attachment_links:
        return agent
    from postroom.deliver.attachment_links import LinkingSmtpAgent

    limits = svc.settings.attachment_link_limits
    return LinkingSmtpAgent(agent, _links(svc), limits=limits, size_limit=direct.size_limit)


def link_oversize_ses(agent: SesAgent, svc: Services) -> SesAgent:
    """The SES agent, wrapped so that a message over SES's limit (MaxMessageBytes) sends its largest attachments as
    links; unchanged while attachment links are off."""
    if not svc.settings.attachment_links:
        return agent
    from postroom.deliver.attachment_links import LinkingSesAgent

    return LinkingSesAgent(agent, _links(svc), limit=svc.settings.max_message_bytes)


def _links(svc: Services) -> LinkStore:
    from postroom.deliver.attachment_links import LinkStore

    return LinkStore(aws.client("s3"), svc.settings.bucket, expires_seconds=svc.settings.attachment_link_seconds)
