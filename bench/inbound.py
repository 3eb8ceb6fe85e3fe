"""Inbound parsing: MB/s of Postroom's inbound MIME reader (parse, plus the fields the mailbox index is built from)
against ``email.message_from_bytes`` alone, and peak RSS for a 40 MB message.

Needs the inbound work (``postroom.receive.mime_parse.parse_mail``); without it this script says so and exits 0.

* **Throughput**: a ~5 MB message (text, HTML, a PDF-like and an image-like base64 attachment) parsed repeatedly;
  Postroom = ``parse_mail(BytesIO(raw))`` plus reading ``subject``, ``from_``, ``to``, ``preview`` and
  ``has_attachments`` (what ``Filer._index_entry`` takes from the parse); reference =
  ``email.message_from_bytes(raw, policy=policy.default)``. Interleaved; MB/s of each, the ratio.
* **Peak RSS**: each in a fresh process on a 40 MB message read from a file (``ru_maxrss``), next to a process that
  only reads the file; also the baseline of importing the modules.

    .venv/bin/python bench/inbound.py [--runs 9]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from _common import Paired, machine, print_paired, save

CHILD = """
import io, resource, sys
from email import message_from_bytes, policy
what, path = sys.argv[1], sys.argv[2]
if what == "postroom":
    from postroom.receive.mime_parse import parse_mail
raw = open(path, "rb").read() if what != "postroom" else None
if what == "read":
    pass
elif what == "stdlib":
    msg = message_from_bytes(raw, policy=policy.default)
    for part in msg.walk():
        part.get_payload(decode=True)
elif what == "postroom":
    with open(path, "rb") as fp:
        mail = parse_mail(fp)
        mail.preview, mail.has_attachments
        mail.close()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_message(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann Example <ann@example.org>"
    msg["To"] = "inbox@mail.shop.example"
    msg["Subject"] = "Quarterly report, with attachments"
    msg["Message-ID"] = "<bench@example.org>"
    msg.set_content("Hello,\n\nplease find the report attached.\n" * 200)
    msg.add_alternative("<p>Hello,</p><p>please find the <b>report</b> attached.</p>" * 200, subtype="html")
    rest = max(0, size - 60_000) * 3 // 4  # base64 grows by 4/3
    msg.add_attachment(os.urandom(rest // 2), maintype="application", subtype="pdf", filename="report.pdf")
    msg.add_attachment(os.urandom(rest - rest // 2), maintype="image", subtype="png", filename="chart.png")
    return msg.as_bytes(policy=policy.SMTP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--size-mb", type=float, default=5)
    parser.add_argument("--rss-mb", type=float, default=40)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # internal: write the big message and exit
    args = parser.parse_args()
    if args.write:
        args.write.write_bytes(make_message(int(args.rss_mb * 1024 * 1024)))
        return
    try:
        from postroom.receive.mime_parse import parse_mail
    except ImportError as error:
        print(f"inbound: skipped, the inbound MIME reader is not in this tree yet ({error}).")
        return
    print(f"inbound, {machine()}")
    # Peak RSS first, while this process is still small: Linux carries ru_maxrss across fork and exec, so a child
    # started from a big parent would report the parent's size. The 40 MB file is written by a child, too.
    rss: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.eml"
        subprocess.run(
            [sys.executable, __file__, "--write", str(path), "--rss-mb", str(args.rss_mb)],
            check=True,
            cwd=Path(__file__).parent,
        )
        big_mb = path.stat().st_size / 1024 / 1024
        for what in ("read", "stdlib", "postroom"):
            out = subprocess.run([sys.executable, "-c", CHILD, what, str(path)], capture_output=True, text=True,
                                 check=True)  # fmt: skip
            rss[what] = int(out.stdout.strip().splitlines()[-1]) // 1024
    print(
        f"peak RSS for a {big_mb:.0f} MB message: Postroom {rss['postroom']} MB, "
        f"email.message_from_bytes (+ decoding each part) {rss['stdlib']} MB, reading the file alone {rss['read']} MB"
    )

    raw = make_message(int(args.size_mb * 1024 * 1024))
    mb = len(raw) / 1024 / 1024

    def postroom() -> float:
        start = time.perf_counter()
        mail = parse_mail(io.BytesIO(raw))
        _ = (mail.subject, mail.from_, mail.to, mail.preview, mail.has_attachments)
        mail.close()
        return mb / (time.perf_counter() - start)

    def stdlib() -> float:
        start = time.perf_counter()
        message_from_bytes(raw, policy=policy.default)
        return mb / (time.perf_counter() - start)

    postroom(), stdlib()
    rate = Paired(f"parse + index fields, {mb:.1f} MB message (MB/s)", "MB/s")
    for i in range(args.runs):
        a, b = (postroom(), stdlib()) if i % 2 == 0 else (None, stdlib())
        if a is None:
            a = postroom()
        rate.add(a, b)
    print_paired(rate, higher_is_better=True)

    print(f"saved {save('inbound', {'rate': rate.summary(), 'rss_mb': rss, 'message_mb': big_mb})}")


if __name__ == "__main__":
    main()
