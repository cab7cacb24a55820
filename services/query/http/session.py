"""The dashboard's sign-in: a page hands its token to the hub once, and the hub keeps it in a
cookie that no script can read.

The page wrote the token into the `duhub_token` cookie itself (`document.cookie`), so any
script running in the page's origin could read it. Now the page sends it once, in an
`Authorization: Bearer` header, to `POST /api/session`; the hub checks it and sets the cookie
HttpOnly, SameSite=Strict (and Secure over TLS). `DELETE /api/session` forgets it; `GET` says
who the caller is and whether it sent the cookie. Scripts keep sending the header instead.

No other site's page can sign a browser in or out: a request carrying an Authorization
header, or a DELETE, needs a CORS preflight, which the hub refuses (405).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from duhub.auth.principal import Principal, Unauthenticated
from services.auth.guard import TOKEN_COOKIE, Security, bearer_token, cookie_token

PATH = "/api/session"
METHODS = "GET, HEAD, POST, DELETE"
# The cookie's attributes: sent to every path of the origin (the event stream included), on
# requests from the origin's own pages only, and never shown to a script.
ATTRIBUTES = "Path=/; HttpOnly; SameSite=Strict"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def cookie(token: str, secure: bool) -> str:
    """Return the Set-Cookie value keeping `token` (Secure when served over TLS)."""
    return f"{TOKEN_COOKIE}={token}; {ATTRIBUTES}" + ("; Secure" if secure else "")


def expired(secure: bool) -> str:
    """Return the Set-Cookie value that makes a browser forget the cookie."""
    return f"{TOKEN_COOKIE}=; Max-Age=0; {ATTRIBUTES}" + ("; Secure" if secure else "")


def whoami(caller: Principal, headers: Mapping[str, str]) -> dict[str, Any]:
    """GET: who the caller is, and whether it sent the cookie (the page offers to forget it)."""
    return {"principal": caller.uri, "cookie": bool(cookie_token(headers))}


def sign_in(security: Security, headers: Mapping[str, str], secure: bool) -> Answer:
    """POST: check the bearer token of the request and keep it in the cookie; a token missing,
    unknown or revoked is answered 401 saying so, and nothing is set."""
    if security.tokens is None:
        why = "this hub takes no tokens (started without --tokens): nothing to keep"
        return Answer(HTTPStatus.BAD_REQUEST, {"error": f"authorization: {why}"})
    token = bearer_token(headers)
    if not token:
        why = "send the token to keep as 'Authorization: Bearer TOKEN'"
        return _unauthorized(why)
    try:
        caller = security.token_principal(token)
    except Unauthenticated as e:
        return _unauthorized(str(e))
    return Answer(
        HTTPStatus.OK,
        {"principal": caller.uri, "cookie": True},
        {"Set-Cookie": cookie(token, secure)},
    )


def sign_out(secure: bool) -> Answer:
    """DELETE: forget the cookie. Anyone may: it takes nothing but the caller's own cookie."""
    return Answer(HTTPStatus.OK, {"cookie": False}, {"Set-Cookie": expired(secure)})


def _unauthorized(why: str) -> Answer:
    return Answer(
        HTTPStatus.UNAUTHORIZED,
        {"error": f"authorization: {why}"},
        {"WWW-Authenticate": 'Bearer realm="duhub"'},
    )
