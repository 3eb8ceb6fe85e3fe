"""Mailbox paging: the time for one page of 50 messages in a mailbox of 1 000 vs one of 100 000 (target: ratio ≤ 1.5).

Needs the inbound work (``postroom.mailbox.store.MailboxStore``); without it this script says so and exits 0.

Both mailboxes live in the same table, created from template.yaml in moto (in process); they are filled with
``MailboxStore.import_messages``. Then the first page and a deep page (after 10 pages of cursor) are read from each,
interleaved, and two things are compared:

* **items read per page** (DynamoDB's ScannedCount, which ``Page.scanned`` reports): what a Query costs and how long
  it takes on DynamoDB is proportional to the items it reads, not to the size of the partition. This ratio is
  deterministic.
* **wall time per page** with moto. moto's Query walks the whole partition in Python, so this ratio says more about
  moto than about DynamoDB; it is reported for completeness.

    .venv/bin/python bench/mailbox_paging.py [--small 1000] [--large 100000] [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from _common import ROOT, Paired, machine, print_paired, save

ADDRESS = "inbox@mail.shop.example"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    try:
        from postroom.mailbox.store import MailboxStore, mail_ulid
    except ImportError as error:
        print(f"mailbox paging: skipped, the mailbox store is not in this tree yet ({error}).")
        return
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    import boto3
    from moto import mock_aws

    from postroom.local import template as tpl

    with mock_aws():
        template = tpl.load_template(ROOT / "template.yaml")
        params = {**tpl.parameter_defaults(template), "SendingDomains": "shop.example"}
        session = boto3.session.Session(region_name="us-east-1")
        resources = tpl.create_resources(template, session, parameters=params, prefix="paging")
        store = MailboxStore(session.client("dynamodb"), resources["Table"]["Ref"])
        boxes = {}
        for label, count in (("small", args.small), ("large", args.large)):
            address = f"{label}-{ADDRESS}"
            store.create_address(address)
            existing = store.mailboxes(address)  # creating an address may create its Inbox
            box = existing[0] if existing else store.create_mailbox(address, "Inbox")
            base = 1_760_000_000_000
            started = time.perf_counter()
            for chunk in range(0, count, 5000):
                store.import_messages(
                    box.id,
                    [
                        {
                            "id": mail_ulid(base + i * 1000, label, str(i)),
                            "receipt": f"{label}-{i}",
                            "subject": f"Message {i}",
                            "from": [{"name": "Ann", "email": "ann@example.org"}],
                            "to": [{"name": "", "email": address}],
                            "received_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(base / 1000 + i)),
                            "size": 4096,
                            "preview": "Hello",
                            "keywords": [],
                        }
                        for i in range(chunk, min(count, chunk + 5000))
                    ],
                )
            print(f"  filled {label} mailbox with {count} messages in {time.perf_counter() - started:.0f} s", flush=True)
            boxes[label] = box.id

        def deep_cursor(box_id: str) -> str:
            cursor = None
            for _ in range(10):
                cursor = store.page(box_id, limit=50, cursor=cursor).cursor
            return cursor

        cursors = {label: deep_cursor(box_id) for label, box_id in boxes.items()}

        def read(label: str, deep: bool) -> tuple[float, int]:
            start = time.perf_counter()
            page = store.page(boxes[label], limit=50, cursor=cursors[label] if deep else None)
            elapsed = time.perf_counter() - start
            assert len(page.items) == 50, len(page.items)
            return elapsed, page.scanned

        results = {}
        print(f"mailbox paging, {machine()}")
        for deep in (False, True):
            which = "page 11 (cursor)" if deep else "first page"
            wall = Paired(f"{which}: wall time, {args.large} vs {args.small} messages (moto)", "s")
            scanned = Paired(f"{which}: items read, {args.large} vs {args.small} messages", "items")
            for i in range(args.runs):
                order = ("large", "small") if i % 2 == 0 else ("small", "large")
                got = {label: read(label, deep) for label in order}
                wall.add(got["large"][0], got["small"][0])
                scanned.add(got["large"][1], got["small"][1])
            print_paired(scanned, target=1.5)
            print_paired(wall, target=1.5)
            results[which] = {"items_read": scanned.summary(), "wall": wall.summary()}
    print(f"saved {save('mailbox_paging', results)}")


if __name__ == "__main__":
    sys.exit(main())
