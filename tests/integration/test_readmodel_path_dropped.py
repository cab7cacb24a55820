"""A network path to PostgreSQL dropped while a statement is on its way: the session fails
within seconds, not after the kernel's ~15 min of retransmissions.

Keepalives probe only a socket with nothing unacknowledged, so they never fired here: an
aggregate worker whose path dropped mid-batch (a chaos probe of 2026-12-07, with a veth
taken down) sat in its COMMIT, holding its partitions, while the read model fell behind
until ingest refused every publish (200,000 events behind). A real drop needs packets that
go nowhere, so the client runs in a network namespace of its own, behind a veth pair the
test takes down: root and `ip` only (skipped otherwise)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from duhub.readmodel.engine import open_engine
from tests.flakylink import Relay
from tests.infra import fresh_database

ROOT = Path(__file__).resolve().parents[2]
# The session must fail well inside this; without TCP_USER_TIMEOUT it waited ~15 min.
FAILS_WITHIN_S = 45

CLIENT = """
import sys, time
from sqlalchemy import text
from duhub.readmodel.engine import open_engine
engine = open_engine(sys.argv[1], create=False, worker=True)
with engine.connect() as conn:
    conn.execute(text("SELECT 1"))
    print("ready", flush=True)
    sys.stdin.readline()  # the path is down now
    started = time.monotonic()
    try:
        conn.execute(text("SELECT 1"))
        print("answered", flush=True)
    except Exception as e:
        print(f"failed after {time.monotonic() - started:.1f} s: {type(e).__name__}", flush=True)
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _can_make_namespaces() -> bool:
    if os.geteuid() != 0 or not shutil.which("ip"):
        return False
    name = f"dhprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", name)
    except (subprocess.CalledProcessError, OSError):
        return False
    _ip("netns", "del", name)
    return True


pytestmark = pytest.mark.postgres


def test_every_session_bounds_what_it_leaves_unacknowledged() -> None:
    """Where namespaces cannot be made (the test below skipped): the bound is on the socket
    of every session, a worker's or not (ingest and query read through these too)."""
    with fresh_database() as url:
        for worker in (True, False):
            engine = open_engine(url, worker=worker)
            try:
                with engine.connect() as conn:
                    fd = conn.connection.dbapi_connection.fileno()  # type: ignore[union-attr]
                    sock = socket.socket(fileno=os.dup(fd))
                    try:
                        got = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
                    finally:
                        sock.close()
                assert got == 25_000, f"TCP_USER_TIMEOUT {got} ms (worker={worker})"
            finally:
                engine.dispose()


@pytest.mark.skipif(not _can_make_namespaces(), reason="needs root and ip netns")
def test_a_statement_sent_into_a_dropped_path_fails_within_seconds() -> None:
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"dhns{tag}", f"dh{tag}a", f"dh{tag}b"
    net = f"10.{random.randrange(200, 250)}.{random.randrange(0, 250)}"
    with fresh_database() as url:
        pg_host, pg_port = url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)
        _ip("netns", "add", ns)
        try:
            _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            _ip("link", "set", ns_if, "netns", ns)
            _ip("addr", "add", f"{net}.1/30", "dev", host_if)
            _ip("link", "set", host_if, "up")
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{net}.2/30", "dev", ns_if)
            _ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
            relay = Relay(f"{pg_host}:{pg_port}", bind=f"{net}.1")
            via = url.replace(f"@{pg_host}:{pg_port}/", f"@{net}.1:{relay.port}/")
            client = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, via],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            try:
                assert client.stdout is not None and client.stdin is not None
                assert client.stdout.readline().strip() == "ready", client.stderr
                _ip("link", "set", host_if, "down")  # packets into the path go nowhere
                client.stdin.write("go\n")
                client.stdin.flush()
                said: list[str] = []
                reader = threading.Thread(
                    target=lambda: said.append(client.stdout.readline()),  # type: ignore[union-attr]
                    daemon=True,
                )
                reader.start()
                reader.join(FAILS_WITHIN_S + 10)
                assert said, f"the statement still waits {FAILS_WITHIN_S + 10} s after the drop"
                assert said[0].startswith("failed after "), said
                waited = float(said[0].split()[2])
                assert waited < FAILS_WITHIN_S, said
            finally:
                client.kill()
                client.wait(10)
                relay.close()
        finally:
            subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
            _ip("netns", "del", ns)
