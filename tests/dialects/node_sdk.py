"""Running a Node script of tests/sdk/node (an official provider SDK) against the local stack.

Each script reads a JSON list of calls on its standard input and prints one JSON line per call; .ci/run installs the
SDKs with ``npm ci`` from the lock file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from postroom.local.stack import LocalStack

NODE_DIR = Path(__file__).resolve().parents[1] / "sdk" / "node"


def run_node(script: str, package: str, stack: LocalStack, calls: list[dict[str, Any]],
             env: dict[str, str] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    node = shutil.which("node")
    assert node, "Node 20 is needed for the Node SDK tests"
    assert (NODE_DIR / "node_modules" / package).is_dir(), "run `npm ci` in tests/sdk/node (.ci/run does)"
    result = subprocess.run(
        [node, script],
        cwd=NODE_DIR,
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(Path(node).parent), "POSTROOM_URL": stack.api_url,
             "POSTROOM_HOST": urlsplit(stack.api_url).netloc, "POSTROOM_TOKEN": stack.api_key, **(env or {})},
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
