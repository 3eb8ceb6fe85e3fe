"""Postmark dialect: CPU time per request of ``POST /email`` against Postroom's own ``POST /v1/messages`` with the same
message, both through the real send API handler (issue 17's closing figure: the dialect's cost as a ratio).

The set-up is bench/accept_path.py's (AWS calls answered by in-memory doubles); the Postmark route also reads the
suppression list (one DynamoDB BatchGetItem, answered empty by a double), which is part of what it costs. Blocks are
interleaved (A B B A …), medians of the per-request figures.

    .venv/bin/python bench/postmark_accept.py [--blocks 16] [--per-block 150]
"""

from __future__ import annotations

import argparse
import json
import time
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


class _SuppressionTable:
    def batch_get_item(self, **_: Any) -> dict[str, Any]:
        return {"Responses": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--per-block", type=int, default=150)
    args = parser.parse_args()
    handler, _, own_events, context, _ = prepare(args.per_block)

    from postroom.suppression.suppression_store import SuppressionStore
    from postroom.wiring.event_services import event_services

    event_services().__dict__["suppressions"] = SuppressionStore(_SuppressionTable(), "postroom-table")
    body = json.dumps(POSTMARK)
    postmark_events = []
    for own in own_events:
        event = json.loads(json.dumps(own))
        token = event["headers"].pop("Authorization").removeprefix("Bearer ")
        event["headers"]["X-Postmark-Server-Token"] = token
        event["multiValueHeaders"].pop("Authorization", None)
        event["multiValueHeaders"]["X-Postmark-Server-Token"] = [token]
        event.update(path="/email", resource="/email", body=body)
        event["requestContext"].update(path="/api/email", resourcePath="/email")
        postmark_events.append(event)

    def block(events: list[dict[str, Any]], expected: int) -> float:
        start = time.process_time()
        for item in events:
            result = handler(item, context)
        elapsed = time.process_time() - start
        assert result["statusCode"] == expected, result
        return elapsed / len(events) * 1e6

    for _ in range(3):  # warm both
        block(postmark_events, 200)
        block(own_events, 202)
    paired = Paired("CPU per request, POST /email vs POST /v1/messages", "µs")
    for a, b in interleave(args.blocks, lambda: block(postmark_events, 200), lambda: block(own_events, 202)):
        paired.add(a, b)
    print(f"Postmark dialect accept path, {machine()}")
    print(f"{args.blocks} blocks of {args.per_block} requests each side")
    print_paired(paired, target=1.2)
    print(f"saved {save('postmark_accept', {'cpu_per_request': paired.summary()})}")


if __name__ == "__main__":
    main()
