"""A flaky link for tests: a TCP proxy on the loopback that drops connections at random,
mid-request or mid-reply, and now and then refuses every connection for a moment; one that
cuts for good partway (`CutLink`); a plain one on another address (`Relay`); and a Kafka
broker that stops answering (`FrozenBroker`)."""

from __future__ import annotations

import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable


class FlakyProxy:
    """Forward 127.0.0.1:<port> to `upstream`, breaking connections at random.

    Every `drop_every` seconds on average one live connection is cut; with probability
    `outage` a cut becomes an outage of up to `outage_s` seconds in which every connection is
    cut as soon as it is made. Stops by itself after `lifetime` seconds at most.
    """

    def __init__(
        self,
        upstream: str,
        *,
        drop_every: float = 0.3,
        outage: float = 0.15,
        outage_s: float = 1.0,
        seed: int = 7,
        lifetime: float = 300.0,
    ) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.drop_every = drop_every
        self.outage = outage
        self.outage_s = outage_s
        self.rng = random.Random(seed)
        self.deadline = time.monotonic() + lifetime
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._down_until = 0.0
        self._stop = threading.Event()  # closed: nothing passes any more
        self._healed = threading.Event()  # healed: nothing is broken any more
        self.cuts = 0
        self.connections = 0
        self._threads = [
            threading.Thread(target=self._accept, daemon=True),
            threading.Thread(target=self._chaos, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self.deadline

    def _accept(self) -> None:
        while self._running():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if time.monotonic() < self._down_until:
                _close(client)  # the link is down
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._cut(src, dst)

    def _cut(self, a: socket.socket, b: socket.socket) -> None:
        with self._lock:
            if (a, b) in self._pairs:
                self._pairs.remove((a, b))
            elif (b, a) in self._pairs:
                self._pairs.remove((b, a))
        _close(a)
        _close(b)

    def _chaos(self) -> None:
        while self._running() and not self._healed.is_set():
            self._healed.wait(self.rng.expovariate(1 / self.drop_every))
            if self._healed.is_set():
                return
            with self._lock:
                pairs = list(self._pairs)
            if self.rng.random() < self.outage:
                self._down_until = time.monotonic() + self.rng.uniform(0.1, self.outage_s)
                victims = pairs
            else:
                victims = [self.rng.choice(pairs)] if pairs else []
            for a, b in victims:
                self.cuts += 1
                self._cut(a, b)

    def heal(self) -> None:
        """Stop breaking things; connections pass from now on."""
        self._healed.set()
        self._down_until = 0.0

    def close(self) -> None:
        self._stop.set()
        _close(self.listener)
        with self._lock:
            pairs = list(self._pairs)
        for a, b in pairs:
            self._cut(a, b)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


class _Forwarder:
    """A TCP proxy on a free loopback port to `upstream`: each connection it takes gets one
    to `upstream`, and `_forward` decides what passes between the two."""

    def __init__(self, upstream: str, bind: str = "127.0.0.1") -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server((bind, 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.address = f"{bind}:{self.port}"
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()

    def _start(self) -> None:
        """Take connections from now on (a subclass's own state made first)."""
        threading.Thread(target=self._accept, daemon=True).start()

    def _takes(self) -> bool:
        """Whether a new connection is taken (else closed at once)."""
        return True

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._takes():
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._socks += [client, server]
            self._forward(client, server)

    def _close_connections(self) -> None:
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            _close(s)


class CutLink(_Forwarder):
    """Forward 127.0.0.1:<port> to `upstream` until the client has sent `budget` bytes, then
    cut every connection and refuse every later one: a link that drops partway, for good."""

    def __init__(self, upstream: str, budget: int, bind: str = "127.0.0.1") -> None:
        super().__init__(upstream, bind)
        self.budget = budget
        self.sent = 0  # bytes the client sent through
        self._cut = threading.Event()
        self._start()

    def _takes(self) -> bool:
        return not self._cut.is_set()

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while not self._cut.is_set():
                data = src.recv(65536)
                if not data:
                    break
                if counted:
                    with self._lock:
                        self.sent += len(data)
                        over = self.sent - self.budget
                    if over > 0:
                        dst.sendall(data[: len(data) - over])
                        self.cut()
                        return
                dst.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        self._cut.set()
        self._close_connections()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        _close(self.listener)


class Relay(CutLink):
    """Forward `bind`:<a free port> to `upstream`, all of it, until closed."""

    def __init__(self, upstream: str, bind: str = "127.0.0.1") -> None:
        super().__init__(upstream, sys.maxsize, bind)


class FrozenBroker(_Forwarder):
    """Forward 127.0.0.1:<a free port> to the Kafka broker `upstream`, and tell clients
    the broker is here: its own address in the answers (Metadata's broker list) is rewritten
    to this one, so every connection a client makes, not only the bootstrap one, goes through.
    After `freeze` nothing passes either way and nothing is closed: a broker that accepts
    connections and requests and never answers (frozen, a paused VM, a lost route)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        host, port = self.upstream
        # The advertised host string's bytes, then its int32 port: the same length either way,
        # so the answer's framing stays right.
        self._theirs = host.encode() + struct.pack(">i", port)
        self._ours = host.encode() + struct.pack(">i", self.port)
        self._frozen = threading.Event()
        self._start()

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
        threading.Thread(target=self._answers, args=(server, client), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                if not self._frozen.is_set():
                    server.sendall(data)
        except OSError:
            pass

    def _answers(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while True:
                size = _read_exactly(server, 4)
                frame = size + _read_exactly(server, struct.unpack(">i", size)[0])
                if not self._frozen.is_set():
                    client.sendall(frame.replace(self._theirs, self._ours))
        except (OSError, EOFError):
            pass

    def freeze(self) -> None:
        """From now on the broker never answers; connections stay open, new ones are taken."""
        self._frozen.set()

    def close(self) -> None:
        self._stop.set()
        _close(self.listener)
        self._close_connections()


def _read_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


# A call through a frozen link may never return: asked in a thread, with a limit.
def run_for(call: Callable[[], object], limit_s: float) -> list[object]:
    """Return [what `call` returned or raised], or [] when it is still waiting after `limit_s`
    (in a thread: a call that never returns fails the test instead of hanging it)."""
    done: list[object] = []

    def run() -> None:
        try:
            done.append(call())
        except Exception as e:  # noqa: BLE001 (what it raised is the outcome)
            done.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit_s)
    return done
