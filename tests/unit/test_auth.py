"""The pure part of authentication and authorization, and the guard with stand-in contexts."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from duhub.auth import pki
from duhub.auth.listen import InsecureListen, check_listen, is_loopback
from duhub.auth.principal import (
    LOCAL,
    Forbidden,
    Kind,
    Unauthenticated,
    check_publish,
    node,
    parse_uri,
    principal_in,
    scope_for,
    user,
)
from duhub.auth.tokens import (
    TokenFileError,
    TokenStore,
    append_token,
    new_token,
    parse_tokens,
    token_hash,
    token_line,
)
from duhub.cli.credentials import CredentialError, load
from duhub.cli.main import main
from services.auth.guard import Security

CITY, YIDU, ZHIJIANG = "420500", "420581", "420582"
TOWN = "420581101"
PATHS = {
    CITY: (CITY,),
    YIDU: (CITY, YIDU),
    ZHIJIANG: (CITY, ZHIJIANG),
    TOWN: (CITY, YIDU, TOWN),
}


def path_of(unit_id: str) -> tuple[str, ...] | None:
    return PATHS.get(unit_id)


# ---- principals -----------------------------------------------------------------------------


def test_uris_round_trip() -> None:
    for p in (node(YIDU), user("alice", YIDU), user("a.b-c_d", "420500-L01")):
        assert parse_uri(p.uri) == p
    assert parse_uri("duhub:user:420581:alice") == user("alice", YIDU)
    assert str(user("alice", YIDU)) == "user alice (scope 420581)"


@pytest.mark.parametrize(
    "uri",
    [
        "duhub:node:",
        "duhub:user:420581",
        "duhub:user::alice",
        "duhub:admin:x",
        "http://x",
        "",
        # A trailing newline is not the unit or name without it.
        "duhub:node:420581\n",
        "duhub:user:420581:alice\n",
        "duhub:user:420581\n:alice",
    ],
)
def test_bad_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError):
        parse_uri(uri)


def test_a_certificate_names_one_principal() -> None:
    assert principal_in(["spiffe://other", "duhub:node:420581"]) == node(YIDU)
    assert principal_in(["spiffe://other"]) is None
    with pytest.raises(ValueError, match="more than one"):
        principal_in(["duhub:node:420581", "duhub:node:420582"])


def test_a_node_publishes_only_as_itself() -> None:
    check_publish(node(YIDU), [YIDU, None, YIDU])
    check_publish(LOCAL, [YIDU, ZHIJIANG, "reference"])
    with pytest.raises(Forbidden, match=r"events\[2\]\.source: node 420581 .* not as '420582'"):
        check_publish(node(YIDU), [YIDU, None, ZHIJIANG])
    with pytest.raises(Forbidden, match="not as '420581'"):
        check_publish(node(CITY), [YIDU])  # the city node too publishes as itself only
    with pytest.raises(Forbidden, match="user alice .* may not publish"):
        check_publish(user("alice", CITY), [CITY])
    # Every impersonating event is named, so that a batch is mended in one round trip (a Go
    # integrator's probe: only the first was).
    with pytest.raises(Forbidden) as refused:
        check_publish(node(YIDU), [YIDU, ZHIJIANG, YIDU, CITY, None, ZHIJIANG])
    assert str(refused.value) == (
        "events[1].source: node 420581 publishes only as '420581', not as '420582'; so do "
        "events[3] ('420500'), events[5] ('420582'); nothing of this request was appended"
    )
    with pytest.raises(Forbidden, match=r"events\[20\] \('420582'\) and 5 more; nothing"):
        check_publish(node(YIDU), [ZHIJIANG] * 26)


def test_scopes() -> None:
    alice = user("alice", YIDU)
    boss = user("boss", CITY)
    # Unlimited callers: the request as it was (empty stays empty: the city).
    for who in (LOCAL, boss, node(CITY)):
        assert scope_for(who, "", path_of, "scope") == ""
        assert scope_for(who, ZHIJIANG, path_of, "scope") == ZHIJIANG
    # A county user: empty means its county; inside is fine; outside and above are not.
    assert scope_for(alice, "", path_of, "scope") == YIDU
    assert scope_for(alice, TOWN, path_of, "scope") == TOWN
    assert scope_for(node(YIDU), "", path_of, "scope") == YIDU
    for outside in (ZHIJIANG, CITY):
        with pytest.raises(Forbidden, match=f"scope: unit '{outside}' lies outside the scope"):
            scope_for(alice, outside, path_of, "scope")
    # A user certificate made for a scope the hub does not know ('duhub certs user --scope
    # 999' cannot check it offline). Before, the empty request became '999', answered
    # "scope_unit_id: unknown unit '999'", and the command line blamed --scope, not given.
    with pytest.raises(Forbidden) as refused:
        scope_for(user("carol", "999"), "", path_of, "scope_unit_id")
    assert str(refused.value) == (
        "scope_unit_id: the scope of user carol (scope 999) is no unit this hub knows: "
        "its credentials were made for another hub, or with a mistyped --scope"
    )
    # Said once: before, "… outside the scope 420581 of user alice (scope 420581)".
    for who, whose in ((alice, "user alice (scope 420581)"), (node(YIDU), "node 420581")):
        with pytest.raises(Forbidden) as refused:
            scope_for(who, ZHIJIANG, path_of, "scope")
        assert str(refused.value) == f"scope: unit '{ZHIJIANG}' lies outside the scope of {whose}"
    # Unknown units are left to the question (NOT_FOUND), as for anyone.
    assert scope_for(alice, "nope", path_of, "scope") == "nope"
    # A township user: its county is above it.
    town = user("t", TOWN)
    assert scope_for(town, "", path_of, "scope") == TOWN
    with pytest.raises(Forbidden):
        scope_for(town, YIDU, path_of, "scope")


# ---- tokens ---------------------------------------------------------------------------------


def test_token_file_errors_name_the_line() -> None:
    good = f"{token_hash('t')} duhub:node:420581\n"
    assert parse_tokens("# c\n\n" + good) == {token_hash("t"): node(YIDU)}
    for text, match in [
        ("sha256:abc duhub:node:1\n", "1: the first field is not sha256:<64 lowercase hex>$"),
        ("duhub_x duhub:node:1\n", "1: the first field .* .it is a token: the file holds"),
        (good + "x\n", "2: expected"),
        (f"{token_hash('u')} duhub:boss:1\n", "1: 'duhub:boss:1' names no principal"),
        (good + f"{token_hash('t')} duhub:node:420582\n", "2: the same token hash"),
    ]:
        with pytest.raises(TokenFileError, match=match):
            parse_tokens(text, "f")


def test_tokens_are_stored_hashed_and_read_again_on_change(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    first = append_token(f, node(YIDU), "first")
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert first not in f.read_text() and token_hash(first) in f.read_text()
    store = TokenStore(f)
    assert store.lookup(first) == node(YIDU)
    assert store.lookup(first + "x") is None
    second = append_token(f, user("bob", ZHIJIANG))
    assert store.lookup(second) == user("bob", ZHIJIANG)  # no restart needed
    # Revoke: delete the line.
    f.write_text("".join(line for line in f.read_text().splitlines(True) if "420581" not in line))
    assert store.lookup(first) is None
    assert store.lookup(second) == user("bob", ZHIJIANG)
    # A broken edit adds nobody, but keeps the lines it holds unchanged.
    third = new_token()
    f.write_text(f.read_text() + "garbage\n" + token_line(third, node(CITY)))
    assert store.lookup(second) == user("bob", ZHIJIANG)
    assert store.lookup(third) is None
    # So does a good file others may write: anyone could have added a line.
    f.write_text(f.read_text().replace("garbage\n", ""))
    assert store.lookup(third) == node(CITY)
    fourth = append_token(f, node(CITY))
    f.chmod(0o602)
    assert store.lookup(fourth) is None
    assert store.lookup(third) == node(CITY)
    with pytest.raises(TokenFileError, match="writable by group or others .mode 0602."):
        TokenStore(f)


def test_a_token_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """Only the mode was looked at: a file 0644 owned by another user (or a symlink to one),
    whose owner may write it all the same, was trusted (security probe)."""
    f = tmp_path / "tokens"
    first = append_token(f, node(YIDU))
    linked = tmp_path / "linked"
    linked.symlink_to(f)
    assert TokenStore(linked).lookup(first) == node(YIDU)
    if os.getuid() != 0:  # only root gives a file away; as another user the mode check stands
        return
    store = TokenStore(f)
    os.chown(f, 65534, -1)  # nobody's, who adds a line
    added = append_token(f, node(CITY))
    assert store.lookup(added) is None  # a running hub takes none of its new lines
    assert store.lookup(first) == node(YIDU)  # as a file made writable by others
    for path in (f, linked):
        with pytest.raises(TokenFileError, match="owned by user 65534, not the hub's .0."):
            TokenStore(path)
    os.chown(f, 0, -1)
    assert TokenStore(f).lookup(first) == node(YIDU)


def test_a_token_file_edited_into_another_encoding_is_a_broken_line(tmp_path: Path) -> None:
    """A comment saved in GBK (a Windows editor's default here) made the file not UTF-8: the
    running hub raised UnicodeDecodeError from every lookup (each call failed, naming neither
    the file nor the line), and a hub starting said only "'utf-8' codec can't decode…"."""
    f = tmp_path / "tokens"
    alice = append_token(f, user("alice", YIDU))
    bob = append_token(f, user("bob", ZHIJIANG))
    store = TokenStore(f)
    # One edit: bob's line deleted, carol's added, and a GBK comment on line 2.
    carol = new_token()
    kept = [x for x in f.read_bytes().splitlines(True) if b":bob" not in x]
    comment = "# 宜都市\n".encode("gbk")
    f.write_bytes(kept[0] + comment + token_line(carol, node(CITY)).encode())
    assert store.lookup(alice) == user("alice", YIDU)  # unchanged lines hold
    assert store.lookup(bob) is None  # a deleted line is revoked
    assert store.lookup(carol) is None  # a broken file adds nobody
    with pytest.raises(TokenFileError, match=rf"{f}:2: not UTF-8 \(byte 0xd2 at column 3\)"):
        TokenStore(f)


def test_a_token_file_deleted_revokes_every_token_once_it_stays_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, a deleted token file revoked nothing: the last tokens read stayed good for as
    long as the server ran. Gone for a moment (an editor replacing it) it still keeps them."""
    import time

    from duhub.auth import tokens

    monkeypatch.setattr(tokens, "GONE_GRACE_S", 0.2, raising=False)
    f = tmp_path / "tokens"
    alice = append_token(f, user("alice", YIDU))
    store = TokenStore(f)
    text = f.read_text()
    f.unlink()
    assert store.lookup(alice) == user("alice", YIDU)  # within the grace: an editor's moment
    time.sleep(0.3)
    assert store.lookup(alice) is None
    assert store.lookup(alice) is None
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"{f}: cannot be read (No such file or directory): every token is refused until it is back"
    ]
    f.write_text(text)
    f.chmod(0o600)
    assert store.lookup(alice) == user("alice", YIDU)  # back: read again


# ---- listen addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1:50051", "127.3.4.5:0", "[::1]:50051", "localhost:8080", "LOCALHOST:1"],
)
def test_loopback(listen: str) -> None:
    assert is_loopback(listen)
    check_listen(listen, "--listen", secured=False)


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:50051", "[::]:1", ":50051", "10.0.0.5:1", "example.org:1", "[::ffff:1]:2"]
)
def test_not_loopback(listen: str) -> None:
    assert not is_loopback(listen)
    with pytest.raises(InsecureListen, match=re.escape(f"--http {listen}: without credentials")):
        check_listen(listen, "--http", secured=False)
    check_listen(listen, "--http", secured=True)


# ---- certificates ---------------------------------------------------------------------------


def test_certificates_name_their_principal() -> None:
    ca = pki.make_ca()
    alice = pki.make_client(ca, user("alice", YIDU))
    assert pki.san_uris(alice.cert_pem) == ["duhub:user:420581:alice"]
    assert pki.san_uris(pki.make_server(ca, ["127.0.0.1", "hub.example"]).cert_pem) == []
    assert pki.file_stem(node(YIDU)) == "node-420581"


def test_certs_command_writes_private_keys_0600(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    d = str(tmp_path / "pki")
    old = os.umask(0)
    try:
        assert main(["certs", "init", "--dir", d]) == 0
        assert main(["certs", "server", "--dir", d, "--host", "127.0.0.1"]) == 0
        assert main(["certs", "node", "--dir", d, "--source", YIDU]) == 0
        assert main(["certs", "user", "--dir", d, "--name", "alice", "--scope", YIDU]) == 0
    finally:
        os.umask(old)
    for key in ("ca.key", "server.key", "node-420581.key", "user-alice.key"):
        assert stat.S_IMODE((tmp_path / "pki" / key).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "pki" / "ca.crt").stat().st_mode) == 0o644
    # Never overwritten.
    before = (tmp_path / "pki" / "node-420581.key").read_bytes()
    assert main(["certs", "node", "--dir", d, "--source", YIDU]) == 2
    assert (tmp_path / "pki" / "node-420581.key").read_bytes() == before
    assert "exists" in capsys.readouterr().err
    # A token is printed once; only its hash is kept.
    assert main(["certs", "token", "--dir", d, "--user", "bob", "--scope", ZHIJIANG]) == 0
    token = capsys.readouterr().out.strip()
    assert TokenStore(tmp_path / "pki" / "tokens").lookup(token) == user("bob", ZHIJIANG)
    assert main(["certs", "token", "--dir", d, "--user", "bob"]) == 2
    # The client side finds a certificate by its short name.
    creds = load(tls_dir=d, cert="alice", env={})
    assert creds.cert == (tmp_path / "pki" / "user-alice.crt").read_bytes()
    assert (
        load(tls_dir=d, cert="420581", env={}).key
        == (tmp_path / "pki" / "node-420581.key").read_bytes()
    )
    with pytest.raises(CredentialError, match="--cert carol"):
        load(tls_dir=d, cert="carol", env={})
    assert load(env={"DUHUB_TOKEN": " abc "}).token == "abc"


@pytest.mark.parametrize("given", ["Bearer duhub_x", "bearer  duhub_x", "BEARER\tduhub_x"])
def test_a_token_copied_with_its_bearer_prefix_is_the_token(tmp_path: Path, given: str) -> None:
    """Copied from an HTTP header, as the dashboard takes it, "Bearer duhub_…" was sent as the
    token itself: "UNAUTHENTICATED: unknown or revoked token" for a valid one."""
    assert load(env={"DUHUB_TOKEN": given}).token == "duhub_x"
    (tmp_path / "t").write_text(given + "\n")
    assert load(token_file=str(tmp_path / "t"), env={}).token == "duhub_x"


# ---- the guard ------------------------------------------------------------------------------


class FakeContext:
    def __init__(self, peer: str = "ipv4:127.0.0.1:1", metadata=(), auth=None) -> None:  # type: ignore[no-untyped-def]
        self._peer, self._metadata, self._auth = peer, metadata, auth or {}

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self):  # type: ignore[no-untyped-def]
        return self._metadata

    def auth_context(self):  # type: ignore[no-untyped-def]
        return self._auth


def test_guard_modes(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    token = append_token(f, user("bob", ZHIJIANG))
    # Open: everyone is the local caller.
    assert Security().principal(FakeContext()) == LOCAL
    # Tokens.
    sec = Security.load(tokens=str(f))
    bearer = FakeContext(metadata=[("authorization", f"Bearer {token}")])
    assert sec.principal(bearer) == user("bob", ZHIJIANG)
    for ctx in (FakeContext(), FakeContext(metadata=[("authorization", "Bearer nope")])):
        with pytest.raises(Unauthenticated):
            sec.principal(ctx)
    # The hub's private socket, when it has one, is the local caller's.
    assert Security(tokens=sec.tokens, local_socket="unix:/x").principal(
        FakeContext(peer="unix:")
    ) == (LOCAL)
    with pytest.raises(Unauthenticated):
        sec.principal(FakeContext(peer="unix:"))
    # HTTP: header, cookie, client certificate.
    assert sec.http_principal({"Authorization": f"Bearer {token}"}).kind == Kind.USER
    assert sec.http_principal({"Cookie": f"a=b; duhub_token={token}"}).unit_id == ZHIJIANG
    with pytest.raises(Unauthenticated):
        sec.http_principal({"Cookie": "duhub_token=nope"})
    # A client certificate names its holder on a hub of mutual TLS only: with tokens, the
    # token file decides, on the dashboard as on gRPC (a deleted token line revokes).
    cert = {"subjectAltName": (("URI", "duhub:node:420581"),)}
    with pytest.raises(Unauthenticated, match="no credentials"):
        sec.http_principal({}, cert)
    assert sec.http_principal({"Authorization": f"Bearer {token}"}, cert).unit_id == ZHIJIANG
    mutual = Security()
    mutual.tls = object()  # type: ignore[assignment]  # certificate checked by the handshake
    assert mutual.http_principal({}, cert) == node(YIDU)


def test_guard_reads_the_principal_from_the_certificate() -> None:
    sec = Security()
    sec.tls = object()  # type: ignore[assignment]  # mutual TLS, certificate checked by gRPC
    ok = FakeContext(auth={"x509_subject_alternative_name": [b"duhub:user:420581:alice"]})
    assert sec.principal(ok) == user("alice", YIDU)
    for auth in ({"x509_subject_alternative_name": [b"127.0.0.1"]}, {}):
        with pytest.raises(Unauthenticated, match="names no duhub principal"):
            sec.principal(FakeContext(auth=auth))


def test_a_non_loopback_address_needs_credentials(tmp_path: Path) -> None:
    from duhub.bootstrap import HubConfig, load_security

    with pytest.raises(InsecureListen, match="--listen 0.0.0.0:1"):
        load_security(HubConfig(tmp_path, listen="0.0.0.0:1"))
    with pytest.raises(InsecureListen, match="--http 0.0.0.0:2"):
        load_security(HubConfig(tmp_path, listen="127.0.0.1:1", http="0.0.0.0:2"))
    with pytest.raises(ValueError, match="--tls-dir .*cannot read server.crt"):
        load_security(HubConfig(tmp_path, listen="0.0.0.0:1", tls_dir=str(tmp_path)))
    (tmp_path / "t").write_text("")
    assert load_security(HubConfig(tmp_path, listen="0.0.0.0:1", tokens=str(tmp_path / "t")))
    assert not (tmp_path / "readmodel.db").exists()


# ---- a real hub in this process: PublishStream, the private socket -------------------------


def test_publish_stream_stops_at_an_impersonating_request(tmp_path: Path) -> None:
    import grpc

    from duhub.bootstrap import Hub, HubConfig
    from duhub.v1 import ingest_pb2 as ipb
    from duhub.v1 import ingest_pb2_grpc
    from tests.unit.builders import sanction

    f = tmp_path / "tokens"
    token = append_token(f, node(YIDU))
    hub = Hub(HubConfig(tmp_path / "hub", listen="127.0.0.1:0", tokens=str(f), private_socket=True))
    hub.start()
    try:
        meta = [("authorization", f"Bearer {token}")]
        stub = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(hub.address))
        mine = sanction(YIDU, event_id="s1", source=YIDU, seq=1)
        theirs = sanction(ZHIJIANG, event_id="s2", source=ZHIJIANG, seq=1)
        later = sanction(YIDU, event_id="s3", source=YIDU, seq=2)
        requests = [ipb.PublishRequest(events=[mine]), ipb.PublishRequest(events=[later, theirs])]
        replies = []
        with pytest.raises(grpc.RpcError) as e:
            for r in stub.PublishStream(iter(requests), metadata=meta, timeout=10):
                replies.append(r)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "events[1].source" in e.value.details()
        assert [r.result for r in replies[0].results] == [ipb.RESULT_ACCEPTED]
        # s3 came with the impersonating request: it was not appended, so it is new now.
        again = stub.Publish(ipb.PublishRequest(events=[later]), metadata=meta, timeout=10)
        assert [r.result for r in again.results] == [ipb.RESULT_ACCEPTED]
        # The private socket is the local caller's: no token, any source.
        assert hub.local_target.startswith("unix:")
        local = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(hub.local_target))
        ok = local.Publish(ipb.PublishRequest(events=[theirs]), timeout=10)
        assert [r.result for r in ok.results] == [ipb.RESULT_ACCEPTED]
        with pytest.raises(grpc.RpcError) as e:
            stub.Publish(ipb.PublishRequest(events=[theirs]), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        hub.stop(grace=0)
    assert not Path(hub.local_target[len("unix:") :]).parent.exists()


def test_a_revoked_token_ends_open_streams(tmp_path: Path) -> None:
    """Deleting a token's line revokes it (README, Security): calls already open too. A
    PublishStream or WatchCoverage opened before the revocation must not go on publishing or
    reading with it."""
    import queue
    import time

    import grpc

    from duhub.bootstrap import Hub, HubConfig
    from duhub.v1 import events_pb2 as pb
    from duhub.v1 import ingest_pb2 as ipb
    from duhub.v1 import ingest_pb2_grpc, query_pb2_grpc
    from duhub.v1 import query_pb2 as qpb
    from tests.unit.builders import campaign, group, sanction, visit

    f = tmp_path / "tokens"
    token = append_token(f, node(YIDU))
    reader = append_token(f, user("al", YIDU))
    city = append_token(f, node(CITY))
    hub = Hub(HubConfig(tmp_path / "hub", listen="127.0.0.1:0", tokens=str(f)))
    hub.start()
    try:
        channel = grpc.insecure_channel(hub.address)
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        query = query_pb2_grpc.QueryServiceStub(channel)
        meta = [("authorization", f"Bearer {token}")]
        as_city = [("authorization", f"Bearer {city}")]
        launch = campaign(
            "c1", [group("g1", pb.TIER_CITY, YIDU)], event_id="c1", source=CITY, seq=1
        )
        done = stub.Publish(ipb.PublishRequest(events=[launch]), metadata=as_city, timeout=10)
        assert [r.result for r in done.results] == [ipb.RESULT_ACCEPTED]

        deadline = time.monotonic() + 10
        while not query.ListCampaigns(
            qpb.ListCampaignsRequest(), metadata=as_city, timeout=5
        ).campaigns:
            assert time.monotonic() < deadline, "the campaign was never applied"
            time.sleep(0.05)

        requests: queue.Queue[ipb.PublishRequest | None] = queue.Queue()
        replies = stub.PublishStream(iter(requests.get, None), metadata=meta, timeout=20)
        watch = query.WatchCoverage(
            qpb.WatchCoverageRequest(campaign_id="c1"),
            metadata=[("authorization", f"Bearer {reader}")],
            timeout=20,
        )
        assert next(watch).groups[0].targets == 1
        requests.put(ipb.PublishRequest(events=[sanction(YIDU, event_id="r1", source=YIDU, seq=1)]))
        assert [r.result for r in next(replies).results] == [ipb.RESULT_ACCEPTED]

        # Revoke both tokens: delete their lines.
        kept = [x for x in f.read_text().splitlines(True) if "420581" not in x]
        f.write_text("".join(kept))
        with pytest.raises(grpc.RpcError) as e:
            stub.Publish(ipb.PublishRequest(events=[]), metadata=meta, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED

        # The stream opened before: its next request is refused, nothing of it appended.
        requests.put(ipb.PublishRequest(events=[sanction(YIDU, event_id="r2", source=YIDU, seq=2)]))
        with pytest.raises(grpc.RpcError) as e:
            next(replies)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        requests.put(None)
        # The watch opened before: it ends instead of pushing the next change.
        covering = visit(YIDU, "c1", "g1", event_id="v1", source=CITY, seq=2)
        stub.Publish(ipb.PublishRequest(events=[covering]), metadata=as_city, timeout=10)
        with pytest.raises(grpc.RpcError) as e:
            next(watch)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # r2 came after the revocation: it was not appended, so it is new for a fresh token.
        fresh = [("authorization", f"Bearer {append_token(f, node(YIDU))}")]
        r2 = sanction(YIDU, event_id="r2", source=YIDU, seq=2)
        again = stub.Publish(ipb.PublishRequest(events=[r2]), metadata=fresh, timeout=10)
        assert [r.result for r in again.results] == [ipb.RESULT_ACCEPTED]
    finally:
        hub.stop(grace=0)


def test_a_unix_listen_socket_is_not_the_simulators_private_one(tmp_path: Path) -> None:
    """With credentials, only the simulator's private socket trusts its callers (README:
    "Nothing else listens without credentials"). gRPC cannot tell two unix sockets' callers
    apart, so a hub with a private socket must not also take callers on a unix --listen
    socket as the local caller: it either refuses to start, naming --listen, or asks them
    for a token."""
    import grpc

    from duhub.bootstrap import Hub, HubConfig
    from duhub.v1 import query_pb2 as qpb
    from duhub.v1 import query_pb2_grpc

    f = tmp_path / "tokens"
    append_token(f, user("bob", ZHIJIANG))
    sock = tmp_path / "hub.sock"
    config = HubConfig(
        tmp_path / "hub", listen=f"unix:{sock}", http="", tokens=str(f), private_socket=True
    )
    try:
        hub = Hub(config)
    except ValueError as e:
        assert f"--listen unix:{sock}" in str(e)
        assert not (tmp_path / "hub").exists()  # refused before opening anything
        return
    hub.start()
    try:
        stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(f"unix:{sock}"))
        with pytest.raises(grpc.RpcError) as e:
            stub.GetStatistics(qpb.GetStatisticsRequest(metrics=["visits"]), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        hub.stop(grace=0)


def test_a_county_learns_nothing_of_another_countys_problem_by_rectifying_it(
    tmp_path: Path,
) -> None:
    """A county node may rectify only its own problems. Rectifying another county's must not
    tell whether that problem exists, is still open, or in which unit it lies: before, the
    rejection said "'p-done' is already rectified" of a rectified one and named the village of
    an open one ("unit '420581101' lies outside the source's 420582")."""
    import grpc

    from duhub.bootstrap import Hub, HubConfig
    from duhub.v1 import ingest_pb2 as ipb
    from duhub.v1 import ingest_pb2_grpc
    from tests.unit.builders import problem, rectify

    f = tmp_path / "tokens"
    yidu = [("authorization", f"Bearer {append_token(f, node(YIDU))}")]
    other = [("authorization", f"Bearer {append_token(f, node(ZHIJIANG))}")]
    hub = Hub(HubConfig(tmp_path / "hub", listen="127.0.0.1:0", tokens=str(f)))
    hub.start()
    try:
        stub = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(hub.address))
        own = [
            problem("p-done", TOWN, event_id="y1", source=YIDU, seq=1),
            problem("p-open", TOWN, event_id="y2", source=YIDU, seq=2),
            rectify("p-done", event_id="y3", source=YIDU, seq=3),
        ]
        done = stub.Publish(ipb.PublishRequest(events=own), metadata=yidu, timeout=10)
        assert [r.result for r in done.results] == [ipb.RESULT_ACCEPTED] * 3
        probes = [
            rectify("p-done", event_id="z1", source=ZHIJIANG, seq=1),
            rectify("p-open", event_id="z2", source=ZHIJIANG, seq=2),
            rectify("p-none", event_id="z3", source=ZHIJIANG, seq=3),  # exists nowhere
        ]
        done = stub.Publish(ipb.PublishRequest(events=probes), metadata=other, timeout=10)
        assert [r.result for r in done.results] == [ipb.RESULT_REJECTED] * 3
        reasons = [r.reason for r in done.results]
        # Nor whether it exists: before, an existing one "lies outside the source's 420582",
        # one that exists nowhere was an "unknown problem".
        assert reasons == [
            f"problem_rectified.problem_id: unknown problem '{p}' in the source's {ZHIJIANG}"
            for p in ("p-done", "p-open", "p-none")
        ]
        assert not any(TOWN in r or "rectified" in r.split(":", 1)[1] for r in reasons)
    finally:
        hub.stop(grace=0)


def test_a_token_file_broken_by_an_edit_still_revokes_what_it_no_longer_holds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting a token's line revokes it (README, Security), even when the same edit breaks
    another line. Before, any malformed line kept the whole last good table, silently: the
    deleted token went on working and nothing said why."""
    import logging
    import time

    import grpc

    from duhub.bootstrap import Hub, HubConfig
    from duhub.v1 import query_pb2 as qpb
    from duhub.v1 import query_pb2_grpc

    f = tmp_path / "tokens"
    alice = append_token(f, user("alice", YIDU))
    bob = append_token(f, user("bob", ZHIJIANG))
    hub = Hub(HubConfig(tmp_path / "hub", listen="127.0.0.1:0", tokens=str(f)))
    hub.start()
    try:
        stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))

        def units(token: str) -> list[str] | grpc.StatusCode:
            try:
                reply = stub.ListUnits(
                    qpb.ListUnitsRequest(),
                    metadata=[("authorization", f"Bearer {token}")],
                    timeout=10,
                )
            except grpc.RpcError as e:
                return e.code()
            return [u.unit_id for u in reply.units]

        deadline = time.monotonic() + 10
        while units(alice) != [YIDU]:  # the reference hierarchy applied
            assert time.monotonic() < deadline, units(alice)
            time.sleep(0.05)
        # One edit: alice's line deleted, a line for carol added, and a typo on line 2.
        carol = new_token()
        kept = [x for x in f.read_text().splitlines(True) if ":alice" not in x]
        broken = kept + ["sha256:12ab duhub:user:420500:typo\n", token_line(carol, user("c", CITY))]
        with caplog.at_level(logging.ERROR):
            f.write_text("".join(broken))
            assert units(alice) == grpc.StatusCode.UNAUTHENTICATED
            assert units(bob) == [ZHIJIANG]  # unchanged lines hold
            assert units(carol) == grpc.StatusCode.UNAUTHENTICATED  # a broken file adds nobody
        assert any(f"{f}:2:" in r.getMessage() for r in caplog.records), caplog.text
        # Fixed: the new line counts.
        f.write_text("".join(kept + [token_line(carol, user("c", CITY))]))
        assert units(carol) == [CITY]
        assert units(alice) == grpc.StatusCode.UNAUTHENTICATED
    finally:
        hub.stop(grace=0)


@pytest.mark.parametrize(
    ("address", "plain_env", "allowed"),
    [
        ("127.0.0.1:50051", "", True),
        ("localhost:50051", "", True),
        ("[::1]:50051", "", True),
        ("unix:/tmp/duhub.sock", "", True),
        ("192.0.2.2:50051", "", False),
        ("hub.example.org:50051", "", False),
        ("192.0.2.2:50051", "1", True),
        ("192.0.2.2:50051", "yes", False),
    ],
)
def test_a_token_goes_without_tls_to_loopback_only(
    address: str, plain_env: str, allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A county operator's DUHUB_TOKEN went in the clear to any --target, a hub's or not
    (security probe)."""
    monkeypatch.setenv("DUHUB_PLAINTEXT_TOKEN", plain_env)
    creds = load(env={"DUHUB_TOKEN": "duhub_x"})
    if allowed:
        creds.check(address)
        creds.channel(address).close()
    else:
        with pytest.raises(CredentialError, match=f"to {re.escape(address)}, not loopback"):
            creds.channel(address)
    load(env={}).check(address)  # no token: nothing to keep back


def test_the_command_line_sends_no_token_in_the_clear_and_stores_nothing(tmp_path: Path) -> None:
    from tests.unit.test_ops_cli import duhub_env

    events = tmp_path / "e.jsonl"
    events.write_text("{}\n")
    box = tmp_path / "outbox.db"
    env = {"DUHUB_TOKEN": "duhub_x"}
    for args in (
        ("campaigns", "--target", "192.0.2.2:50051"),
        ("publish", str(events), "--target", "192.0.2.2:50051", "--outbox", str(box)),
    ):
        done = duhub_env(env, *args)
        assert done.returncode == 2, done.stderr
        assert "a token goes in the clear without TLS: to 192.0.2.2:50051" in done.stderr
    assert not box.exists()
