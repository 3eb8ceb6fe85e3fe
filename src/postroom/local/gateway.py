"""An HTTP server on loopback that does what API Gateway (REST API, Lambda proxy integration) does: match the route
declared in template.yaml, turn the request into a proxy event, invoke the *same* handler, and turn the proxy result
back into an HTTP response."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# API Gateway refuses request bodies over 10 MB before any Lambda runs.
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024

Invoke = Callable[[dict[str, Any]], Any]
Resolver = Callable[[str, str], tuple[Invoke, str, dict[str, str]] | None]


def _json_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
    return status, {"Content-Type": "application/json"}, body


def build_event(
    *,
    method: str,
    path: str,
    resource: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    path_parameters: dict[str, str],
    stage: str,
) -> dict[str, Any]:
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    pairs = parse_qsl(query, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for name, value in pairs:
        multi_query.setdefault(name, []).append(value)
    try:
        text, is_b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode(), True
    request_id = str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "userAgent": single_headers.get("User-Agent", "")},
        },
        "body": text if body else None,
        "isBase64Encoded": is_b64,
    }


def proxy_result_to_http(result: Any) -> tuple[int, dict[str, str], bytes]:
    if not isinstance(result, dict) or "statusCode" not in result:
        # What API Gateway answers when the integration returns something that is not a proxy result.
        return _json_error(502, "bad_gateway", "the handler returned a malformed proxy response")
    headers = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return int(result["statusCode"]), headers, body


class ApiGateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], resolve: Resolver, *, stage: str = "api") -> None:
        super().__init__(address, _RequestHandler)
        self.resolve_route = resolve
        self.stage = stage

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _RequestHandler(BaseHTTPRequestHandler):
    server: ApiGateway
    protocol_version = "HTTP/1.1"
    # The stdlib's defaults (unbuffered writes, Nagle on) send the headers and the body of a response as two small
    # writes, and the kernel holds the second until the client acknowledges the first, which a client waiting for
    # the rest delays by ~40 ms: every response on a keep-alive connection after the first took 44 ms. Buffered, the
    # response leaves in one write when the request is done (handle_one_request flushes); TCP_NODELAY for the rest.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the handlers' own structured logs say what happened

    def _handle(self) -> None:
        split = urlsplit(self.path)
        status, headers, body = self._dispatch(split.path, split.query)
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for name, value in headers.items():
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self, path: str, query: str) -> tuple[int, dict[str, str], bytes]:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            return _json_error(411, "length_required", "send a Content-Length; chunked bodies are not accepted")
        length = int(length_header) if length_header and length_header.isdigit() else 0
        if length > API_GATEWAY_MAX_BODY:
            self.close_connection = True  # the body is not read, so the connection cannot be reused
            return _json_error(413, "payload_too_large", "API Gateway accepts request bodies up to 10 MB")
        body = self.rfile.read(length) if length else b""
        route = self.server.resolve_route(self.command, path)
        if route is None:
            return _json_error(404, "not_found", f"no route {self.command} {path}")
        invoke, resource, params = route
        event = build_event(
            method=self.command,
            path=path,
            resource=resource,
            query=query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            path_parameters=params,
            stage=self.server.stage,
        )
        try:
            result = invoke(event)
        except Exception as exc:  # noqa: BLE001 - a crashing handler is a 502 from API Gateway, not a dead server
            return _json_error(502, "internal_error", f"the handler raised {type(exc).__name__}")
        return proxy_result_to_http(result)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815
