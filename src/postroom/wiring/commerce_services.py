"""What the two commerce functions build: the stores, payload stash and order memory (:class:`CommerceServices`).

Kept apart from :class:`postroom.wiring.services.Services` so the send API's cold start never imports the commerce
package. Rebuilt whenever the shared services are (tests and the local stack reset those after changing settings).
"""

from __future__ import annotations

import threading

from postroom.commerce.registry import CommerceServices
from postroom.core import aws
from postroom.wiring.services import Services, services

_lock = threading.Lock()
_built: tuple[Services, CommerceServices] | None = None


def commerce_services() -> CommerceServices:
    global _built
    svc = services()
    with _lock:
        if _built is None or _built[0] is not svc:
            commerce = CommerceServices(
                svc.settings,
                dynamodb=aws.client("dynamodb"),
                s3=aws.client("s3"),
                sqs=aws.client("sqs"),
                secretsmanager=aws.client("secretsmanager"),
            )
            _built = (svc, commerce)
        return _built[1]
