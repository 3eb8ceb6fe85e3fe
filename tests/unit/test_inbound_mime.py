"""The streaming MIME reader: the same content as the standard library's parser for well-formed mail, flags instead
of exceptions for malformed mail, and bounded memory and time for hostile mail."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.receive.mime_parse import MAX_DEPTH, MAX_PARTS, parse_mail

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def rich_message() -> bytes:
    message = EmailMessage()
    message["From"] = '"Jörg Müller" <jm@example.org>'
    message["To"] = "support@shop.example, Billing <billing@shop.example>"
    message["Cc"] = "cc@example.org"
    message["Subject"] = "Rechnung für Mai ✓ " + "lang " * 30
    message["Message-ID"] = "<m1@example.org>"
    message["In-Reply-To"] = "<m0@shop.example>"
    message["References"] = "<a@x> <m0@shop.example>"
    message.set_content("Grüße,\nhier ist die Rechnung.\n" + "Zeile mit langem Text " * 20 + "\n")
    message.add_alternative("<p>Grüße <img src='cid:logo'></p>", subtype="html")
    message.get_payload()[1].add_related(PNG, maintype="image", subtype="png", cid="<logo>")
    message.add_attachment(os.urandom(20_000), maintype="application", subtype="pdf", filename="Rechnung Mai.pdf")
    message.add_attachment(b"a;b\r\n1;2\r\n", maintype="text", subtype="csv", filename="zahlen.csv")
    message.add_attachment("ünïcödé name", filename="naïve ✓.txt")
    return message.as_bytes(policy=policy.SMTP)


def stdlib_view(raw: bytes) -> tuple[str, str, dict[str, bytes]]:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
    files = {}
    for part in message.walk():
        if part.is_multipart() or part in (message.get_body(("plain",)), message.get_body(("html",))):
            continue
        files[part.get_filename() or part["Content-ID"]] = part.get_payload(decode=True)
    return text, html, files


def test_well_formed_mail_reads_as_the_standard_library_reads_it() -> None:
    # GIVEN a message with text, HTML, an inline image and three attachments (QP and base64)
    raw = rich_message()
    # WHEN both parsers read it
    mail = parse_mail(io.BytesIO(raw))
    text, html, files = stdlib_view(raw)
    # THEN bodies, headers and every attachment's bytes agree, and nothing is flagged
    assert mail.flags == set()
    assert mail.text == text
    assert mail.html == html
    ours = {part.filename or f"<{part.content_id}>": mail.read_part(part) for part in mail.parts}
    assert ours == files
    assert mail.subject.startswith("Rechnung für Mai ✓ lang")
    assert mail.from_ == [{"name": "Jörg Müller", "email": "jm@example.org"}]
    assert [a["email"] for a in mail.to] == ["support@shop.example", "billing@shop.example"]
    assert mail.references == ["<a@x>", "<m0@shop.example>"]
    assert mail.in_reply_to == "<m0@shop.example>"
    assert mail.size == len(raw)
    assert mail.has_attachments
    inline = next(part for part in mail.parts if part.content_id == "logo")
    assert not inline.is_attachment
    assert [p.part_id for p in mail.parts] == ["1.2.2", "2", "3", "4"]


@settings(max_examples=40, deadline=None)
@given(
    content=st.binary(max_size=3000),
    name=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(str.strip),
    cte=st.sampled_from(["base64", "quoted-printable", "7bit"]),
)
def test_any_attachment_survives_byte_for_byte(content: bytes, name: str, cte: str) -> None:
    message = EmailMessage()
    message["From"] = "a@example.org"
    message["Subject"] = "x"
    message.set_content("body")
    if cte == "7bit":
        content = bytes(b for b in content if 0 < b < 128 and b not in b"\r\n")  # no line breaks to normalise
        message.add_attachment(content.decode(), subtype="plain", filename=name, cte="7bit")
    else:
        message.add_attachment(content, maintype="application", subtype="octet-stream", filename=name, cte=cte)
    raw = message.as_bytes(policy=policy.SMTP)
    mail = parse_mail(io.BytesIO(raw))
    (part,) = mail.parts
    expected = BytesParser(policy=policy.default).parsebytes(raw).get_payload()[1].get_payload(decode=True)
    assert mail.read_part(part) == expected
    assert part.filename == BytesParser(policy=policy.default).parsebytes(raw).get_payload()[1].get_filename()


def test_eight_bit_headers_are_read_as_utf8_or_flagged() -> None:
    utf8 = "From: Zoë <z@example.org>\r\nSubject: Grüße aus Köln\r\n\r\nhi\r\n".encode()
    latin1 = "From: z@example.org\r\nSubject: Grüße\r\n\r\nhi\r\n".encode("latin-1")
    good = parse_mail(io.BytesIO(utf8))
    assert good.subject == "Grüße aus Köln"
    assert good.from_ == [{"name": "Zoë", "email": "z@example.org"}]
    assert good.flags == {"eight_bit_headers"}
    bad = parse_mail(io.BytesIO(latin1))
    assert "\ufffd" in bad.subject
    assert bad.flags == {"eight_bit_headers", "invalid_header_encoding"}
    assert bad.text == "hi\n"


def test_garbage_is_kept_as_a_flagged_body_not_an_exception() -> None:
    junk = os.urandom(5000).replace(b"\n", b"")
    mail = parse_mail(io.BytesIO(junk))
    assert "missing_from" in mail.flags
    assert mail.size == len(junk)
    assert mail.entities == 1


def test_mime_bomb_depth_is_bounded_in_time_and_flagged() -> None:
    # GIVEN 20 000 nested multiparts (each opens the next) with a leaf at the bottom
    depth = 20_000
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    raw = b"From: x@example.org\r\n" + head + b"Content-Type: text/plain\r\n\r\ndeep\r\n"
    # CPU time of this process, not wall time: the bound catches a parser that goes quadratic, and other processes on a
    # loaded machine (the suite runs under xdist beside other jobs) cannot push it over.
    started = time.process_time()
    mail = parse_mail(io.BytesIO(raw))
    elapsed = time.process_time() - started
    # THEN parsing stops descending at MAX_DEPTH, says so, and takes well under a second of CPU
    assert "mime_depth_exceeded" in mail.flags
    assert mail.entities <= MAX_DEPTH + 2
    assert elapsed < 2.0
    assert mail.size == len(raw)


def test_mime_bomb_width_is_bounded_and_flagged() -> None:
    parts = b"".join(b"--b\r\nContent-Type: application/x-thing\r\n\r\n%d\r\n" % i for i in range(20_000))
    raw = b'From: x@example.org\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    started = time.process_time()  # CPU time, not wall time (see the depth test)
    mail = parse_mail(io.BytesIO(raw))
    assert time.process_time() - started < 3.0
    assert "mime_parts_exceeded" in mail.flags
    assert len(mail.parts) < MAX_PARTS


MEMORY_PROBE = """
import resource, sys
from postroom.receive.mime_parse import parse_mail
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(sys.argv[1], "rb") as fp:
    mail = parse_mail(fp)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, mail.size, sum(p.size for p in mail.parts), sorted(mail.flags))
"""


def test_a_40_mb_message_parses_in_a_small_fraction_of_its_size(tmp_path) -> None:
    # GIVEN a 40 MB message: a 29 MB attachment, base64 on the wire
    path = tmp_path / "big.eml"
    blob = os.urandom(29 * 1024 * 1024)
    encoded = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    path.write_bytes(
        b'From: big@example.org\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n"
        b"--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="big.bin"\r\n\r\n' + encoded + b"--B--\r\n"
    )
    size = path.stat().st_size
    assert size > 39 * 1024 * 1024
    # WHEN a fresh process parses it
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path)], capture_output=True, text=True, check=True)
    grown, parsed_size, decoded, flags = result.stdout.split(maxsplit=3)
    # THEN it read everything, decoded the attachment whole, and its peak memory grew by far less than the message
    assert int(parsed_size) == size
    assert int(decoded) == len(blob)
    assert flags.strip() == "[]"
    assert int(grown) < size // 4, f"peak RSS grew by {int(grown) / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB message"
