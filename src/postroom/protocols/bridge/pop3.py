"""POP3 for mail clients that only download, on Twisted's server (``twisted.mail.pop3``), over the mailbox API.

The maildrop is the address's Inbox as it stood at login (RFC 1939: the session works on a snapshot). UIDL is the
message id, which never changes, so "leave messages on the server" works across sessions. DELE marks; QUIT moves the
marked messages to Trash through the API (recoverable for as long as Trash keeps them, and what the mailbox API's
DELETE does) and only then answers +OK, so a client that sees +OK knows the deletions happened.
"""

# Twisted's interfaces and command tables are camelCase and UPPER_case; the names here must match them.
# ruff: noqa: N802

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from io import BytesIO
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.protocol import Factory
from twisted.mail import pop3
from zope.interface import implementer

from postroom.protocols.bridge.login import GuardedPortal, api_portal
from postroom.protocols.bridge.mailbox_client import Listing, MailApi, MailApiError
from postroom.protocols.submission.api_client import PostroomClient
from postroom.protocols.submission.smtp_listener import FAILED_LOGIN_WINDOW, FAILED_LOGINS_ALLOWED, RateLimiter

log = logging.getLogger(__name__)


class NoSuchMessageError(ValueError):
    """A message number outside the maildrop, or marked deleted (pop3.IMailbox's contract: a ValueError)."""


def _takes(handler: Callable[..., Any], args: list[bytes]) -> bool:
    """Whether a ``do_*`` handler accepts this many arguments (``PASS`` with none made Python raise a TypeError)."""
    try:
        inspect.signature(handler).bind(*args)
    except TypeError:
        return False
    return True


@implementer(pop3.IMailbox)
class Pop3Mailbox:
    def __init__(self, api: MailApi, address: str) -> None:
        self.api = api
        self.address = address
        self.messages: list[Listing] = []
        self.deleted: set[int] = set()

    def load(self) -> Pop3Mailbox:
        inbox = next(box for box in self.api.mailboxes(self.address) if box.get("role") == "inbox")
        _, self.messages = self.api.listing(str(inbox["id"]))
        return self

    def listMessages(self, index: int | None = None) -> int | list[int]:
        if index is None:
            return [0 if i in self.deleted else m.size for i, m in enumerate(self.messages)]
        self._check(index)
        return self.messages[index].size

    def getMessage(self, index: int) -> defer.Deferred[BytesIO]:
        self._check(index)
        # Twisted's POP3 sends each line of the file with CRLF appended (and byte-stuffs dots): hand it LF lines.
        return threads.deferToThread(lambda: BytesIO(self.api.raw(self.messages[index].id).replace(b"\r\n", b"\n")))

    def getUidl(self, index: int) -> bytes:
        self._check(index)
        return self.messages[index].id.encode()

    def deleteMessage(self, index: int) -> None:
        self._check(index)
        self.deleted.add(index)

    def undeleteMessages(self) -> None:
        self.deleted.clear()

    def sync(self) -> defer.Deferred[list[str]]:
        """Carry out the DELEs; the ids that could not be removed (already gone elsewhere counts as removed)."""

        def removed() -> list[str]:
            failed = []
            for index in sorted(self.deleted):
                mail_id = self.messages[index].id
                try:
                    self.api.delete(mail_id)
                except MailApiError as error:
                    if error.status != 404:
                        failed.append(mail_id)
            self.deleted.clear()
            return failed

        return threads.deferToThread(removed)

    def _check(self, index: int) -> None:
        if not 0 <= index < len(self.messages) or index in self.deleted:
            raise NoSuchMessageError("no such message")


class Server(pop3.POP3):
    def state_COMMAND(self, line: bytes) -> Any:
        return self.processCommand(*line.split(b" "))

    def processCommand(self, command: bytes, *args: bytes) -> Any:
        # Here rather than in state_COMMAND: pipelined commands that arrive during a long operation are queued and
        # replayed through processCommand alone (Twisted's _unblock), and must be answered the same way.
        # Twisted's own handler joins the error's arguments as bytes, which fails for most errors and drops the
        # connection. A client's mistake gets a -ERR in protocol terms (never a Python exception's text, which
        # would describe this server's code, not the command) and the session goes on.
        if self.blocked is not None:
            return super().processCommand(command, *args)  # queued; it comes back here, in order
        name = command.upper().decode("ascii", "replace")
        handler = getattr(self, f"do_{name}", None)
        if handler is not None and not _takes(handler, args):
            self.failResponse(f"wrong number of arguments for {name}".encode())
            return None
        try:
            return super().processCommand(command, *args)
        except pop3.POP3Error as error:
            # Twisted's own protocol answers ("not authenticated yet: cannot do STAT", "Unknown protocol command")
            self.failResponse(b" ".join(a if isinstance(a, bytes) else str(a).encode() for a in error.args)[:200])
        except NoSuchMessageError as error:
            self.failResponse(str(error).encode())
        except ValueError:
            # e.g. ``DELE abc``: Twisted's int() of the argument (RFC 1939: a message-number is a decimal number)
            self.failResponse(f"invalid argument for {name}: a message number is a decimal number from 1".encode())
        except (AttributeError, TypeError):
            # A fault in this server, not the client's: the details go to the log, the client gets a plain answer.
            log.exception("POP3 %s failed", name)
            self.failResponse(b"internal error")
        return None

    def do_QUIT(self) -> None:
        if self.mbox is None:
            super().do_QUIT()
            return
        mbox, self.mbox = self.mbox, None

        def answer(failed: list[str]) -> None:
            if failed:
                self.failResponse(b"some messages could not be deleted: " + " ".join(failed).encode())
            else:
                self.successResponse(b"bye")
            self.transport.loseConnection()

        def broken(_: Any) -> None:
            self.failResponse(b"the Postroom API failed; nothing more was deleted")
            self.transport.loseConnection()

        mbox.sync().addCallbacks(answer, broken)


def _maildrop(api: MailApi, address: str) -> defer.Deferred[Pop3Mailbox]:
    """The maildrop is listed once, at login (RFC 1939's snapshot)."""
    maildrop = Pop3Mailbox(api, address)
    return threads.deferToThread(maildrop.load)


class ServerFactory(Factory):
    def __init__(self, client: PostroomClient, *, failures: RateLimiter | None = None) -> None:
        self.portal = api_portal(client, pop3.IMailbox, _maildrop)
        self.failures = failures if failures is not None else RateLimiter(FAILED_LOGINS_ALLOWED, FAILED_LOGIN_WINDOW)

    def buildProtocol(self, addr: Any) -> Server:
        server = Server()
        server.portal = GuardedPortal(self.portal, self.failures, getattr(addr, "host", "?"))
        server.factory = self
        return server
