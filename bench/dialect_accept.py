"""Dialects: CPU time per request of Postmark's ``POST /email``, Resend's ``POST /emails`` and SendGrid's
``POST /v3/mail/send`` against Postroom's own ``POST /v1/messages`` with the same message, all through the real send
API handler (issue 17's closing figure: each dialect's cost as a ratio to Postroom's own route).

The set-up is bench/accept_path.py's (AWS calls answered by in-memory doubles); the dialect routes also read the
suppression list (one DynamoDB BatchGetItem, answered empty by a double), which is part of what they cost. For each
dialect, blocks of it and of the reference are interleaved (A B B A …); the figure is the median of the per-pair
ratios. Every request must be answered with the route's success status, or the script stops.

    .venv/bin/python bench/dialect_accept.py [--blocks 16] [--per-block 150] [--dialect postmark resend sendgrid]
"""

from __future__ import annotations

import argparse
import json
import time
from email.utils import parseaddr
from typing import Any

from _common import Paired, interleave, machine, print_paired, save
from accept_path import MESSAGE, prepare

POSTMARK = {
    "From": MESSAGE["from"],
    "To": MESSAGE["to"][0],
    "Subject": MESSAGE["subject"],
    "TextBody": MESSAGE["text"],
    "HtmlBody": MESSAGE["html"],
    "Tag": MESSAGE["tags"][0],
    "Metadata": MESSAGE["metadata"],
    "TrackLinks": "None",
    "MessageStream": None,
}
# Resend has no tag list: its tags are name/value pairs, which become the message's metadata.
RESEND = {
    "from": MESSAGE["from"],
    "to": MESSAGE["to"],
    "subject": MESSAGE["subject"],
    "text": MESSAGE["text"],
    "html": MESSAGE["html"],
    "tags": [{"name": name, "value": value} for name, value in MESSAGE["metadata"].items()],
}


def _address(text: str) -> dict[str, str]:
    """SendGrid takes an address as {email, name}, not as a "Name <address>" string."""
    name, email = parseaddr(text)
    return {"email": email, "name": name} if name else {"email": email}


SENDGRID = {
    "personalizations": [{"to": [_address(address) for address in MESSAGE["to"]]}],
    "from": _address(MESSAGE["from"]),
    "subject": MESSAGE["subject"],
    "content": [{"type": "text/plain", "value": MESSAGE["text"]}, {"type": "text/html", "value": MESSAGE["html"]}],
    "categories": MESSAGE["tags"],
    "custom_args": MESSAGE["metadata"],
}

# name → (path, body, success status, the key's header)
DIALECTS: dict[str, tuple[str, dict[str, Any], int, str]] = {
    "postmark": ("/email", POSTMARK, 200, "X-Postmark-Server-Token"),
    "resend": ("/emails", RESEND, 200, "Authorization"),
    "sendgrid": ("/v3/mail/send", SENDGRID, 202, "Authorization"),
}


class _SuppressionTable:
    def batch_get_item(self, **_: Any) -> dict[str, Any]:
        return {"Responses": {}}


def dialect_events(own_events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    path, body, _, header = DIALECTS[name]
    events = []
    for own in own_events:
        event = json.loads(json.dumps(own))
        if header != "Authorization":
            token = event["headers"].pop("Authorization").removeprefix("Bearer ")
            event["headers"][header] = token
            event["multiValueHeaders"].pop("Authorization", None)
            event["multiValueHeaders"][header] = [token]
        event.update(path=path, resource=path, body=json.dumps(body))
        event["requestContext"].update(path=f"/api{path}", resourcePath=path)
        events.append(event)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--per-block", type=int, default=150)
    parser.add_argument("--dialect", nargs="+", choices=sorted(DIALECTS), default=list(DIALECTS))
    args = parser.parse_args()
    handler, _, own_events, context, _ = prepare(args.per_block)

    from postroom.suppression.suppression_store import SuppressionStore
    from postroom.wiring.event_services import event_services

    event_services().__dict__["suppressions"] = SuppressionStore(_SuppressionTable(), "postroom-table")

    def block(events: list[dict[str, Any]], expected: int) -> float:
        start = time.process_time()
        for item in events:
            result = handler(item, context)
        elapsed = time.process_time() - start
        assert result["statusCode"] == expected, result
        return elapsed / len(events) * 1e6

    print(f"Dialect accept paths, {machine()}")
    print(f"{args.blocks} blocks of {args.per_block} requests each side, per dialect")
    summaries: dict[str, object] = {}
    for name in args.dialect:
        path, _, status, _ = DIALECTS[name]
        events = dialect_events(own_events, name)
        for _ in range(3):  # warm both
            block(events, status)
            block(own_events, 202)
        paired = Paired(f"CPU per request, POST {path} vs POST /v1/messages", "µs")

        def candidate(events: list[dict[str, Any]] = events, status: int = status) -> float:
            return block(events, status)

        for a, b in interleave(args.blocks, candidate, lambda: block(own_events, 202)):
            paired.add(a, b)
        print_paired(paired, target=1.2)
        summaries[name] = paired.summary()
    print(f"saved {save('dialect_accept', {'cpu_per_request': summaries})}")


if __name__ == "__main__":
    main()
