"""Where the CLI's API calls go: the URL and key (flags, ``POSTROOM_URL``/``POSTROOM_KEY``, or a profile file), and
one small HTTP client over the standard library.

The profile file is ``$XDG_CONFIG_HOME/postroom/profiles.toml`` (``~/.config/postroom/profiles.toml``): one table per
profile with ``url`` and ``key``. It holds secrets, so it is written with mode 0600. The standard library reads TOML
(tomllib) and the CLI writes only two strings per profile, so no TOML writer is needed.
"""

from __future__ import annotations

import http.client
import json
import os
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from postroom import __version__

DEFAULT_PROFILE = "default"
TIMEOUT_SECONDS = 35.0  # API Gateway answers within 29 s or with a 504; a little more so its answer is what we see


class NotConfiguredError(Exception):
    """No URL or no key for the API: nothing was sent."""


class ApiUnreachableError(Exception):
    """The API could not be reached (connection refused, DNS, timeout): nothing is known about the request."""


class ApiError(Exception):
    """The API answered with an error; ``body`` is its ``{"error": {code, message, field}}``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        found = body.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        self.status = status
        self.code = str(error.get("code") or f"http_{status}")
        self.message = str(error.get("message") or f"HTTP {status}")
        self.field = error.get("field")
        self.body = body if "error" in body else {"error": {"code": self.code, "message": self.message, "field": None}}
        super().__init__(f"{self.message} ({self.code}, HTTP {status})")


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "postroom"


def profiles_path() -> Path:
    return config_dir() / "profiles.toml"


def read_profiles() -> dict[str, dict[str, str]]:
    path = profiles_path()
    if not path.is_file():
        return {}
    loaded = tomllib.loads(path.read_text())
    return {name: {k: str(v) for k, v in table.items()} for name, table in loaded.items() if isinstance(table, dict)}


def save_profile(name: str, url: str, key: str) -> Path:
    """Add or replace one profile; the others are kept as they were."""
    profiles = read_profiles()
    profiles[name] = {"url": url, "key": key}
    path = profiles_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # json.dumps of a str is a valid TOML basic string (same escapes), and table names are quoted the same way.
    text = "".join(
        f"[{json.dumps(profile)}]\nurl = {json.dumps(values['url'])}\nkey = {json.dumps(values['key'])}\n\n"
        for profile, values in sorted(profiles.items())
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)  # an existing file keeps its old mode through os.open; a key file is the user's alone
    return path


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    key: str
    source: str  # where they came from, for `postroom whoami` and error messages


def resolve_target(url: str | None, key: str | None, profile: str | None) -> Target:
    """Flags first, then the environment, then the profile (``--profile``, ``$POSTROOM_PROFILE`` or "default")."""
    name = profile or os.environ.get("POSTROOM_PROFILE") or DEFAULT_PROFILE
    stored = read_profiles().get(name, {})
    if profile and not stored:
        raise NotConfiguredError(f"no profile {name!r} in {profiles_path()} (create it with `postroom login`)")
    found_url = url or os.environ.get("POSTROOM_URL") or stored.get("url")
    found_key = key or os.environ.get("POSTROOM_KEY") or stored.get("key")
    if not found_url or not found_key:
        raise NotConfiguredError(
            "no API to talk to: set POSTROOM_URL and POSTROOM_KEY, pass --url and --key, "
            f"or save a profile with `postroom login` (read from {profiles_path()})"
        )
    source = "flags/environment" if (url or os.environ.get("POSTROOM_URL")) else f"profile {name!r}"
    return Target(url=found_url.strip().rstrip("/"), key=found_key.strip(), source=source)


class ApiClient:
    """JSON over HTTPS to the Postroom API, errors raised as :class:`ApiError` with the API's own code and field."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        pairs = [(k, v) for k, v in (query or {}).items() if v is not None]
        url = self.target.url + path + (("?" + urllib.parse.urlencode(pairs, doseq=True)) if pairs else "")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's own API (http for the local stack)
            url,
            method=method,
            data=data,
            headers={
                "Authorization": f"Bearer {self.target.key}",
                "Accept": "application/json",
                "User-Agent": f"postroom-cli/{__version__}",
                **({"Content-Type": content_type} if data is not None else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - as above
                return _decoded(response.read())
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, _decoded(error.read())) from None
        except ValueError as error:  # http.client refuses a header with a line break: a key pasted with its newline
            raise NotConfiguredError(f"the URL or key cannot be sent as given ({error.__class__.__name__})") from None
        except http.client.HTTPException as error:  # a peer that is not an HTTP server, or hung up mid-answer
            raise ApiUnreachableError(f"{self.target.url} did not answer as an HTTP API: {error!r}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ApiUnreachableError(f"cannot reach {self.target.url}: {reason}") from None


def _decoded(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"error": {"code": "not_json", "message": raw[:200].decode(errors="replace"), "field": None}}
    return value if isinstance(value, dict) else {"data": value}


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (errors too) instead of tables.")]


class Connection:
    """The root options, kept until a command needs the API (so `--help` never needs a key)."""

    def __init__(self, url: str | None, key: str | None, profile: str | None) -> None:
        self.url, self.key, self.profile = url, key, profile

    def client(self) -> ApiClient:
        return ApiClient(resolve_target(self.url, self.key, self.profile))


def api(ctx: typer.Context) -> ApiClient:
    connection = ctx.find_object(Connection)
    return (connection or Connection(None, None, None)).client()
