"""Two functions that share the API resolver, called at once, each answer with their own caller's key.

Powertools keeps the current event and the principal on the resolver instance. On AWS every function is its own
process with one event at a time; the local stack runs the send and mailbox functions on threads of one process, and
without ``postroom.api.resolver``'s lock a request could be answered as another key's tenant.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from postroom.local import template as tpl
from postroom.local.gateway import build_event
from postroom.local.handlers import LocalFunction
from tests.conftest import ROOT, Stack, create_key, load_function

ROUNDS = 400


def _whoami(function: LocalFunction, key: str) -> dict[str, Any]:
    event = build_event(
        method="GET",
        path="/v1/me",
        resource="/v1/me",
        query="",
        headers=[("Authorization", f"Bearer {key}")],
        body=b"",
        source_ip="127.0.0.1",
        path_parameters={},
        stage="api",
    )
    result = function.invoke(event)
    assert result["statusCode"] == 200, result
    answer: dict[str, Any] = json.loads(result["body"])
    return answer


def test_concurrent_requests_on_two_functions_keep_their_own_principal(stack: Stack) -> None:
    # GIVEN the send API and the mailbox API functions (one shared resolver) and a key of another tenant
    mailbox_api = load_function(tpl.load_template(ROOT / "template.yaml"), "MailboxApiFunction")
    other_key = create_key(tenant="other-tenant")
    seen: dict[str, set[str]] = {"default": set(), "other-tenant": set()}
    errors: list[BaseException] = []

    def hammer(function: LocalFunction, key: str, tenant: str) -> None:
        try:
            for _ in range(ROUNDS):
                seen[tenant].add(_whoami(function, key)["tenant"])
        except BaseException as error:  # noqa: BLE001 - reported below: a failure in a thread would otherwise vanish
            errors.append(error)

    # WHEN both are called at the same time, each with its own key
    threads = [
        threading.Thread(target=hammer, args=(stack.send_api, stack.api_key, "default")),
        threading.Thread(target=hammer, args=(mailbox_api, other_key, "other-tenant")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # THEN every answer named the caller's own tenant
    assert not errors, errors
    assert seen == {"default": {"default"}, "other-tenant": {"other-tenant"}}
