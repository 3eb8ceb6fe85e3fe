"""The package stays `mypy --strict` clean: part of the suite, next to the ruff check in test_quality.py.

The configuration (strict mode, the untyped third-party modules, the bridge's override) lives in `[tool.mypy]` in
pyproject.toml, so running `mypy` by hand checks exactly what this test checks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_is_clean() -> None:
    # GIVEN the [tool.mypy] section of pyproject.toml (files = src/postroom, strict = true)
    # WHEN mypy runs over the package
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--config-file", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    # THEN it reports no error at all
    assert result.returncode == 0, result.stdout + result.stderr
