"""End to end: credentials made by `duhub certs`, real TLS, real `duhub up` processes.

Three hubs: mutual TLS; bearer tokens on plain loopback; TLS with tokens and the simulator
(which reaches its hub over the private socket). Each is started once for the module.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.e2e.hubproc import DUHUB, HubProcess

CITY, YIDU, ZHIJIANG = "420500", "420581", "420582"
AUTH_ENV = ("DUHUB_TOKEN", "DUHUB_TLS_DIR", "DUHUB_CERT", "DUHUB_TARGET")
DASHBOARD = re.compile(r"dashboard:\s+(https?://\S+/)")
SEQ = itertools.count(1)
IDS = itertools.count(1)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in AUTH_ENV}
    return subprocess.run(
        [DUHUB, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **(env or {})},
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    for args in (
        ["init"],
        ["server", "--host", "127.0.0.1", "--host", "localhost"],
        ["node", "--source", YIDU],
        ["node", "--source", CITY],
        ["user", "--name", "alice", "--scope", YIDU],
        ["user", "--name", "boss", "--scope", CITY],
    ):
        done = run("certs", args[0], "--dir", str(d), *args[1:])
        assert done.returncode == 0, done.stderr
    return d


@pytest.fixture(scope="module")
def tokens(pki: Path) -> dict[str, str]:
    out = {}
    for name, who in (
        ("node", ["--node", YIDU]),
        ("city", ["--node", CITY]),
        ("bob", ["--user", "bob", "--scope", ZHIJIANG]),
        ("boss", ["--user", "boss", "--scope", CITY]),
    ):
        done = run("certs", "token", "--dir", str(pki), *who)
        assert done.returncode == 0, done.stderr
        out[name] = done.stdout.strip()
    return out


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[HubProcess]:
    data = tmp_path_factory.mktemp("mtls") / "data"
    hub = HubProcess(data, "--tls-dir", str(pki))
    hub.log_file = data / "events.log"  # type: ignore[attr-defined]
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def token_hub(
    tmp_path_factory: pytest.TempPathFactory, pki: Path, tokens: dict[str, str]
) -> Iterator[HubProcess]:
    hub = HubProcess(tmp_path_factory.mktemp("tok") / "data", "--tokens", str(pki / "tokens"))
    yield hub
    hub.stop()


def line(source: str, at: str = "2022-11-05T00:00:00Z", **payload: object) -> str:
    event = {
        "eventId": f"auth-{next(IDS)}",
        "source": source,
        "seq": str(next(SEQ)),
        "occurredAt": at,
        **payload,
    }
    return json.dumps(event, ensure_ascii=False)


def sanction(source: str, unit: str, persons: int = 1) -> str:
    return line(source, sanctionImposed={"unitId": unit, "area": "ecology", "persons": persons})


def publish(hub: HubProcess, tmp: Path, lines: list[str], *cred: str, env=None):  # type: ignore[no-untyped-def]
    f = tmp / f"events-{next(IDS)}.jsonl"
    f.write_text("\n".join(lines) + "\n")
    box = tmp / f"outbox-{next(IDS)}.db"
    return run(
        "publish",
        str(f),
        "--target",
        hub.address,
        "--outbox",
        str(box),
        "--retry-for",
        "0",
        "--wait",
        "20",
        *cred,
        env=env,
    )


def stats(hub: HubProcess, *args: str, env=None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return run("query", "stats", "--target", hub.address, "--json", *args, env=env)


def sanctioned(hub: HubProcess, *cred: str, env=None) -> int:  # type: ignore[no-untyped-def]
    done = stats(hub, "--metric", "sanctioned_persons", *cred, env=env)
    assert done.returncode == 0, done.stderr
    return int(json.loads(done.stdout)["rows"][0]["values"]["sanctioned_persons"])


def secure_stub(hub: HubProcess, pki: Path, cert: str | None) -> query_pb2_grpc.QueryServiceStub:
    key = pem = None
    if cert:
        pem, key = (pki / f"{cert}.crt").read_bytes(), (pki / f"{cert}.key").read_bytes()
    creds = grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes(), key, pem)
    return query_pb2_grpc.QueryServiceStub(grpc.secure_channel(hub.address, creds))


# ---- mutual TLS -----------------------------------------------------------------------------


def test_a_node_publishes_as_itself(mtls: HubProcess, pki: Path, tmp_path: Path) -> None:
    assert any("security:               mutual TLS" in x for x in mtls.output)
    node = ("--tls-dir", str(pki), "--cert", "node-420581")
    boss = ("--tls-dir", str(pki), "--cert", "boss")
    before = sanctioned(mtls, *boss)
    done = publish(mtls, tmp_path, [sanction(YIDU, "420581101", 3)], *node)
    assert done.returncode == 0, done.stderr
    assert "1 accepted" in done.stdout
    assert sanctioned(mtls, *boss) == before + 3


def test_impersonation_is_denied_and_nothing_is_appended(
    mtls: HubProcess, pki: Path, tmp_path: Path
) -> None:
    node = ("--tls-dir", str(pki), "--cert", YIDU)
    boss = ("--tls-dir", str(pki), "--cert", "boss")
    log: Path = mtls.log_file  # type: ignore[attr-defined]
    size, before = log.stat().st_size, sanctioned(mtls, *boss)
    mine, theirs = sanction(YIDU, YIDU, 5), sanction(ZHIJIANG, ZHIJIANG, 7)
    done = publish(mtls, tmp_path, [mine, theirs], *node)
    assert done.returncode == 5, done.stderr
    assert "PERMISSION_DENIED" in done.stderr
    assert "events[1].source: node 420581 publishes only as '420581', not as '420582'" in (
        done.stderr
    )
    # Nothing of the request reached the log, not even its valid first event.
    assert log.stat().st_size == size
    assert sanctioned(mtls, *boss) == before
    again = publish(mtls, tmp_path, [mine], *node)
    assert again.returncode == 0 and "1 accepted, 0 duplicate" in again.stdout, again.stderr
    assert log.stat().st_size > size


def test_a_foreign_unit_is_a_per_event_rejection(
    mtls: HubProcess, pki: Path, tmp_path: Path
) -> None:
    node = ("--tls-dir", str(pki), "--cert", YIDU)
    done = publish(mtls, tmp_path, [sanction(YIDU, YIDU), sanction(YIDU, ZHIJIANG)], *node)
    assert done.returncode == 1, done.stderr
    assert "1 accepted, 0 duplicate, 1 rejected" in done.stdout
    assert "unit '420582' lies outside the source's 420581" in done.stdout


def test_a_refused_publish_holds_back_only_the_event_it_names(
    mtls: HubProcess, pki: Path, tmp_path: Path
) -> None:
    """宜都市's node: two events wait in its outbox (the link was down); the next file has a
    typo in one line's source (420851). The hub refuses that request whole, as it must, but
    the outbox marked every event of it rejected: the two that waited and the file's good line
    too, so a publish of the mended file sent only its own line, and the two were never sent
    (outbox status: 4 rejected). A user's credentials, which may not publish at all, likewise
    left the events rejected, not waiting for the right ones."""
    node = ("--tls-dir", str(pki), "--cert", YIDU)
    box = str(tmp_path / "outbox.db")
    log: Path = mtls.log_file  # type: ignore[attr-defined]

    def send(lines: list[str], *args: str) -> subprocess.CompletedProcess[str]:
        f = tmp_path / f"events-{next(IDS)}.jsonl"
        f.write_text("\n".join(lines) + "\n")
        return run("publish", str(f), "--outbox", box, "--wait", "20", *args)

    def held() -> dict[str, int]:
        done = run("outbox", "status", "--outbox", box, "--json")
        assert done.returncode in (0, 1), done.stderr  # 1: it holds rejected events
        counts = json.loads(done.stdout)
        return {k: counts[k] for k in ("pending", "accepted", "rejected")}

    waiting = [sanction(YIDU, YIDU, 1), sanction(YIDU, YIDU, 2)]
    done = send(waiting, "--target", "127.0.0.1:1", "--retry-for", "0", *node)
    assert done.returncode == 3, done.stderr
    before, size = sanctioned(mtls, *node), log.stat().st_size
    good, typo = sanction(YIDU, YIDU, 4), sanction("420851", YIDU, 8)
    done = send([good, typo], "--target", mtls.address, "--retry-for", "0", *node)
    assert done.returncode == 5, done.stderr
    assert "not as '420851'; nothing of this request was appended" in done.stderr
    assert log.stat().st_size == size  # the hub refused the request whole
    assert held() == {"pending": 3, "accepted": 0, "rejected": 1}
    assert "3 events wait in the outbox" in done.stderr
    done = send([good], "--target", mtls.address, "--retry-for", "0", *node)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sanctioned(mtls, *node) == before + 1 + 2 + 4
    # A user may not publish: the events wait for a node's credentials.
    user = ("--tls-dir", str(pki), "--cert", "alice")
    late = sanction(YIDU, YIDU, 16)
    done = send([late], "--target", mtls.address, "--retry-for", "0", *user)
    assert done.returncode == 5, done.stderr
    assert held()["pending"] == 1
    done = run("outbox", "retry", "--outbox", box, "--target", mtls.address, *node)
    assert done.returncode == 1, done.stdout + done.stderr  # the typo's line stays rejected
    assert held() == {"pending": 0, "accepted": 4, "rejected": 1}
    assert sanctioned(mtls, *node) == before + 1 + 2 + 4 + 16


def test_a_refused_publish_says_by_line_what_it_held_back_and_what_waits(
    mtls: HubProcess, pki: Path, tmp_path: Path
) -> None:
    """宜都市's node publishes a file whose third line names another source (a typo) and whose
    second is no JSON: the hub refuses the request whole. publish printed nothing on stdout,
    with --json neither (a script read nothing), named the typo only as `events[1]` of the
    request, not by its line, left the unreadable line unsaid, and told the node, which may
    send the good line, that it waits for "credentials that may send them"."""
    node = ("--tls-dir", str(pki), "--cert", YIDU)
    f = tmp_path / "typo.jsonl"
    f.write_text("\n".join([sanction(YIDU, YIDU, 1), "garbage", sanction("420851", YIDU)]) + "\n")
    box = str(tmp_path / "outbox.db")
    publish = ("publish", str(f), "--outbox", box, "--target", mtls.address, "--retry-for", "0")
    done = run(*publish, *node)
    assert done.returncode == 5, done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0]
        == f"{f}: not sent, the hub refused the request: 0 accepted, 0 duplicate, 2 rejected"
    )
    assert lines[1].startswith("  line 2: not a duhub.v1.Event in canonical JSON")
    assert lines[2].startswith("  line 3 (auth-") and "not as '420851'" in lines[2], lines
    assert "1 events wait in the outbox" in done.stderr
    assert "the next 'duhub publish' or 'duhub outbox retry' sends them" in done.stderr
    assert "with credentials" not in done.stderr
    done = run(*publish, "--json", *node)
    assert done.returncode == 5, done.stderr
    out = json.loads(done.stdout)
    assert (out["accepted"], out["rejected"], out["pending"]) == (0, 2, 1), out
    assert [r["line"] for r in out["rejections"]] == [2, 3]
    # A user may not publish at all: every line waits for a node's credentials, said so.
    done = run(*publish, "--tls-dir", str(pki), "--cert", "alice")
    assert done.returncode == 5, done.stderr
    assert "with credentials that may send them" in done.stderr
    assert done.stdout.startswith(f"{f}: not sent, the hub refused the request: 0 accepted")


def test_callers_without_a_valid_certificate_are_refused(
    mtls: HubProcess, pki: Path, tmp_path: Path
) -> None:
    req = qpb.GetProgressRequest()
    assert secure_stub(mtls, pki, "user-alice").GetProgress(req, timeout=10) is not None
    plain = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(mtls.address))
    for stub in (secure_stub(mtls, pki, None), plain):
        with pytest.raises(grpc.RpcError) as e:
            stub.GetProgress(req, timeout=10)
        assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    # A certificate from another CA.
    other = tmp_path / "other"
    assert run("certs", "init", "--dir", str(other)).returncode == 0
    assert run("certs", "node", "--dir", str(other), "--source", YIDU).returncode == 0
    forged = ("--ca", str(pki / "ca.crt"), "--cert", str(other / "node-420581.crt"))
    done = stats(mtls, "--metric", "visits", *forged)
    assert done.returncode == 3, done.stderr
    done = stats(mtls, "--metric", "visits")
    assert done.returncode == 3, done.stderr
    assert f"the hub at {mtls.address} speaks TLS" in done.stderr, done.stderr


def test_credentials_that_do_not_fit_the_hub_are_named(
    mtls: HubProcess, token_hub: HubProcess, pki: Path, tmp_path: Path
) -> None:
    # gRPC says UNAVAILABLE for each of these, as for a hub that is down: the command said
    # "no hub answers … check --tls-dir and --cert" whatever was wrong, and whether anything was.
    other = tmp_path / "other"
    for args in (["init"], ["user", "--name", "alice", "--scope", YIDU]):
        assert run("certs", args[0], "--dir", str(other), *args[1:]).returncode == 0
    own_ca = ("--ca", str(pki / "ca.crt"))
    cases = [
        (mtls, (*own_ca, "--cert", str(other / "user-alice.crt")), "refused the client cert"),
        (mtls, ("--tls-dir", str(pki)), "asks for a client certificate"),
        (mtls, ("--tls-dir", str(other), "--cert", "alice"), "the CA given did not sign"),
        (mtls, (), "speaks TLS"),
        (token_hub, ("--tls-dir", str(pki), "--cert", "alice"), "speaks no TLS"),
    ]
    for hub, cred, said in cases:
        done = stats(hub, "--metric", "visits", *cred)
        assert done.returncode == 3, (cred, done.stderr)
        assert f"the hub at {hub.address} " in done.stderr, (cred, done.stderr)
        assert said in done.stderr, (cred, done.stderr)
        # One line says it: not the gRPC core's own of each attempt besides.
        assert "Handshake failed" not in done.stderr, (cred, done.stderr)
    # Nothing listening is still said so, not blamed on credentials.
    done = run("query", "stats", "--target", "127.0.0.1:1", "--json", "--metric", "visits", *own_ca)
    assert done.returncode == 3, done.stderr
    assert "no hub answers at 127.0.0.1:1" in done.stderr, done.stderr


def test_a_server_certificate_not_for_the_address_dialled_is_named(tmp_path: Path) -> None:
    # README's `duhub certs server --host hub.example.org --host 10.0.0.5`, then a command on
    # the hub's machine (the default target 127.0.0.1): the handshake fails on the server's
    # name, and the advice was to check the caller's --tls-dir and --cert, which were right.
    d = tmp_path / "pki"
    for args in (
        ["init"],
        ["server", "--host", "hub.example.org"],
        ["user", "--name", "alice", "--scope", YIDU],
    ):
        assert run("certs", args[0], "--dir", str(d), *args[1:]).returncode == 0
    hub = HubProcess(tmp_path / "data", "--tls-dir", str(d))
    try:
        done = run("campaigns", "--target", hub.address, "--tls-dir", str(d), "--cert", "alice")
        assert done.returncode == 3, done.stdout + done.stderr
        host = hub.address.rsplit(":", 1)[0]
        assert f"answers with a certificate not for {host}" in done.stderr, done.stderr
        assert f"duhub certs server --host {host}" in done.stderr
    finally:
        hub.stop()


def test_a_county_user_reads_only_its_county(mtls: HubProcess, pki: Path, tmp_path: Path) -> None:
    alice = ("--tls-dir", str(pki), "--cert", "alice")
    done = stats(mtls, "--metric", "visits", "--group-by", "unit", *alice)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["scopeUnitId"] == YIDU
    assert reply["rows"] and all(r["key"].startswith("420581") for r in reply["rows"])
    done = stats(mtls, "--metric", "visits", "--scope", ZHIJIANG, *alice)
    assert done.returncode == 5, done.stderr
    assert f"PERMISSION_DENIED: scope_unit_id: unit '{ZHIJIANG}' lies outside" in done.stderr
    stub = secure_stub(mtls, pki, "user-alice")
    ask = qpb.GetStatisticsRequest(metrics=["visits"], scope_unit_id="420581101")
    assert stub.GetStatistics(ask, timeout=10).scope_unit_id == "420581101"
    for outside in (CITY, ZHIJIANG):
        with pytest.raises(grpc.RpcError) as e:
            ask = qpb.GetStatisticsRequest(metrics=["visits"], scope_unit_id=outside)
            stub.GetStatistics(ask, timeout=10)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as e:
            stub.GetUnit(qpb.GetUnitRequest(unit_id=outside), timeout=10)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    boss = secure_stub(mtls, pki, "user-boss").GetStatistics(
        qpb.GetStatisticsRequest(metrics=["visits"], group_by=qpb.GROUP_BY_UNIT), timeout=10
    )
    assert {r.key for r in boss.rows} >= {YIDU, ZHIJIANG}
    # Units: the top of alice's tree is her county; other counties are closed.
    units = run("units", "--target", mtls.address, "--json", *alice)
    assert units.returncode == 0, units.stderr
    assert all(u["parentId"] == YIDU for u in json.loads(units.stdout)["units"])
    with pytest.raises(grpc.RpcError) as e:
        stub.ListUnits(qpb.ListUnitsRequest(parent_id=ZHIJIANG), timeout=10)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    ex = run("explain", "--metric", "visits", "--scope", ZHIJIANG, "--target", mtls.address, *alice)
    assert ex.returncode == 5 and "PERMISSION_DENIED" in ex.stderr
    # Users read; they never publish.
    done = publish(mtls, tmp_path, [sanction(YIDU, YIDU)], *alice)
    assert done.returncode == 5 and "user alice (scope 420581) may not publish" in done.stderr


def test_watch_coverage_is_scoped(mtls: HubProcess, pki: Path, tmp_path: Path) -> None:
    city = ("--tls-dir", str(pki), "--cert", "node-420500")
    campaign = f"auth-vax-{next(IDS)}"
    groups = [
        {"groupId": "c1", "name": "市1组", "tier": "TIER_CITY", "targetUnitIds": [YIDU, ZHIJIANG]},
        {
            "groupId": "n1",
            "name": "宜都组",
            "tier": "TIER_COUNTY",
            "targetUnitIds": ["420581101", "420581102"],
        },
    ]
    launch = line(
        CITY,
        "2022-11-01T00:00:00Z",
        campaignLaunched={
            "campaignId": campaign,
            "name": "auth",
            "area": "vaccination",
            "startsAt": "2022-11-01T00:00:00Z",
            "endsAt": "2022-12-01T00:00:00Z",
            "groups": groups,
        },
    )
    assert publish(mtls, tmp_path, [launch], *city).returncode == 0
    alice = secure_stub(mtls, pki, "user-alice")
    denied = alice.WatchCoverage(
        qpb.WatchCoverageRequest(campaign_id=campaign, scope_unit_id=ZHIJIANG), timeout=10
    )
    with pytest.raises(grpc.RpcError) as e:
        next(denied)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    stream = alice.WatchCoverage(qpb.WatchCoverageRequest(campaign_id=campaign), timeout=60)
    first = next(stream)
    c1 = {g.group_id: g for g in first.groups}["c1"]
    assert (c1.targets, c1.covered, list(c1.uncovered_unit_ids)) == (1, 0, [YIDU])
    assert {g.group_id: g for g in first.groups}["n1"].targets == 2
    boss = secure_stub(mtls, pki, "user-boss")
    whole = boss.GetCoverage(qpb.GetCoverageRequest(campaign_id=campaign), timeout=10)
    assert {g.group_id: g for g in whole.groups}["c1"].targets == 2
    # A visit in her county shows in her stream; the one in Zhijiang changes nothing for her.
    replies: list[qpb.Coverage] = []
    reader = threading.Thread(target=lambda: replies.extend(itertools.islice(stream, 1)))
    reader.start()
    visit = {"campaignId": campaign, "groupId": "c1", "area": "vaccination"}
    z = line(CITY, "2022-11-02T00:00:00Z", supervisionVisit={**visit, "unitId": ZHIJIANG})
    y = line(CITY, "2022-11-03T00:00:00Z", supervisionVisit={**visit, "unitId": YIDU})
    assert publish(mtls, tmp_path, [z, y], *city).returncode == 0
    reader.join(30)
    assert replies, "no coverage update reached the scoped watcher"
    c1 = {g.group_id: g for g in replies[-1].groups}["c1"]
    assert (c1.targets, c1.covered) == (1, 1)
    stream.cancel()
    # Lineage of coverage is hers only too: her county's visit, not Zhijiang's.
    hers = alice.ExplainCoverage(qpb.ExplainCoverageRequest(campaign_id=campaign), timeout=10)
    assert [(v.unit_id, v.occurred_at.ToJsonString()) for v in hers.visits] == [
        (YIDU, "2022-11-03T00:00:00Z")
    ]
    assert (hers.targets, hers.covered) == (3, 1)  # c1's Yidu and n1's two
    with pytest.raises(grpc.RpcError) as e:
        alice.ExplainCoverage(
            qpb.ExplainCoverageRequest(campaign_id=campaign, scope_unit_id=ZHIJIANG), timeout=10
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    whole_lineage = boss.ExplainCoverage(
        qpb.ExplainCoverageRequest(campaign_id=campaign), timeout=10
    )
    assert {v.unit_id for v in whole_lineage.visits} == {YIDU, ZHIJIANG}


def _get(url: str, context: ssl.SSLContext | None = None, headers=None) -> tuple[int, dict]:  # type: ignore[no-untyped-def, type-arg]
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_the_dashboard_is_tls_and_scoped_too(mtls: HubProcess, pki: Path) -> None:
    url = mtls.find(DASHBOARD).group(1)
    assert url.startswith("https://")
    anon = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    alice = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    alice.load_cert_chain(pki / "user-alice.crt", pki / "user-alice.key")
    assert _get(url + "healthz", anon)[0] == 200
    status, body = _get(url + "api/statistics?metric=visits", anon)
    assert status == 401 and "authorization" in body["error"]
    status, body = _get(url + "api/statistics?metric=visits&group_by=unit", alice)
    assert status == 200, body
    assert body["rows"] and all(r["key"].startswith(YIDU) for r in body["rows"])
    status, body = _get(url + f"api/statistics?metric=visits&scope={ZHIJIANG}", alice)
    assert status == 403 and "scope:" in body["error"]
    status, body = _get(url + "api/units", alice)
    assert status == 200 and [u["unitId"] for u in body["units"]] == [YIDU]
    # An event stream over TLS stays open while its page does: the server looks whether a
    # stream's client went (its socket readable) and must not take TLS records for that.
    host, port = url.removeprefix("https://").rstrip("/").rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=10)
    with alice.wrap_socket(raw, server_hostname=host) as sock:
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        seen = b""
        while b"event: hello" not in seen:
            got = sock.recv(4096)
            assert got, seen  # closed before its hello: said, not spun on forever
            seen += got
        assert seen.startswith(b"HTTP/1.0 200 "), seen[:80]
        sock.settimeout(2.0)
        with pytest.raises(TimeoutError):  # nothing changed: nothing comes, nor the end
            sock.recv(4096)


# ---- bearer tokens --------------------------------------------------------------------------


def test_tokens(token_hub: HubProcess, pki: Path, tokens: dict[str, str], tmp_path: Path) -> None:
    assert any("bearer tokens" in x and "WITHOUT TLS" in x for x in token_hub.output)
    node = {"DUHUB_TOKEN": tokens["node"]}
    done = publish(token_hub, tmp_path, [sanction(YIDU, YIDU, 2)], env=node)
    assert done.returncode == 0 and "1 accepted" in done.stdout, done.stderr
    done = publish(token_hub, tmp_path, [sanction(ZHIJIANG, ZHIJIANG)], env=node)
    assert done.returncode == 5 and "PERMISSION_DENIED" in done.stderr
    assert sanctioned(token_hub, env={"DUHUB_TOKEN": tokens["boss"]}) == 2
    # bob reads Zhijiang (nothing yet) and nothing else; --token-file works as well as the env.
    f = tmp_path / "bob.token"
    f.write_text(tokens["bob"] + "\n")
    assert sanctioned(token_hub, "--token-file", str(f)) == 0
    done = stats(token_hub, "--metric", "visits", env={"DUHUB_TOKEN": "duhub_forged"})
    assert done.returncode == 5 and "UNAUTHENTICATED" in done.stderr, done.stderr
    stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(token_hub.address))

    def ask(token: str, scope: str = "") -> qpb.Statistics:
        req = qpb.GetStatisticsRequest(metrics=["sanctioned_persons"], scope_unit_id=scope)
        meta = [("authorization", f"Bearer {token}")] if token else []
        return stub.GetStatistics(req, timeout=10, metadata=meta)

    for token, scope, code in (
        (tokens["bob"], YIDU, grpc.StatusCode.PERMISSION_DENIED),
        (tokens["bob"], CITY, grpc.StatusCode.PERMISSION_DENIED),
        ("", "", grpc.StatusCode.UNAUTHENTICATED),
    ):
        with pytest.raises(grpc.RpcError) as e:
            ask(token, scope)
        assert e.value.code() == code
    # A token made while the hub runs works at once.
    new = run("certs", "token", "--file", str(pki / "tokens"), "--user", "al", "--scope", YIDU)
    assert new.returncode == 0
    reply = ask(new.stdout.strip())
    assert (reply.scope_unit_id, reply.rows[0].values["sanctioned_persons"]) == (YIDU, 2)
    # The dashboard: the header or the page's cookie; nothing else.
    url = token_hub.find(DASHBOARD).group(1) + "api/statistics?metric=sanctioned_persons"
    assert _get(url)[0] == 401
    status, body = _get(url, headers={"Authorization": f"Bearer {tokens['bob']}"})
    assert status == 200 and body["rows"][0]["values"]["sanctioned_persons"] == 0
    status, body = _get(url, headers={"Cookie": f"duhub_token={tokens['node']}"})
    assert status == 200 and body["rows"][0]["values"]["sanctioned_persons"] == 2
    # A hub with credentials answers under any name it is reached by (a proxy's, say): only
    # one without them is bound to loopback names (test_http_host.py).
    named = {"Authorization": f"Bearer {tokens['bob']}", "Host": "duhub.example.gov"}
    assert _get(url, headers=named)[0] == 200


# ---- addresses without credentials ------------------------------------------------------------


def test_no_credentials_means_loopback_only(tmp_path: Path) -> None:
    for args, option in (
        (["up", "--listen", "0.0.0.0:0", "--http", "off"], "--listen 0.0.0.0:0"),
        (["up", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0"], "--http 0.0.0.0:0"),
        (["serve", "query", "--listen", "[::]:0", "--http", "off"], "--listen [::]:0"),
    ):
        data = tmp_path / "never"
        started = time.monotonic()
        done = run(*args, "--data-dir", str(data))
        assert done.returncode == 2, done.stderr
        assert f"{option}: without credentials duhub listens on a loopback address only" in (
            done.stderr
        )
        assert not data.exists()  # refused before opening, let alone binding, anything
        assert time.monotonic() - started < 30


def test_a_token_file_others_may_write_is_refused(
    tmp_path: Path, pki: Path, tokens: dict[str, str]
) -> None:
    """Whoever may write the token file may add a token of their own for any principal (the
    city's: everything). Before, `duhub up --tokens F` started with F mode 0666."""
    f = tmp_path / "tokens"
    f.write_bytes((pki / "tokens").read_bytes())
    for mode in (0o666, 0o620):
        f.chmod(mode)
        data = tmp_path / "never"
        done = run("up", "--listen", "127.0.0.1:0", "--http", "off", "--metrics", "off",
                   "--tokens", str(f), "--data-dir", str(data))  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"--tokens {f}: writable by group or others (mode {mode:04o})" in done.stderr
        assert not data.exists()


def test_a_token_pasted_into_the_token_file_is_not_printed(
    tmp_path: Path, tokens: dict[str, str]
) -> None:
    """The file holds hashes; a token pasted in by mistake is refused, naming the line, but
    never printed (stderr goes to logs others read). Before, the error quoted it whole."""
    f = tmp_path / "tokens"
    f.write_text(f"{tokens['boss']} duhub:user:420500:boss\n")
    f.chmod(0o600)
    data = tmp_path / "never"
    done = run("up", "--listen", "127.0.0.1:0", "--http", "off", "--metrics", "off",
               "--tokens", str(f), "--data-dir", str(data))  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--tokens {f}:1: " in done.stderr
    assert tokens["boss"] not in done.stdout + done.stderr
    assert tokens["boss"][: len("duhub_") + 8] not in done.stdout + done.stderr


def test_server_certificates_that_cannot_work_are_refused_naming_why(
    tmp_path: Path, pki: Path
) -> None:
    """A --tls-dir whose server.key is not server.crt's, whose server.crt another CA signed,
    or which expired, can serve nobody. Before, the first made `duhub up` say "--listen:
    cannot bind … (in use, or not an address of this host)" after opening the read model,
    and the other two started a hub every client's handshake failed against."""
    from duhub.auth import pki as ca_tools

    ca = ca_tools.Issued((pki / "ca.key").read_bytes(), (pki / "ca.crt").read_bytes())
    other = ca_tools.make_ca("another CA")
    cases = {
        "server.key does not belong to server.crt": (
            (pki / "server.crt").read_bytes(),
            (pki / "node-420581.key").read_bytes(),
        ),
        "server.crt is not signed by ca.crt": (
            (made := ca_tools.make_server(other, ["127.0.0.1"])).cert_pem,
            made.key_pem,
        ),
        "server.crt expired on": (
            (old := ca_tools.make_server(ca, ["127.0.0.1"], days=0)).cert_pem,
            old.key_pem,
        ),
    }
    time.sleep(1)  # days=0: valid until the second it was made
    for n, (why, (cert, key)) in enumerate(cases.items()):
        d = tmp_path / f"tls{n}"
        d.mkdir()
        (d / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
        (d / "server.crt").write_bytes(cert)
        (d / "server.key").write_bytes(key)
        data = tmp_path / f"never{n}"
        done = run("up", "--listen", "127.0.0.1:0", "--http", "off", "--metrics", "off",
                   "--tls-dir", str(d), "--data-dir", str(data))  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"--tls-dir {d}: {why}" in done.stderr, done.stderr
        assert not data.exists()


def test_open_hub_says_so(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data")
    try:
        assert any(
            "security:               no credentials: listening on loopback only" in x
            for x in hub.output
        )
    finally:
        hub.stop()


# ---- TLS with tokens, and the simulator beside them --------------------------------------------


def test_tls_with_tokens_and_the_simulator(
    tmp_path: Path, pki: Path, tokens: dict[str, str]
) -> None:
    hub = HubProcess(
        tmp_path / "data",
        "--tls-dir",
        str(pki),
        "--tokens",
        str(pki / "tokens"),
        "--rate",
        "200",
        simulate=True,
    )
    try:
        assert any("TLS (" in x and "with bearer tokens" in x for x in hub.output)
        boss = {"DUHUB_TOKEN": tokens["boss"], "DUHUB_TLS_DIR": str(pki)}
        deadline = time.monotonic() + 60
        visits = 0
        while time.monotonic() < deadline and not visits:
            done = stats(hub, "--metric", "visits", env=boss)
            assert done.returncode == 0, done.stderr
            visits = int(json.loads(done.stdout)["rows"][0]["values"]["visits"])
            time.sleep(0.5)
        assert visits > 0, "the simulator published nothing through the private socket"
        # Tokens travel over TLS only: plain text is refused at the handshake.
        plain = stats(hub, "--metric", "visits", env={"DUHUB_TOKEN": tokens["boss"]})
        assert plain.returncode == 3
        bob = {"DUHUB_TOKEN": tokens["bob"], "DUHUB_TLS_DIR": str(pki)}
        assert stats(hub, "--metric", "visits", "--scope", CITY, env=bob).returncode == 5
        # The dashboard takes tokens here as gRPC does, not a client certificate: with one,
        # a user whose token line was deleted still read it (security review, 2026-12-07).
        url = hub.find(DASHBOARD).group(1)
        alice = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        alice.load_cert_chain(pki / "user-alice.crt", pki / "user-alice.key")
        status, body = _get(url + "api/statistics?metric=visits", alice)
        assert status == 401 and body["error"].startswith("authorization: no credentials"), body
        header = {"Authorization": f"Bearer {tokens['bob']}"}
        assert _get(url + "api/statistics?metric=visits", alice, header)[0] == 200
    finally:
        hub.stop()


def huge_faulty_publish(targets: int) -> bytes:
    """A PublishRequest of one campaign whose last target id is not UTF-8: it does not parse,
    and naming where walks every field before it, in Python."""
    from duhub.v1 import events_pb2 as epb
    from duhub.v1 import ingest_pb2 as ipb

    event = epb.Event(event_id="huge", source=YIDU, seq=999_999)
    group = event.campaign_launched.groups.add(group_id="g", tier=epb.TIER_COUNTY)
    group.target_unit_ids.extend(["ab"] * targets)
    data = ipb.PublishRequest(events=[event]).SerializeToString()
    return data[:-2] + b"\xff\xff"


def test_bytes_that_do_not_parse_are_read_only_once_the_caller_is_known(
    token_hub: HubProcess, tokens: dict[str, str]
) -> None:
    # gRPC reads a request before its handler authenticates the caller: a request that did
    # not parse was walked field by field there (~2.5 µs a field, 16 million in 32 MiB), and
    # six callers without any credentials kept a token hub's queries from answering for 30 s
    # (security probe). Now such bytes are kept as they are and read after; their walk stops
    # past 200,000 fields.
    from duhub.v1 import ingest_pb2 as ipb
    from services.ingest.request import UnreadBatch, read_request

    data = huge_faulty_publish(1_000_000)
    assert isinstance(read_request(data), UnreadBatch)  # the deserializer does not walk it
    publish = grpc.insecure_channel(token_hub.address).unary_unary(
        "/duhub.v1.IngestService/Publish",
        request_serializer=lambda b: b,
        response_deserializer=ipb.PublishResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as refused:
        publish(data, timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = publish(data, timeout=30, metadata=[("authorization", f"Bearer {tokens['node']}")])
    (result,) = reply.results
    assert result.result == ipb.RESULT_REJECTED
    assert "not looked into past its first 200,000 fields" in result.reason, result.reason
