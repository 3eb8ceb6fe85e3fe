"""A sanitized variant of received HTML, safe to put into a page: Ammonia (through nh3) with an allow-list.

Scripts, event handlers, forms, frames, ``style`` and ``javascript:`` URLs go; links get ``rel="noopener noreferrer"``.
``cid:`` URLs stay so a client can resolve inline images from the attachment list. Remote images are kept (hiding
them for privacy is a display decision the client makes).
"""

from __future__ import annotations

import nh3

URL_SCHEMES = frozenset({"http", "https", "mailto", "cid", "tel"})


def sanitize_html(html: str) -> str:
    return nh3.clean(html, url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer")
