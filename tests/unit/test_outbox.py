"""The county-node outbox against a small in-process ingest that fails on cue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from duhub.node import Backoff, Outbox, Unreachable
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb
from duhub.v1 import ingest_pb2_grpc
from tests.childlines import first_line


def event(i: int, source: str = "420581") -> pb.Event:
    e = pb.Event(event_id=f"e-{i}", source=source, seq=i)
    e.accountability_imposed.unit_id = source
    e.accountability_imposed.persons = 1
    return e


class FakeIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Accepts an id once, then answers DUPLICATE; rejects source 'bad'. `fail` calls answer
    UNAVAILABLE first; `lose` calls are accepted but the caller sees a time-out. Calls past the
    first `hold_after` wait for `release` (`held` is set when one does; none waits once it is
    set), then answer; with `taken=False` they wait before taking their events and answer
    UNAVAILABLE: the events never reached the log."""

    def __init__(
        self,
        fail: int = 0,
        lose: int = 0,
        hold_after: int | None = None,
        taken: bool = True,
    ) -> None:
        self.fail = fail
        self.lose = lose
        self.hold_after = hold_after
        self.taken = taken
        self.held = threading.Event()
        self.release = threading.Event()
        self.user = False  # the caller's credentials are a user's: it may not publish
        self.accepted: list[str] = []
        self.calls = 0
        self._lock = threading.Lock()

    def Publish(self, request, context):  # type: ignore[no-untyped-def]
        with self._lock:
            self.calls += 1
            hold = self.hold_after is not None and self.calls > self.hold_after
            hold = hold and not self.release.is_set()
        if hold and not self.taken:
            self._hold()
            context.abort(grpc.StatusCode.UNAVAILABLE, "held, not taken")
        with self._lock:
            if self.fail > 0:
                self.fail -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
            if self.user:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "user u may not publish")
            # As the hub names an event of another source (duhub.auth.principal).
            for i, e in enumerate(request.events):
                if e.source == "other":
                    context.abort(
                        grpc.StatusCode.PERMISSION_DENIED,
                        f"events[{i}].source: node s publishes only as 's', not as 'other'",
                    )
            results = []
            for e in request.events:
                r = ipb.EventResult(event_id=e.event_id)
                if e.source == "bad":
                    r.result, r.field, r.reason = ipb.RESULT_REJECTED, "source", "source: bad"
                elif e.event_id in self.accepted:
                    r.result = ipb.RESULT_DUPLICATE
                else:
                    self.accepted.append(e.event_id)
                    r.result, r.partition, r.offset = ipb.RESULT_ACCEPTED, 0, len(self.accepted)
                results.append(r)
            lose = self.lose > 0
            self.lose -= lose
        if hold and self.taken:
            self._hold()
        if lose:  # held until the caller's deadline has passed, however long it is
            while context.is_active():
                time.sleep(0.01)
        return ipb.PublishResponse(results=results)

    def _hold(self) -> None:
        self.held.set()
        self.release.wait(timeout=60)  # bounded: a failed test may never release it


@pytest.fixture
def serve() -> Iterator:  # type: ignore[type-arg]
    servers: list[grpc.Server] = []

    def start(fake: FakeIngest) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(fake, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for s in servers:
        s.stop(0)


def no_wait(_: float) -> None:
    pass


def test_adding_twice_is_a_no_op_and_replace_sends_again(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert box.add([event(1), event(2)]) == ["added", "added"]
        assert box.add([event(1)]) == ["present"]
        assert box.counts()["pending"] == 2
        changed = event(1)
        changed.seq = 99
        assert box.add([changed], replace=True) == ["replaced"]
        # Sent again as it is now: behind what is pending, as a new event would be.
        assert [s.event.seq for s in box.pending()] == [2, 99]
        with pytest.raises(ValueError, match="event_id"):
            box.add([pb.Event(source="420581")])


def test_events_added_together_are_sent_in_their_order(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    # `duhub publish` re-adds a file's events with replace=True. A line rejected before (a
    # visit to a unit not registered yet) and fixed by adding the registration above it must
    # be sent after that registration: before, it kept its old place, went first, and the hub
    # rejected it again ("unknown unit: register it first", which the file now does).
    sent: list[str] = []

    class Recording(FakeIngest):
        def Publish(self, request, context):  # type: ignore[no-untyped-def]
            sent.extend(e.event_id for e in request.events)
            return super().Publish(request, context)

    address = serve(Recording())
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(2, source="bad")])  # answered REJECTED
        box.forward(address, sleep=no_wait)
        sent.clear()
        box.add([event(1), event(3), event(2)], replace=True)
        assert [s.event_id for s in box.pending()] == ["e-1", "e-3", "e-2"]
        box.forward(address, sleep=no_wait)
        assert sent == ["e-1", "e-3", "e-2"]


def test_forward_retries_then_keeps_rejections_for_the_operator(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    fake = FakeIngest(fail=3)
    address = serve(fake)
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(1), event(2, source="bad"), event(3)])
        report = box.forward(address, sleep=no_wait)
        assert (report.accepted, report.duplicate, report.rejected) == (2, 0, 1)
        assert report.retries == 3 and report.ends == {0: 3}
        assert box.counts() == {"pending": 0, "accepted": 2, "duplicate": 0, "rejected": 1}
        (kept,) = box.rejected()
        assert (kept.event_id, kept.field, kept.reason) == ("e-2", "source", "source: bad")
        # Adding a forwarded event again is a no-op: nothing is sent.
        box.add([event(1)])
        assert box.forward(address, sleep=no_wait).accepted == 0
        assert box.retry_rejected() == 1
        assert box.forward(address, sleep=no_wait).rejected == 1


def test_a_refused_request_is_kept_aside_not_resent_with_later_events(  # type: ignore[no-untyped-def]
    tmp_path: Path, serve
) -> None:
    """Only the event the hub names is kept aside: the whole batch was, so event 1, sent with
    it, was rejected for good and never sent again."""
    address = serve(FakeIngest())
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(1), event(2, source="other")])
        with pytest.raises(grpc.RpcError) as refused:
            box.forward(address, sleep=no_wait)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert box.counts()["rejected"] == 1 and box.counts()["pending"] == 1
        assert [(r.event_id, r.reason) for r in box.rejected()] == [
            (
                "e-2",
                "PERMISSION_DENIED: events[1].source: node s publishes only as 's', not as 'other'",
            )
        ]
        box.add([event(3)])
        assert box.forward(address, sleep=no_wait).accepted == 2  # not refused again


def test_every_event_of_the_refused_source_is_kept_aside_at_once(  # type: ignore[no-untyped-def]
    tmp_path: Path, serve
) -> None:
    """A file of many lines with one mistyped source: the hub names the first, but every event
    of that source would be refused the same way. Kept aside one a run, it took a run per line
    before the good events behind them went."""
    address = serve(FakeIngest())
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(1), event(2, source="other"), event(3, source="other"), event(4)])
        with pytest.raises(grpc.RpcError):
            box.forward(address, sleep=no_wait)
        assert sorted(r.event_id for r in box.rejected()) == ["e-2", "e-3"]
        assert box.counts()["pending"] == 2
        assert box.forward(address, sleep=no_wait).accepted == 2


def test_events_refused_for_the_callers_credentials_wait_for_others(  # type: ignore[no-untyped-def]
    tmp_path: Path, serve
) -> None:
    """A user's credentials may not publish at all: the events are not at fault, and wait."""
    fake = FakeIngest()
    fake.user = True
    address = serve(fake)
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(1), event(2)])
        with pytest.raises(grpc.RpcError) as refused:
            box.forward(address, sleep=no_wait)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert box.counts()["pending"] == 2 and box.counts()["rejected"] == 0
        fake.user = False
        assert box.forward(address, sleep=no_wait).accepted == 2


def test_a_lost_answer_is_sent_again_and_counted_once(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    fake = FakeIngest(lose=1)
    address = serve(fake)
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(i) for i in range(1, 6)])
        # Time enough for the answer sent again on a loaded host: with 0.3 s it too could
        # time out (2 retries); the lost one is held past the deadline whatever it is.
        report = box.forward(address, timeout=3.0, sleep=no_wait)
        assert report.retries == 1 and report.duplicate == 5
        assert sorted(fake.accepted) == [f"e-{i}" for i in range(1, 6)]


def test_gives_up_after_a_while_and_keeps_everything_pending(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(1), event(2)])
        t0 = time.monotonic()
        with pytest.raises(Unreachable) as raised:
            box.forward("127.0.0.1:1", give_up_after=0.5, backoff=Backoff(base=0.05, cap=0.1))
        assert time.monotonic() - t0 < 10
        assert raised.value.report.pending == 2
        assert box.counts()["pending"] == 2


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    b = Backoff(base=0.1, cap=1.0)
    waits = [b.next() for _ in range(8)]
    assert 0.05 <= waits[0] <= 0.1 and all(0.5 <= w <= 1.0 for w in waits[4:])
    b.reset()
    assert b.next() <= 0.1


CHILD = """
import sys
from duhub.node import Outbox
from tests.unit.test_outbox import event
box = Outbox(sys.argv[1])
box.add([event(i) for i in range(1, 201)])
print("stored", flush=True)
box.forward(sys.argv[2], batch=10)
"""


@pytest.mark.parametrize("taken", [True, False], ids=["batch-taken", "batch-not-taken"])
def test_a_node_killed_mid_forward_loses_nothing(tmp_path: Path, serve, taken: bool) -> None:  # type: ignore[no-untyped-def]
    # The hub holds the sixth batch (having taken its events or not) until the node is
    # killed: killed mid-forward however slow the machine.
    fake = FakeIngest(hold_after=5, taken=taken)
    address = serve(fake)
    path = tmp_path / "o.db"
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), address],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        try:
            assert first_line(child, 60, err).strip() == "stored"
            assert fake.held.wait(timeout=60), f"{len(fake.accepted)} accepted, none held"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            fake.release.set()
    assert 50 <= len(fake.accepted) < 200  # killed mid-forward
    with Outbox(path) as box:
        report = box.forward(address, batch=10, sleep=no_wait, give_up_after=30)
        counts = box.counts()
    assert counts["pending"] == 0 and counts["accepted"] + counts["duplicate"] == 200
    assert report.duplicate <= 10  # at most the batch in flight when it died
    assert sorted(fake.accepted) == sorted(f"e-{i}" for i in range(1, 201))


def test_an_event_replaced_while_in_flight_keeps_its_own_answer(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    """A county system stores a corrected copy of an event (same id, other content) while the
    outbox is sending the old one. The hub's answer is to the old copy. Before, it was
    recorded on the corrected copy, which was never sent: `outbox status` said it was
    accepted, though the hub holds the old content (and would reject the new one)."""
    sending, release = threading.Event(), threading.Event()

    class Held(FakeIngest):
        def Publish(self, request, context):  # type: ignore[no-untyped-def]
            sending.set()
            release.wait(10)
            return super().Publish(request, context)

    address = serve(Held())
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(1)])
        forwarding = threading.Thread(target=box.forward, args=(address,))
        forwarding.start()
        assert sending.wait(10)
        corrected = event(1)
        corrected.accountability_imposed.persons = 2
        assert box.add([corrected], replace=True) == ["replaced"]
        release.set()
        forwarding.join(10)
        (held,) = box.get(["e-1"]).values()
        assert held.event.accountability_imposed.persons == 2
        assert held.state == "duplicate"  # sent after the old copy's answer, as it is now


def test_forwards_of_one_outbox_at_once_send_each_event_once(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    """Threads of a node (or processes sharing the file) forwarding at once take turns: before,
    each sent whatever was pending, so batches went out twice side by side."""
    sent: list[str] = []

    class Recording(FakeIngest):
        def Publish(self, request, context):  # type: ignore[no-untyped-def]
            with self._lock:
                sent.extend(e.event_id for e in request.events)
            time.sleep(0.01)  # long enough for the other forward to look at what is pending
            return super().Publish(request, context)

    address = serve(Recording())
    with Outbox(tmp_path / "o.db") as box:
        box.add([event(i) for i in range(1, 1001)])
        reports = []
        threads = [
            threading.Thread(target=lambda: reports.append(box.forward(address, batch=50)))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(sent) == sorted(f"e-{i}" for i in range(1, 1001))
        assert sum(r.accepted for r in reports) == 1000 and sum(r.duplicate for r in reports) == 0
        assert box.counts()["accepted"] == 1000


def test_a_copy_the_hub_holds_takes_the_place_of_a_rejected_one_only(
    tmp_path: Path,
    serve,  # type: ignore[no-untyped-def]
) -> None:
    """`record_held`: the answer to a copy sent outside the outbox (a file's later line under
    the same id) replaces a rejected copy; a pending one waits for its own answer, a delivered
    one stays, and a rejection of the outside copy changes nothing."""
    fake = FakeIngest()
    address = serve(fake)
    bad = [event(i, "bad") for i in (1, 2, 3)]
    with Outbox(tmp_path / "o.db") as box:
        box.add([*bad, event(4)])
        box.forward(address, sleep=no_wait)
        box.add([event(5)])  # pending: not answered yet
        accepted = [
            ipb.EventResult(event_id=f"e-{i}", result=ipb.RESULT_ACCEPTED, partition=0, offset=i)
            for i in (1, 4, 5)
        ]
        rejected = ipb.EventResult(event_id="e-2", result=ipb.RESULT_REJECTED, reason="no")
        held = [(event(1), accepted[0]), (event(2), rejected), (event(4), accepted[1])]
        assert box.record_held([*held, (event(5), accepted[2])]) == 1
        got = box.get(["e-1", "e-2", "e-3", "e-4", "e-5"])
        assert (got["e-1"].state, got["e-1"].event.source, got["e-1"].offset) == (
            "accepted",
            "420581",
            1,
        )
        assert got["e-1"].reason == ""
        assert [got[i].state for i in ("e-2", "e-3", "e-4", "e-5")] == [
            "rejected",
            "rejected",
            "accepted",
            "pending",
        ]
        assert got["e-2"].event.source == "bad"
        assert [s.event_id for s in box.rejected()] == ["e-2", "e-3"]


def test_a_hub_too_busy_for_the_call_is_asked_again(tmp_path: Path) -> None:
    # A hub past its concurrent calls refuses the next RESOURCE_EXHAUSTED at once (grpc's
    # maximum_concurrent_rpcs): busy for now. The forward raised it, and the county's events
    # waited for the operator to forward them again.
    fake = FakeIngest(hold_after=0)  # the busy call holds the only slot until released
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), maximum_concurrent_rpcs=1)
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(fake, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()

    def pause(seconds: float) -> None:
        # The first attempt was refused: the busy call may end now (its slot is freed at some
        # point of the retries).
        fake.release.set()
        time.sleep(seconds)

    try:
        busy = ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(address))
        other = busy.Publish.future(ipb.PublishRequest(events=[event(99)]), timeout=30)
        assert fake.held.wait(timeout=30), "the busy call never came"
        with Outbox(tmp_path / "o.db") as box:
            box.add([event(1)])
            report = box.forward(address, backoff=Backoff(base=0.05, cap=0.1), sleep=pause)
            assert report.accepted == 1 and report.retries >= 1
        assert other.result(timeout=30).results[0].result == ipb.RESULT_ACCEPTED
    finally:
        fake.release.set()
        server.stop(0)
