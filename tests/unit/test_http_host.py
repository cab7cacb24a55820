"""A hub without credentials answers only requests addressed to a loopback name: a web page
the operator opened could point a name of its own at 127.0.0.1 (DNS rebinding) and read every
figure through the operator's browser (security probe, 2026-12-06)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from duhub.bootstrap import Hub, HubConfig


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(HubConfig(tmp_path_factory.mktemp("host"), listen="127.0.0.1:0", http="127.0.0.1:0"))
    h.start()
    h.tailer.catch_up()  # the city registered: its statistics are answered, not 404
    try:
        yield h
    finally:
        h.stop(grace=0)


def ask(hub: Hub, path: str, host: str | None) -> tuple[int, dict]:  # type: ignore[type-arg]
    assert hub.dashboard is not None
    conn = http.client.HTTPConnection(hub.dashboard.host, hub.dashboard.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        reply = conn.getresponse()
        body = reply.read()
        return reply.status, json.loads(body) if body.startswith(b"{") else {}
    finally:
        conn.close()


@pytest.mark.parametrize("host", ["attacker.example:8080", "127.0.0.1.nip.io", "10.0.0.7:80", ""])
@pytest.mark.parametrize("path", ["/api/statistics?metric=visits", "/api/campaigns", "/"])
def test_a_request_for_another_name_is_refused_naming_the_host(
    hub: Hub, host: str, path: str
) -> None:
    status, body = ask(hub, path, host)
    assert status == 421, (status, body)
    assert body["error"].startswith(f"host: {host!r} is not a loopback name"), body


LOOPBACK = ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}", "[::1]", None]


@pytest.mark.parametrize("host", LOOPBACK)
def test_a_request_for_a_loopback_name_is_answered(hub: Hub, host: str | None) -> None:
    assert hub.dashboard is not None
    named = None if host is None else host.format(port=hub.dashboard.port)
    assert ask(hub, "/api/statistics?metric=visits", named)[0] == 200


def test_every_answer_carries_the_pages_security_headers(hub: Hub) -> None:
    # None was sent: the page could be framed by another (clickjacking), and nothing kept it
    # from running a script from elsewhere (security probe).
    assert hub.dashboard is not None
    for path in ("/", "/app.js", "/api/campaigns", "/api/nothing"):
        conn = http.client.HTTPConnection(hub.dashboard.host, hub.dashboard.port, timeout=10)
        conn.request("GET", path)
        reply = conn.getresponse()
        reply.read()
        conn.close()
        policy = reply.getheader("Content-Security-Policy") or ""
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert reply.getheader("X-Content-Type-Options") == "nosniff", path
        assert reply.getheader("X-Frame-Options") == "DENY", path
