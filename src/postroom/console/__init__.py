"""The web console's static files (``/console``): HTML, JavaScript and CSS shipped as package data, no build step.

The files are public (they hold no data); everything they show comes from the HTTP API, called by the page with the
API key the user typed, kept in sessionStorage and sent as a Bearer header, so no cookie can carry a forged request.
"""

from __future__ import annotations

from importlib import resources

# Asset name → media type. Only these names are served, so the public path set is fixed and known to the gate.
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

# No inline script anywhere; mail HTML lives only in a sandboxed srcdoc iframe (which inherits this policy, so remote
# images stay blocked there until the viewer asks for them, see console.js). Inline *style* is allowed because the
# srcdoc frame inherits this policy and mail is styled inline (the template preview must look like the mail); it
# runs nothing, the console writes no markup from data (textContent only), and CSS url()s still obey img-src.
# frame-ancestors: no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data: https:; "
    "frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def asset(name: str) -> bytes | None:
    """The bytes of one known asset, or None for any other name."""
    if name not in ASSETS:
        return None
    return resources.files(__package__).joinpath("static", name).read_bytes()
