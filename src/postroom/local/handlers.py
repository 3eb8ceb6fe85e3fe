"""Loading the real Lambda handlers from ``functions/<name>/app.py`` and invoking them as Lambda would: one
invocation at a time per function (a Lambda execution environment serves one event at a time, and Powertools'
resolver keeps per-request state in module globals), and refusing an event larger than Lambda accepts."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# Lambda's quota for a synchronous invocation's payload, which is the event serialised as JSON (not just the HTTP body
# inside it): 6 MB, refused with RequestEntityTooLargeException "Request must be smaller than 6291456 bytes for the
# InvokeFunction operation". API Gateway forwards a request up to 10 MB, so bodies between the two reach this cap.
LAMBDA_MAX_SYNC_PAYLOAD = 6 * 1024 * 1024


class RequestEntityTooLargeError(Exception):
    """Lambda's RequestEntityTooLargeException: the invocation never reached the handler."""

    def __init__(self, size: int) -> None:
        super().__init__(f"Request must be smaller than {LAMBDA_MAX_SYNC_PAYLOAD} bytes (this one is {size})")
        self.size = size


@dataclass
class LocalLambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: float = 30.0
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    def __init__(self, logical_id: str, handler_file: Path, handler_name: str, timeout: float, memory: int) -> None:
        self.logical_id = logical_id
        self.timeout = timeout
        self.memory = memory
        self._lock = threading.Lock()
        module = _load_module(f"postroom_local_fn_{logical_id.lower()}", handler_file)
        self._handler = getattr(module, handler_name)

    def invoke(self, event: dict[str, Any]) -> Any:
        # Checked before the handler runs, as Lambda does: without it a function served locally took events (a 9 MB
        # webhook body) that could never reach it on AWS.
        size = len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
        if size >= LAMBDA_MAX_SYNC_PAYLOAD:
            raise RequestEntityTooLargeError(size)
        with self._lock:
            context = LocalLambdaContext(self.logical_id, memory_limit_in_mb=self.memory, timeout_seconds=self.timeout)
            return self._handler(event, context)


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a handler from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
