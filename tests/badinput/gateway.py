"""A WSGI application that does what API Gateway does in front of Postroom's functions, in process: match the routes
``template.yaml`` declares, turn the request into a proxy event, invoke the real handler, turn its proxy result into
the HTTP response. Schemathesis drives it directly (no socket). It also serves Postroom's own OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from postroom.local import template as tpl
from postroom.local.gateway import (
    GATEWAY_ERROR_HEADER,
    build_event,
    missing_authentication_token,
    proxy_result_to_http,
    request_too_long,
)
from postroom.local.handlers import RequestEntityTooLargeError

OPENAPI_PATH = "/openapi.json"

Invoke = Callable[[dict[str, Any]], Any]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def openapi_document() -> dict[str, Any]:
    from postroom.api.resolver import app

    return json.loads(app.get_openapi_json_schema())


class WsgiGateway:
    def __init__(self, template: dict[str, Any], invokers: dict[str, Invoke]) -> None:
        self._routes = tpl.api_routes(template)
        self.invokers = invokers
        self.invocations = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, headers, body = self._dispatch(environ)
        headers.setdefault("Content-Type", "application/json")
        headers["Content-Length"] = str(len(body))
        start_response(f"{status} {HTTPStatus(status).phrase}", list(headers.items()))
        return [body]

    def _dispatch(self, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        method = environ["REQUEST_METHOD"].upper()
        path = environ.get("PATH_INFO") or "/"
        if path == OPENAPI_PATH and method == "GET":
            return 200, {}, json.dumps(openapi_document()).encode()
        length = environ.get("CONTENT_LENGTH") or ""
        body = environ["wsgi.input"].read(int(length)) if length.isdigit() else b""
        headers = [
            (key[5:].replace("_", "-").title(), value) for key, value in environ.items() if key.startswith("HTTP_")
        ]
        if environ.get("CONTENT_TYPE"):
            headers.append(("Content-Type", environ["CONTENT_TYPE"]))
        matched = tpl.match_route(self._routes, method, path)
        if matched is None:
            # API Gateway's own answer for an undeclared route (its body is not Postroom's error shape).
            return missing_authentication_token()
        route, params = matched
        event = build_event(
            method=method,
            path=path,
            resource=route.path,
            query=environ.get("QUERY_STRING", ""),
            headers=headers,
            body=body,
            source_ip="127.0.0.1",
            path_parameters=params,
            stage="api",
        )
        self.invocations += 1
        try:
            result = self.invokers[route.function_logical_id](event)
        except RequestEntityTooLargeError:
            return request_too_long()  # Lambda refused the event: not a crash
        except Exception as exc:  # noqa: BLE001 - a crashing handler is API Gateway's 502, and a finding
            return (
                502,
                {GATEWAY_ERROR_HEADER: "InternalServerErrorException"},
                json.dumps({"message": f"Internal server error: {type(exc).__name__}: {exc}"}).encode(),
            )
        return proxy_result_to_http(result)
