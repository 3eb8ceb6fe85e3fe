"""A streaming MIME reader for received mail: bounded memory, bounded work, never raises on bad input.

Why not ``email.parser.BytesParser`` on the whole message: it keeps every part's payload as a ``str`` and decoding an
attachment makes another copy, so a 40 MB message peaks at about five times its size (measured: 220 MB for 41 MB).
Here the structure is walked line by line (RFC 2046 §5.1.1 boundaries) and each leaf part is decoded as it streams
past into one spool file on disk, so memory stays at a few lines plus the text bodies (capped). Each header block is
still parsed by the standard library (``BytesHeaderParser``/``HeaderParser`` with ``policy.default``), which is
where the subtle parts of RFC 5322/2047/2231 live.

Hostile structure is bounded: nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_PARTS` parts, or a header
block over :data:`MAX_HEADER_BYTES` stops being interpreted (the bytes stay in the raw object in S3) and the message
carries a flag saying so. Malformed input is flagged, never dropped.
"""

from __future__ import annotations

import binascii
import codecs
import re
import tempfile
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, HeaderParser
from typing import IO, Any

__all__ = ["MAX_DEPTH", "MAX_HEADER_BYTES", "MAX_PARTS", "MimePart", "ParsedMail", "parse_mail"]

MAX_DEPTH = 20  # multipart nesting; real mail rarely goes past 5 (mixed > related > alternative > ...)
MAX_PARTS = 500  # entities in one message, multiparts included
MAX_HEADER_BYTES = 256 * 1024  # one header block; RFC 5322 sets no limit, MTAs typically refuse past 64-256 KB
MAX_LINE_BYTES = 64 * 1024  # read unit: longer "lines" (binary junk) are handled in chunks of this size
MAX_BODY_CHARS = 384 * 1024  # per text/html body in message.json: three bodies must fit a 6 MB Lambda response
MAX_HEADERS_KEPT = 500
PREVIEW_CHARS = 256

_HEADER_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+[ \t]*:")  # RFC 5322 §2.2: field name, printable except ":"
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass
class MimePart:
    """One leaf part kept as a downloadable part: its decoded bytes are ``spool[offset:offset+size]``."""

    part_id: str  # IMAP section number: "1", "2.1", ...
    content_type: str
    filename: str | None
    disposition: str | None  # "attachment", "inline" or None
    content_id: str | None
    charset: str | None
    offset: int
    size: int

    @property
    def is_attachment(self) -> bool:
        # Inline parts referenced by cid: (images in HTML) are not what a reader calls an attachment.
        return self.disposition == "attachment" or (self.content_id is None and self.content_type != "text/plain")


@dataclass
class ParsedMail:
    headers: list[tuple[str, str]] = field(default_factory=list)
    subject: str = ""
    from_: list[dict[str, str]] = field(default_factory=list)
    to: list[dict[str, str]] = field(default_factory=list)
    cc: list[dict[str, str]] = field(default_factory=list)
    reply_to: list[dict[str, str]] = field(default_factory=list)
    date: str | None = None
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    text: str | None = None
    html: str | None = None
    text_truncated: bool = False
    html_truncated: bool = False
    parts: list[MimePart] = field(default_factory=list)
    # The parts the text and HTML bodies came from ("text/plain", "text/html"): downloadable in full when truncated.
    bodies: dict[str, MimePart] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    size: int = 0
    # The top-level header block exactly as received, with the blank line that ends it (what IMAP's BODY[HEADER]
    # is), when it ends with CRLF CRLF within MAX_HEAD_BYTES; None otherwise.
    head: bytes | None = None
    entities: int = 0  # header blocks parsed (multiparts included)
    spool: IO[bytes] | None = None  # decoded part bytes, see MimePart.offset

    @property
    def has_attachments(self) -> bool:
        return any(part.is_attachment for part in self.parts)

    @property
    def preview(self) -> str:
        if self.text:
            source = self.text
        elif self.html:
            from postroom.core.html_text import html_to_text

            source = html_to_text(self.html[: PREVIEW_CHARS * 20])
        else:
            source = ""
        return " ".join(source.split())[:PREVIEW_CHARS]

    def read_part(self, part: MimePart) -> bytes:
        """The decoded bytes of one part (tests and small parts; uploads stream with :meth:`part_stream`)."""
        assert self.spool is not None
        self.spool.seek(part.offset)
        return self.spool.read(part.size)

    def part_stream(self, part: MimePart) -> _SliceReader:
        assert self.spool is not None
        return _SliceReader(self.spool, part.offset, part.size)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


class _SliceReader:
    """A read-only, seekable view of ``size`` bytes of a file from ``offset`` (what boto3 needs for a streamed body)."""

    def __init__(self, fp: IO[bytes], offset: int, size: int) -> None:
        self._fp, self._offset, self._size, self._pos = fp, offset, size, 0

    def read(self, n: int = -1) -> bytes:
        remaining = self._size - self._pos
        n = remaining if n is None or n < 0 else min(n, remaining)
        if n <= 0:
            return b""
        self._fp.seek(self._offset + self._pos)
        data = self._fp.read(n)
        self._pos += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, min(self._size, base + pos))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return self._size


# ---------------------------------------------------------------------------------------------------------------------


class _Lines:
    """Lines of the message, each at most MAX_LINE_BYTES; ``at_start`` says whether a chunk begins a real line
    (only those can be boundaries or headers)."""

    def __init__(self, fp: IO[bytes]) -> None:
        self._fp = fp
        self._pushed: list[tuple[bytes, bool]] = []
        self._at_start = True
        self.size = 0

    def next(self) -> tuple[bytes, bool] | None:
        if self._pushed:
            return self._pushed.pop()
        line = self._fp.readline(MAX_LINE_BYTES)
        if not line:
            return None
        self.size += len(line)
        at_start = self._at_start
        self._at_start = line.endswith(b"\n")
        return line, at_start

    def push(self, item: tuple[bytes, bool]) -> None:
        self._pushed.append(item)


def _eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return b"\r\n"
    return b"\n" if line.endswith(b"\n") else b""


@dataclass
class _Boundary:
    """What ended a body: the index of the enclosing multipart's boundary in the stack and whether it closed it."""

    level: int
    closing: bool


class _Decoder:
    """Content-Transfer-Encoding decoding, fed line by line, writing decoded bytes to the spool."""

    def __init__(self, encoding: str, out: IO[bytes], mail: ParsedMail) -> None:
        self._encoding = encoding if encoding in ("base64", "quoted-printable") else "identity"
        self._out = out
        self._mail = mail
        self._held_eol = b""
        self._b64 = b""
        self.size = 0

    def _write(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self.size += len(data)

    def feed(self, line: bytes, at_start: bool) -> None:
        if self._encoding == "base64":
            self._b64 += _B64_JUNK.sub(b"", line)
            usable = len(self._b64) - len(self._b64) % 4
            if usable:
                self._write(self._b64_decode(self._b64[:usable]))
                self._b64 = self._b64[usable:]
            return
        eol = _eol(line)
        content = line[: len(line) - len(eol)]
        self._write(self._held_eol)  # the previous line's break: it was not followed by a boundary
        self._held_eol = b""
        if self._encoding == "quoted-printable":
            content = content.rstrip(b" \t")  # RFC 2045 §6.7 (3): trailing whitespace is transport padding
            if content.endswith(b"=") and eol:
                self._write(binascii.a2b_qp(content[:-1]))  # soft line break
                return
            self._write(binascii.a2b_qp(content))
        else:
            self._write(content)
        self._held_eol = eol

    def _b64_decode(self, chunk: bytes) -> bytes:
        # A pad inside the stream ends one base64 run; decode run by run so later data is not silently lost.
        decoded = b""
        while chunk:
            pad = chunk.find(b"=")
            if pad < 0:
                run, chunk = chunk, b""
            else:
                end = pad
                while end < len(chunk) and chunk[end : end + 1] == b"=":
                    end += 1
                run, chunk = chunk[:end], chunk[end:]
            try:
                decoded += binascii.a2b_base64(run)
            except binascii.Error:
                self._mail.flags.add("invalid_base64")
        return decoded

    def finish(self, at_eof: bool) -> int:
        if self._encoding == "base64" and self._b64:
            leftover = self._b64.rstrip(b"=")
            if len(leftover) % 4 == 1:
                self._mail.flags.add("invalid_base64")  # 6 bits cannot make a byte
            else:
                self._write(self._b64_decode(leftover + b"=" * (-len(leftover) % 4)))
        # RFC 2046 §5.1.1: the line break before a boundary belongs to the boundary; at the end of the message the
        # body's last line break is the body's own (as the standard library keeps it).
        if at_eof:
            self._write(self._held_eol)
        return self.size


class _Reader:
    def __init__(self, fp: IO[bytes], mail: ParsedMail, spool: IO[bytes]) -> None:
        self.lines = _Lines(fp)
        self.mail = mail
        self.spool = spool
        self.boundaries: list[bytes] = []

    # -- boundaries --------------------------------------------------------------------------------------------
    def boundary(self, line: bytes, at_start: bool) -> _Boundary | None:
        if not at_start or not line.startswith(b"--") or not self.boundaries:
            return None
        stripped = line.rstrip(b"\r\n").rstrip(b" \t")
        for level in range(len(self.boundaries) - 1, -1, -1):
            delimiter = b"--" + self.boundaries[level]
            if stripped == delimiter:
                return _Boundary(level, closing=False)
            if stripped == delimiter + b"--":
                return _Boundary(level, closing=True)
        return None

    def skip_to_boundary(self) -> _Boundary | None:
        while (item := self.lines.next()) is not None:
            found = self.boundary(*item)
            if found is not None:
                return found
        return None

    # -- entities ----------------------------------------------------------------------------------------------
    def headers(self) -> tuple[EmailMessage, _Boundary | None, bool]:
        """Read one header block. Returns the parsed headers, the boundary met instead of a body (malformed), and
        whether the stream ended."""
        raw = bytearray()
        oversize = False
        while (item := self.lines.next()) is not None:
            line, at_start = item
            found = self.boundary(line, at_start)
            if found is not None:
                self.mail.flags.add("part_without_body")
                return self._parse_headers(bytes(raw)), found, False
            if at_start and line in (b"\r\n", b"\n"):
                return self._parse_headers(bytes(raw)), None, False
            if at_start and not _HEADER_LINE.match(line) and line[:1] not in (b" ", b"\t"):
                # RFC 5322 §2.1: headers end at an empty line; without one, this line already belongs to the body.
                self.mail.flags.add("missing_header_body_separator")
                self.lines.push(item)
                return self._parse_headers(bytes(raw)), None, False
            if len(raw) + len(line) > MAX_HEADER_BYTES:
                oversize = True
                continue
            raw += line
        if oversize:
            self.mail.flags.add("header_too_large")
        return self._parse_headers(bytes(raw)), None, True

    def _parse_headers(self, raw: bytes) -> EmailMessage:
        if raw.isascii():
            return BytesHeaderParser(policy=policy.default).parsebytes(raw)
        # RFC 6532 allows UTF-8 in headers (SMTPUTF8 mail); anything else is 8-bit junk we can only guess at.
        self.mail.flags.add("eight_bit_headers")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.mail.flags.add("invalid_header_encoding")
            text = raw.decode("utf-8", errors="replace")
        return HeaderParser(policy=policy.default).parsestr(text)

    def entity(self, depth: int, part_id: str) -> tuple[_Boundary | None, EmailMessage]:
        """Parse one entity (headers and body); returns the boundary line that ended it (None: end of input)."""
        mail = self.mail
        mail.entities += 1
        headers, early, eof = self.headers()
        _collect_defects(headers, mail)
        if early is not None or eof:
            return early, headers
        ctype = _safe(headers.get_content_type, "text/plain")
        if ctype.startswith("multipart/"):
            boundary = _safe(lambda: headers.get_param("boundary"), None)
            if not isinstance(boundary, str) or not boundary:
                mail.flags.add("multipart_without_boundary")
            elif depth >= MAX_DEPTH:
                mail.flags.add("mime_depth_exceeded")
                return self.skip_to_boundary(), headers
            else:
                return self.multipart(boundary, depth, part_id), headers
        if mail.entities > MAX_PARTS:
            mail.flags.add("mime_parts_exceeded")
            return self.skip_to_boundary(), headers
        return self.leaf(headers, ctype, part_id), headers

    def multipart(self, boundary: str, depth: int, part_id: str) -> _Boundary | None:
        self.boundaries.append(boundary.encode("utf-8", "surrogateescape"))
        level = len(self.boundaries) - 1
        try:
            found = self.skip_to_boundary()  # the preamble is ignored (RFC 2046 §5.1.1)
            child = 0
            while found is not None and found.level == level and not found.closing:
                child += 1
                if self.mail.entities >= MAX_PARTS:
                    self.mail.flags.add("mime_parts_exceeded")
                    found = self.skip_to_boundary()
                    continue
                found, _ = self.entity(depth + 1, f"{part_id}.{child}" if part_id else str(child))
            if found is None:
                self.mail.flags.add("multipart_unterminated")
                return None
            if found.level < level:
                self.mail.flags.add("multipart_unterminated")  # an outer boundary came first
                return found
            return self.skip_to_boundary()  # the epilogue, up to the enclosing boundary
        finally:
            self.boundaries.pop()

    def leaf(self, headers: EmailMessage, ctype: str, part_id: str) -> _Boundary | None:
        cte = str(headers.get("Content-Transfer-Encoding", "7bit") or "7bit").strip().lower()
        offset = self.spool.seek(0, 2)
        decoder = _Decoder(cte, self.spool, self.mail)
        found: _Boundary | None = None
        while (item := self.lines.next()) is not None:
            found = self.boundary(*item)
            if found is not None:
                break
            decoder.feed(*item)
        size = decoder.finish(at_eof=found is None)
        self._keep(headers, ctype, part_id or "1", offset, size)
        return found

    def _keep(self, headers: EmailMessage, ctype: str, part_id: str, offset: int, size: int) -> None:
        mail = self.mail
        disposition = _safe(headers.get_content_disposition, None)
        filename = _safe(headers.get_filename, None)
        charset = _safe(lambda: headers.get_content_charset(), None)
        content_id = str(headers.get("Content-ID") or "").strip().strip("<>") or None
        part = MimePart(part_id, ctype, filename, disposition, content_id, charset, offset, size)
        body_candidate = disposition != "attachment" and not filename and ctype in ("text/plain", "text/html")
        if body_candidate and ctype not in mail.bodies:
            mail.bodies[ctype] = part
            text, truncated = self._text(offset, size, charset)
            if ctype == "text/plain":
                mail.text, mail.text_truncated = text, truncated
            else:
                mail.html, mail.html_truncated = text, truncated
            return
        mail.parts.append(part)

    def _text(self, offset: int, size: int, charset: str | None) -> tuple[str, bool]:
        self.spool.seek(offset)
        data = self.spool.read(min(size, MAX_BODY_CHARS * 4))
        self.spool.seek(0, 2)
        if len(data) < size:  # cut short here: the last character may be cut too, which is no encoding error
            return data.decode(_codec(charset), errors="replace").replace("\r\n", "\n")[:MAX_BODY_CHARS], True
        try:
            text = data.decode(charset or "us-ascii")
        except LookupError:
            self.mail.flags.add("unknown_charset")
            text = data.decode("utf-8", errors="replace")
        except UnicodeDecodeError:
            # Mislabelled 8-bit text is common (utf-8 declared as us-ascii): try utf-8, then keep what decodes.
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self.mail.flags.add("invalid_text_encoding")
                text = data.decode(charset or "utf-8", errors="replace")
        text = text.replace("\r\n", "\n")
        truncated = len(text) > MAX_BODY_CHARS or size > len(data)
        return text[:MAX_BODY_CHARS], truncated


def _codec(charset: str | None) -> str:
    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"


def _safe(call: Any, default: Any) -> Any:
    """Header accessors of the email package can raise on hostile values; a bad header must not lose the message."""
    try:
        return call()
    except Exception:  # noqa: BLE001 - any failure here means "malformed", which is flagged by the caller
        return default


def _collect_defects(headers: EmailMessage, mail: ParsedMail) -> None:
    for defect in headers.defects:
        mail.flags.add(_flag_name(type(defect).__name__))


def _flag_name(name: str) -> str:
    return _CAMEL.sub("_", name.removesuffix("Defect")).lower()


def _addresses(headers: EmailMessage, name: str, mail: ParsedMail) -> list[dict[str, str]]:
    try:
        value = headers[name]
    except Exception:  # noqa: BLE001 - a header the email package cannot even build is malformed
        mail.flags.add(f"invalid_{name.lower().replace('-', '_')}")
        return []
    if value is None:
        return []
    for defect in getattr(value, "defects", ()):
        mail.flags.add(_flag_name(type(defect).__name__))
    try:
        found = [{"name": a.display_name, "email": a.addr_spec} for a in value.addresses if a.addr_spec]
    except Exception:  # noqa: BLE001
        found = []
    if not found and str(value).strip():
        mail.flags.add(f"invalid_{name.lower().replace('-', '_')}")
    return found


def _text_header(headers: EmailMessage, name: str) -> str | None:
    try:
        value = headers[name]
    except Exception:  # noqa: BLE001
        return None
    return None if value is None else " ".join(str(value).split())


def _summarise(headers: EmailMessage, mail: ParsedMail) -> None:
    kept: list[tuple[str, str]] = []
    for name, value in list(headers.items())[:MAX_HEADERS_KEPT]:
        kept.append((name, " ".join(str(value).split())))
    mail.headers = kept
    mail.subject = _text_header(headers, "Subject") or ""
    mail.from_ = _addresses(headers, "From", mail)
    mail.to = _addresses(headers, "To", mail)
    mail.cc = _addresses(headers, "Cc", mail)
    mail.reply_to = _addresses(headers, "Reply-To", mail)
    mail.date = _text_header(headers, "Date")
    mail.message_id = _text_header(headers, "Message-ID")
    mail.in_reply_to = _text_header(headers, "In-Reply-To")
    references = _text_header(headers, "References") or ""
    mail.references = re.findall(r"<[^<>\s]+>", references)[:100]
    if not mail.from_:
        mail.flags.add("missing_from")


MAX_HEAD_BYTES = 16 * 1024  # a header block kept in the mailbox listing (Received and DKIM-Signature take a few KB)


def _head_block(fp: IO[bytes]) -> bytes | None:
    """The header block, read from the start of a seekable file and the file put back where it was."""
    try:
        start = fp.tell()
        prefix = fp.read(MAX_HEAD_BYTES)
        fp.seek(start)
    except (OSError, ValueError):
        return None
    # Only CRLF CRLF: a message with bare LF line ends is split where its first CRLF CRLF or LF LF is, which a prefix
    # alone cannot tell; such a message is read whole when a client asks for its header.
    end = prefix.find(b"\r\n\r\n")
    return prefix[: end + 4] if end >= 0 else None


def parse_mail(fp: IO[bytes]) -> ParsedMail:
    """Parse a message from a binary file positioned at its start. Never raises for malformed input: problems become
    ``flags``. The caller closes the result (it owns a spool file)."""
    mail = ParsedMail()
    mail.head = _head_block(fp)
    spool = tempfile.TemporaryFile(prefix="postroom-parts-")  # noqa: SIM115 - owned by the result, see close()
    mail.spool = spool
    reader = _Reader(fp, mail, spool)
    try:
        _, top = reader.entity(0, "")
        _summarise(top, mail)
        # What follows the top-level entity (only after a broken structure) still counts towards the size.
        while reader.lines.next() is not None:
            pass
    except Exception:  # noqa: BLE001 - never lose a message to a parser bug: index what we have, flag it
        mail.flags.add("parse_failed")
        while reader.lines.next() is not None:
            pass
    mail.size = reader.lines.size
    return mail
