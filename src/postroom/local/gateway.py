"""An HTTP server on loopback that does what API Gateway (REST API, Lambda proxy integration) does: match the route
declared in template.yaml, turn the request into a proxy event, invoke the *same* handler, and turn the proxy result
back into an HTTP response.

Where API Gateway answers by itself, no Postroom code runs, so those answers are API Gateway's own ("gateway
responses": ``{"message": ...}`` named in ``x-amzn-ErrorType``), not Postroom's error shape, and the local gateway
gives the same ones (docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html):

- a method or path that template.yaml does not map, whatever the method (``TRACE``, ``HEAD`` on a GET route, a made-up
  token): 403 ``{"message":"Missing Authentication Token"}`` (MISSING_AUTHENTICATION_TOKEN: "a client attempts to
  invoke an unsupported API method or resource");
- a body over 10 MB, and an event Lambda refuses as larger than its 6 MB synchronous payload (a body between the two,
  or one that base64 inflates past it): 413 ``{"message": "Request Too Long"}``, as a REST API answers when Lambda
  returns RequestEntityTooLargeException (observed: github.com/koki-develop/lgtm-generator/issues/10);
- a handler that raises, or returns something that is not a proxy result: 502 ``{"message": "Internal server error"}``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from postroom.local.handlers import RequestEntityTooLargeError

log = logging.getLogger("postroom.local")

# API Gateway refuses request bodies over 10 MB before any Lambda runs.
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
GATEWAY_ERROR_HEADER = "x-amzn-ErrorType"  # set by API Gateway on the answers it gives itself

Invoke = Callable[[dict[str, Any]], Any]
Resolver = Callable[[str, str], tuple[Invoke, str, dict[str, str]] | None]
Answer = tuple[int, dict[str, str], bytes]


def _json_error(status: int, code: str, message: str) -> Answer:
    body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
    return status, {"Content-Type": "application/json"}, body


def gateway_response(status: int, error_type: str, message: str) -> Answer:
    """An answer API Gateway gives without invoking any function."""
    body = json.dumps({"message": message}).encode()
    return status, {"Content-Type": "application/json", GATEWAY_ERROR_HEADER: error_type}, body


def missing_authentication_token() -> Answer:
    return gateway_response(403, "MissingAuthenticationTokenException", "Missing Authentication Token")


def request_too_long() -> Answer:
    return gateway_response(413, "BadRequestException", "Request Too Long")


def internal_server_error() -> Answer:
    return gateway_response(502, "InternalServerErrorException", "Internal server error")


def invoke_proxy(invoke: Invoke, event: dict[str, Any]) -> Answer:
    """Invoke a function with a proxy event and answer as API Gateway does with what comes back."""
    try:
        result = invoke(event)
    except RequestEntityTooLargeError:
        return request_too_long()
    except Exception:
        # A crashing handler is API Gateway's 502, not a dead server. The caller learns nothing more than on AWS; the
        # traceback goes where Lambda's would, to the log.
        log.exception("the handler for %s %s raised", event.get("httpMethod"), event.get("path"))
        return internal_server_error()
    return proxy_result_to_http(result)


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


def proxy_result_to_http(result: Any) -> Answer:
    if not isinstance(result, dict) or "statusCode" not in result:
        return internal_server_error()  # "Malformed Lambda proxy response", in API Gateway's execution log
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
        return f"http://{host!s}:{port}"


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

    def __getattr__(self, name: str) -> Any:
        # The stdlib serves only the methods it finds a do_<METHOD> for and answers any other (TRACE, CONNECT, a
        # made-up token) with a 501 HTML page; API Gateway answers every method through its route table, where an
        # unmapped one is 403 Missing Authentication Token.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

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

    def _dispatch(self, path: str, query: str) -> Answer:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            return _json_error(411, "length_required", "send a Content-Length; chunked bodies are not accepted")
        length = int(length_header) if length_header and length_header.isdigit() else 0
        if length > API_GATEWAY_MAX_BODY:
            self.close_connection = True  # the body is not read, so the connection cannot be reused
            return request_too_long()
        body = self.rfile.read(length) if length else b""
        route = self.server.resolve_route(self.command, path)
        if route is None:
            return missing_authentication_token()
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
        return invoke_proxy(invoke, event)
