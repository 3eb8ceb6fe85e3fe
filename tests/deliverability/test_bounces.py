"""Bounce classification by RFC 3463 enhanced status code, with the reply's words as the fallback."""

from __future__ import annotations

import pytest

from postroom.core.bounce_types import BounceType, classify_bounce
from postroom.core.delivery_results import Outcome, RecipientResult, SmtpReply


@pytest.mark.parametrize(
    ("code", "status", "text", "expected"),
    [
        # The enhanced code decides: subject 7 is policy, X.2.2 is a full mailbox, otherwise the class.
        (550, "5.1.1", "550 5.1.1 <nobody@example.org>: user unknown", BounceType.HARD),
        (550, "5.1.10", "5.1.10 recipient has a null MX", BounceType.HARD),
        (550, "5.4.4", "unable to route", BounceType.HARD),
        (452, "4.2.2", "452-4.2.2 The email account that you tried to reach is over quota", BounceType.MAILBOX_FULL),
        (552, "5.2.2", "552 5.2.2 mailbox full", BounceType.MAILBOX_FULL),
        (
            550,
            "5.7.26",
            "550-5.7.26 Unauthenticated email from shop.example is not accepted (DMARC)",
            BounceType.POLICY,
        ),
        (421, "4.7.0", "421-4.7.0 unusual rate of unsolicited mail", BounceType.POLICY),
        (None, "4.7.5", "4.7.5 TLS certificate not trusted", BounceType.POLICY),
        (451, "4.3.0", "451 4.3.0 try again later", BounceType.SOFT),
        (None, "4.4.1", "4.4.1 connection refused", BounceType.SOFT),
        # A specific code wins over the words: the user is unknown, whatever the text says about spam.
        (550, "5.1.1", "550 5.1.1 no such user (spam filter notice)", BounceType.HARD),
        # No enhanced code (or only X.0.0): the words decide, then the basic code's class.
        (552, None, "552 Requested mail action aborted: exceeded storage allocation", BounceType.MAILBOX_FULL),
        (554, None, "554 Message rejected as spam by Spamhaus", BounceType.POLICY),
        (550, "5.0.0", "550 5.0.0 Blocked by local policy", BounceType.POLICY),
        (550, None, "550 No such user here", BounceType.HARD),
        (450, None, "450 Greylisted, please try again in 5 minutes", BounceType.POLICY),
        (421, None, "421 Service not available", BounceType.SOFT),
        # Successes and unknowns are no bounce.
        (250, "2.0.0", "250 2.0.0 OK", None),
        (None, None, "", None),
    ],
)
def test_replies_are_classified(code: int | None, status: str | None, text: str, expected: BounceType | None) -> None:
    assert classify_bounce(code, status, text) is expected


def test_results_classify_themselves_and_successes_carry_no_bounce_type() -> None:
    # GIVEN results as the SMTP agent makes them from server replies
    refused = RecipientResult.from_reply("a@example.org", Outcome.BOUNCED, SmtpReply(550, "5.7.1 Message refused"))
    deferred = RecipientResult.from_reply("b@example.org", Outcome.DEFERRED, SmtpReply(452, "4.2.2 Over quota"))
    delivered = RecipientResult.from_reply("c@example.org", Outcome.DELIVERED, SmtpReply(250, "2.0.0 OK"))
    # THEN each knows its bounce type
    assert (refused.bounce_type, deferred.bounce_type, delivered.bounce_type) == (
        BounceType.POLICY,
        BounceType.MAILBOX_FULL,
        None,
    )
