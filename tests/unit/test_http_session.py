"""The dashboard's sign-in: the page hands its token to the hub, which keeps it in an HttpOnly
cookie. Before, the page wrote the `duhub_token` cookie itself (document.cookie), so any script
running in its origin could read the token."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from duhub.auth.principal import user
from duhub.auth.tokens import append_token
from duhub.bootstrap import Hub, HubConfig
from services.query.http.session import cookie

Reply = tuple[int, http.client.HTTPMessage, Any]


class Signed:
    def __init__(self, hub: Hub, token: str) -> None:
        assert hub.dashboard is not None
        self.host, self.port = hub.dashboard.host, hub.dashboard.port
        self.token = token

    def ask(self, method: str, path: str, headers: dict[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            reply = conn.getresponse()
            return reply.status, reply.headers, json.loads(reply.read() or b"null")
        finally:
            conn.close()


def _hub(data: Path, tokens: str = "") -> Hub:
    hub = Hub(HubConfig(data, listen="127.0.0.1:0", http="127.0.0.1:0", tokens=tokens))
    hub.start()
    return hub


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    token = append_token(tokens, user("al", "420581"))
    hub = _hub(tmp_path_factory.mktemp("hub"), str(tokens))
    try:
        yield Signed(hub, token)
    finally:
        hub.stop(grace=0)


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Authorization": "Bearer duhub_nope"}, "unknown or revoked token"),
        ({}, "send the token to keep as 'Authorization: Bearer TOKEN'"),
        # A cookie is no token to keep: only the header is checked.
        ({"Cookie": "duhub_token=duhub_nope"}, "send the token to keep"),
    ],
)
def test_a_wrong_or_missing_token_is_refused_saying_why_and_no_cookie_is_set(
    signed: Signed, headers: dict[str, str], why: str
) -> None:
    status, reply, body = signed.ask("POST", "/api/session", headers)
    assert status == 401
    assert body["error"].startswith(f"authorization: {why}")
    assert reply["Set-Cookie"] is None
    assert reply["WWW-Authenticate"] == 'Bearer realm="duhub"'


def test_the_right_token_is_kept_in_an_httponly_cookie_that_then_authorizes(
    signed: Signed,
) -> None:
    assert signed.ask("GET", "/api/campaigns")[0] == 401
    status, reply, body = signed.ask(
        "POST", "/api/session", {"Authorization": f"Bearer {signed.token}"}
    )
    assert status == 200
    assert body == {"principal": "duhub:user:420581:al", "cookie": True}
    assert reply["Set-Cookie"] == f"duhub_token={signed.token}; Path=/; HttpOnly; SameSite=Strict"
    jar = {"Cookie": reply["Set-Cookie"].split(";")[0]}
    status, _, body = signed.ask("GET", "/api/campaigns", jar)
    assert status == 200 and "campaigns" in body
    assert signed.ask("GET", "/api/session", jar)[2] == {
        "principal": "duhub:user:420581:al",
        "cookie": True,
    }
    # Scripts keep sending the header on every request.
    header = {"Authorization": f"Bearer {signed.token}"}
    assert signed.ask("GET", "/api/campaigns", header)[0] == 200
    assert signed.ask("GET", "/api/session", header)[2]["cookie"] is False


def test_signing_out_forgets_the_cookie(signed: Signed) -> None:
    status, reply, body = signed.ask("DELETE", "/api/session")
    assert status == 200 and body == {"cookie": False}
    assert reply["Set-Cookie"] == "duhub_token=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"


def test_no_other_sites_page_may_sign_in_nor_out(signed: Signed) -> None:
    # A cross-site request with an Authorization header, or a DELETE, is preflighted with
    # OPTIONS: refused, the browser never sends it.
    status, reply, body = signed.ask(
        "OPTIONS",
        "/api/session",
        {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert status == 405 and reply["Access-Control-Allow-Origin"] is None
    assert reply["Allow"] == "GET, HEAD, POST, DELETE"
    # Other routes take no POST.
    assert signed.ask("POST", "/api/campaigns")[0] == 405


def test_a_session_request_with_a_parameter_is_refused_naming_it(signed: Signed) -> None:
    status, _, body = signed.ask(
        "POST", "/api/session?token=x", {"Authorization": f"Bearer {signed.token}"}
    )
    assert status == 400 and body["error"].startswith("token: unknown parameter")


def test_a_hub_without_tokens_keeps_none(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    try:
        client = Signed(hub, "")
        status, reply, body = client.ask("POST", "/api/session", {"Authorization": "Bearer x"})
        assert status == 400 and "takes no tokens" in body["error"]
        assert reply["Set-Cookie"] is None
        assert client.ask("GET", "/api/session")[2] == {"principal": "duhub:local", "cookie": False}
    finally:
        hub.stop(grace=0)


def test_over_tls_the_cookie_is_secure() -> None:
    assert cookie("t", secure=True).endswith("; HttpOnly; SameSite=Strict; Secure")
