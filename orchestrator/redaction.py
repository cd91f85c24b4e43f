"""Redacting URLs before they are shown or logged: a callback URL is stored with its credentials (it
must be called with them), but every view, log line and error message gets it through here.

What is hidden: the password of the userinfo (`user:***@`), the value of every query parameter
(`?apikey=***`) and the fragment. The scheme, host, port, path and parameter names stay, so an
operator can still tell which endpoint is meant. A secret carried in the path itself cannot be told
from an ordinary path segment and is not hidden.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# an absolute URL, or a path with a query string (how urllib3 names a request in its errors)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+|/[^\s'\"<>?]*\?[^\s'\"<>]*")
_QUERY_VALUE = re.compile(r"(^|[&;])([^&;=]*)=[^&;]*")


def redact_url(url: str) -> str:
    """`url` with its userinfo password, query values and fragment replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:  # not a URL we can take apart: show none of it rather than all of it
        return MASK
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = _QUERY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}", parts.query)
    if query and "=" not in parts.query:
        query = MASK  # a bare query (`?s3cr3t`) is a value too
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str) -> str:
    """`text` (an exception's message, say) with every URL in it redacted by `redact_url`."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
