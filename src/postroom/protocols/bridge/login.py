"""Logging in to the bridge's IMAP and POP3 listeners: the user name is the mailbox address, the password an API key
(checked by asking the API for that address's mailboxes), and one failed-login lockout per client address shared with
SMTP submission. Each listener supplies its own avatar (an IMAP account, a POP3 maildrop), so this module imports
neither protocol."""

# ruff: noqa: N802, N815  (Twisted's interfaces name these methods and attributes)

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from twisted.cred import checkers, credentials, portal
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, threads
from zope.interface import implementer

from postroom.protocols.bridge.mailbox_client import MailApi, MailApiError
from postroom.protocols.submission.api_client import PostroomClient, looks_like_key
from postroom.protocols.submission.smtp_listener import FAILED_LOGINS_ALLOWED, RateLimiter

log = logging.getLogger("postroom.protocols.bridge")

# Builds one protocol's avatar for a logged-in address: the object itself, or a Deferred that fires with it.
AvatarFactory = Callable[[MailApi, str], Any]


@implementer(checkers.ICredentialsChecker)
class ApiKeyChecker:
    """The password is an API key; it is good for the address if the API lists that address's mailboxes with it."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, client: PostroomClient) -> None:
        self.client = client

    def requestAvatarId(self, creds: Any) -> defer.Deferred[tuple[str, str]]:
        address = creds.username.decode("utf-8", "replace").strip().lower()
        key = creds.password.decode("utf-8", "replace").strip()
        return threads.deferToThread(self._check, address, key)

    def _check(self, address: str, key: str) -> tuple[str, str]:
        if "@" not in address or not looks_like_key(key):
            raise UnauthorizedLogin("the user name is the mailbox address, the password an API key")
        try:
            boxes = MailApi(self.client, key).mailboxes(address)
        except MailApiError as error:
            raise UnauthorizedLogin(str(error)) from None
        if not boxes:
            raise UnauthorizedLogin(f"{address} has no mailboxes")
        return address, key


@implementer(portal.IRealm)
class ApiRealm:
    """Hands out one kind of avatar (``interface``), built by the listener's own factory."""

    def __init__(self, client: PostroomClient, interface: Any, avatar: AvatarFactory) -> None:
        self.client, self.interface, self.avatar = client, interface, avatar

    def requestAvatar(self, avatar_id: tuple[str, str], _mind: Any, *interfaces: Any) -> Any:
        address, key = avatar_id
        if self.interface not in interfaces:
            raise NotImplementedError("no such interface")
        built = self.avatar(MailApi(self.client, key), address)
        if isinstance(built, defer.Deferred):
            return built.addCallback(lambda avatar: (self.interface, avatar, lambda: None))
        return self.interface, built, lambda: None


def api_portal(client: PostroomClient, interface: Any, avatar: AvatarFactory) -> portal.Portal:
    # zope.interface's @implementer is invisible to mypy: the realm and checker provide IRealm/ICredentialsChecker.
    realm = cast("portal.IRealm", ApiRealm(client, interface, avatar))
    key_checker = cast("checkers.ICredentialsChecker", ApiKeyChecker(client))
    return portal.Portal(realm, [key_checker])


class GuardedPortal:
    """One connection's view of the portal: a client address with too many failed logins is refused without asking
    the API (the same lockout as SMTP submission), so a password guesser gets nowhere and costs nothing."""

    def __init__(self, inner: portal.Portal, failures: RateLimiter, peer: str) -> None:
        self.inner, self.failures, self.peer = inner, failures, peer

    def login(self, creds: Any, mind: Any, *interfaces: Any) -> defer.Deferred[Any]:
        if self.failures.count(self.peer) >= FAILED_LOGINS_ALLOWED:
            return defer.fail(UnauthorizedLogin("too many failed logins; try again later"))

        def failed(failure: Any) -> Any:
            if failure.check(UnauthorizedLogin):
                self.failures.add(self.peer)
                log.info("failed bridge login", extra={"peer": self.peer})  # never the password
            return failure

        return self.inner.login(creds, mind, *interfaces).addErrback(failed)
