"""`/ui/`: a browser view of instances: the list, and one instance's DAG coloured by node state, live.

The pages are static HTML and JavaScript (no build step, nothing from a CDN) that read the JSON API:
the definition for the graph, `/events` (Server-Sent Events) for live changes, and `/nodes` and
`/status` by polling when the event stream is not available.

With `ORCH_API_TOKENS` set, the pages send the browser to `/ui/login` first: a form whose token is
posted as JSON (never in a URL, so never in an access log) and answered with the session cookie
(`api/auth.py`): `HttpOnly` (no script reads it), `SameSite=Strict`, `Secure` when served over https,
path `/` so that the API's reads, `EventSource` included, carry it. `/ui/logout` clears it.
Both take JSON only: a cross-site form cannot post JSON, so no other site can sign a browser in or out.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.wrappers import Response as Redirect

from api import auth
from api.errors import error_response
from api.gunicorn_conf import SECRET_NAME

bp = Blueprint(
    "ui",
    __name__,
    url_prefix="/ui",
    static_folder="static/ui",
    static_url_path="/static",
    template_folder="templates",
)


def _page(template: str, **values: str) -> str | Redirect:
    if not auth.signed_in():
        # back here after signing in, without any secret-looking parameter (an old `?token=` link)
        kept = [(k, v) for k, v in request.args.items(multi=True) if not SECRET_NAME.search(k)]
        target = request.path + ("?" + urlencode(kept) if kept else "")
        return redirect(url_for("ui.login_page") + "?next=" + quote(target, safe="/"), code=303)
    return render_template(template, signed_in=bool(auth.tokens()), **values)


@bp.get("/")
def instance_list() -> str | Redirect:
    return _page("ui/instances.html")


@bp.get("/instances/<instance_id>")
def instance_page(instance_id: str) -> str | Redirect:
    return _page("ui/instance.html", instance_id=instance_id)


@bp.get("/login")
def login_page() -> str | Redirect:
    if not auth.tokens():
        return redirect(url_for("ui.instance_list"), code=303)  # an open API has nothing to sign in to
    return render_template("ui/login.html")


def _json_object() -> dict[str, object]:
    if not request.is_json:
        raise UnsupportedMediaType("send the form as application/json")
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


@bp.post("/login")
def login() -> Response:
    """`{"token": "..."}` -> 204 with the session cookie; 401 for a token that is not configured."""
    token = _json_object().get("token")
    configured = auth.tokens()
    if not configured or not isinstance(token, str) or not configured.matches(token):
        return error_response(401, "UNAUTHORIZED", "that token is not one of ORCH_API_TOKENS")
    response = Response(status=204)
    response.set_cookie(
        auth.COOKIE,
        configured.session(token),
        max_age=auth.SESSION_S,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    return response


@bp.post("/logout")
def logout() -> Response:
    _json_object()
    response = Response(status=204)
    response.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="Strict", secure=request.is_secure)
    return response
