"""``/console``: the web console's static page and assets, served by the send API function itself.

These GETs need no API key (the files hold no data; the page asks for the key and calls the API with it), so the
resolver lets exactly these paths through before the gate: :func:`is_public` is that list.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from postroom.console import ASSETS, CONTENT_SECURITY_POLICY, asset
from postroom.core.errors import NotFoundError

router = Router()

PAGE_PATH = "/console"
_PUBLIC_PATHS = frozenset({PAGE_PATH} | {f"{PAGE_PATH}/{name}" for name in ASSETS if name != "index.html"})
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Assets are small and change with the deployed version; revalidating keeps a new version from mixing with old.
    "Cache-Control": "no-cache",
}


def is_public(event: dict[str, Any]) -> bool:
    """A GET of exactly the console page or one of its assets: the only requests served without a key."""
    return (event.get("httpMethod") or "").upper() == "GET" and event.get("path") in _PUBLIC_PATHS


def _serve(name: str) -> Response[str]:
    data = asset(name)
    if data is None:
        raise NotFoundError(f"no console file {name!r}", field="path")
    return Response(status_code=200, content_type=ASSETS[name], body=data.decode(), headers=dict(_HEADERS))


@router.get(PAGE_PATH, include_in_schema=False)
def console_page() -> Response[str]:
    return _serve("index.html")


@router.get(f"{PAGE_PATH}/<name>", include_in_schema=False)
def console_asset(name: str) -> Response[str]:
    return _serve(name)
