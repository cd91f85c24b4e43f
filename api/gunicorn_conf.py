"""gunicorn's configuration for `orchestrator api`: how the API is served, whatever the bind and worker count.

`orchestrator api` passes this file by its path (`gunicorn -c <path>/gunicorn_conf.py api.wsgi:app`), so
the gunicorn master reads it without importing the `api` package: the app, Flask and SQLAlchemy are
first imported in each worker, after gevent has patched it. This file imports only the standard library
and gunicorn.

Why gevent workers: an event stream (`/api/v1/instances/<id>/events`) is open for as long as an
instance runs and a client that sends its request slowly holds its connection too. With threads
(`gthread`) each of them takes one of a few request threads, and 16 streams or 40 half-sent requests
left nothing for `/health` or a create. A gevent worker serves each connection in a greenlet and
switches at every socket wait and every `time.sleep` (the stream's poll interval): pymysql and
redis-py are pure-Python sockets, and SQLAlchemy's pool and kombu's locks are the patched `threading`
ones, so nothing of ours blocks the loop on I/O. What still does is CPU work: a request that computes
for a second (a large definition's validation) delays the other requests of its process for that
second, as the GIL would, and the other worker processes answer meanwhile.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

worker_class = "gevent"
# connections one worker process holds at once (streams, idle keep-alive, requests being read)
worker_connections = 1000
# Seconds a connection may take to send its request line and headers, and to stay idle between two
# requests: gunicorn's gevent worker reads every request's head under this timeout, so a client that
# never finishes its headers is dropped. Above the proxy's upstream keepalive (deploy/nginx.conf).
keepalive = 10
# On SIGTERM a worker stops accepting and waits this long for open connections before closing them:
# event streams never end by themselves (their clients reconnect elsewhere), and compose sends SIGKILL
# after 10 s, so wait a little less than that.
graceful_timeout = 8
accesslog = "-"
# gunicorn 27's control socket (for `gunicornc`) sits at one path per user: nothing here uses it, and
# two servers on one host (several APIs, tests) would fight over it
control_socket_disable = True

# Query parameters whose value is never written to the access log: the product reads none of them
# from a URL, but a client may still send one (an old bookmark with `?token=`). Their separators may be
# percent-encoded too: a URL inside a parameter (`?next=%2Fui%2F%3Ftoken%3D...`).
SECRET_NAME = re.compile(r"token|secret|password|passwd|api_?key|auth", re.I)
_SEP, _EQ = r"(?:[?&]|%3F|%26)", r"(?:=|%3D)"
_NAME = rf"[^=&\s%]*(?:{SECRET_NAME.pattern})[^=&\s%]*"
_SECRET_PARAM = re.compile(rf"({_SEP}{_NAME}{_EQ})(?:(?!%26)[^&\s])*", re.I)
_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{proxy-authorization}i", "{set-cookie}o")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` (a URL, a query string or a request line) with the values of secret-looking parameters
    replaced by `[redacted]`."""
    bare = "?" not in text  # a query string without its `?` (the `q` atom)
    redacted = _SECRET_PARAM.sub(r"\1" + REDACTED, "?" + text if bare else text)
    return redacted[1:] if bare else redacted


class RedactingLogger(Logger):
    """gunicorn's logger, with secrets taken out of every access-log atom that could hold one: the
    request line, the query string, the referer, and the credential headers if a format names them."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in ("r", "q", "f"):
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        for key in _SECRET_HEADERS:
            if key in atoms:
                atoms[key] = REDACTED
        return atoms


logger_class = RedactingLogger
