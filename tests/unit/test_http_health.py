"""The dashboard's /healthz is open to anyone; on a hub with credentials its change counter
(`version`) is for callers with credentials only. It counted every change the hub applied, so
whoever reached the port, without any credential, watched how busy the city's reporting was
and when (security probe)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from duhub.auth.principal import user
from duhub.auth.tokens import append_token
from duhub.bootstrap import Hub, HubConfig


def _healthz(hub: Hub, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    assert hub.dashboard is not None
    conn = http.client.HTTPConnection(hub.dashboard.host, hub.dashboard.port, timeout=10)
    try:
        conn.request("GET", "/healthz", headers=headers or {})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def _hub(data: Path, tokens: str = "") -> Iterator[Hub]:
    hub = Hub(HubConfig(data, listen="127.0.0.1:0", http="127.0.0.1:0", tokens=tokens))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop(grace=0)


def test_healthz_tells_anyone_the_hub_is_up_and_only_callers_with_credentials_its_counter(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens"
    token = append_token(tokens, user("al", "420581"))
    for hub in _hub(tmp_path / "hub", str(tokens)):
        assert _healthz(hub) == (200, {"status": "SERVING"})
        # A token the hub does not know is no credential either.
        assert _healthz(hub, {"Authorization": "Bearer duhub_nope"}) == (200, {"status": "SERVING"})
        for given in ({"Authorization": f"Bearer {token}"}, {"Cookie": f"duhub_token={token}"}):
            status, body = _healthz(hub, given)
            assert status == 200 and body["status"] == "SERVING"
            assert isinstance(body["version"], int), given
    # A hub without credentials answers only local callers: they are told it, as before.
    for hub in _hub(tmp_path / "open"):
        status, body = _healthz(hub)
        assert status == 200 and isinstance(body["version"], int)
