"""The simulated county nodes: publish the backfill, launch the campaign, then keep the
live activity coming at about `rate` events a second, over gRPC like any real node."""

from __future__ import annotations

import logging
import pathlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from duhub.simulate.backfill import backfill_2022
from duhub.simulate.link import Link, Stopped
from duhub.simulate.scenario import Scenario
from duhub.simulate.state import SeqBook, SimState
from duhub.simulate.units import load_hierarchy
from duhub.v1 import events_pb2 as pb
from duhub.v1 import ingest_pb2 as ipb

log = logging.getLogger(__name__)

BACKFILL_BATCH = 500
TICK_SECONDS = 0.5
SKIP_SEQS = 1_000  # how far ahead to jump when the hub already knows a seq
ERROR_PAUSE = 5.0


class Simulator:
    def __init__(
        self,
        target: str,
        state_dir: pathlib.Path,
        seed: int | None = None,
        rate: float = 20.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.target = target
        self.state_dir = pathlib.Path(state_dir)
        self.rate = rate
        self.clock = clock
        self.rng = random.Random(seed)
        self.hierarchy = load_hierarchy()
        self.state: SimState | None = None
        self.scenario: Scenario | None = None
        # accepted / duplicate / rejected events, refused batches, seqs skipped ahead.
        self.stats: Counter[str] = Counter()
        self.rejections: list[str] = []
        self._stop = threading.Event()
        self._link = Link(target, self._stop)
        self._step: list[pb.Event] = []  # the events of the step being sent
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run the nodes in a background thread; return at once."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="duhub-simulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop promptly: an unacknowledged batch is dropped (its seqs stay reserved)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._link.close()

    def _run(self) -> None:
        # Nothing here may take the hub down with it: log, pause, carry on.
        while not self._stop.is_set():
            try:
                self.prepare()
                while not self._stop.is_set():
                    began = time.monotonic()
                    self.tick()
                    self._stop.wait(max(0.0, TICK_SECONDS - (time.monotonic() - began)))
            except Stopped:
                return
            except Exception:
                log.exception("simulator failed; carrying on in %.0fs", ERROR_PAUSE)
                # Resume from the saved state: reserved seqs, the last acknowledged scenario.
                self.state = self.scenario = None
                self._stop.wait(ERROR_PAUSE)

    # -- the steps, callable without the thread ----------------------------------------------

    def prepare(self) -> None:
        """Wait for the hub; on first start publish the 2022 backfill and launch the campaign."""
        self._link.connect()
        if self.state is None:
            self.state = SimState.load(self.state_dir)
            self.scenario = Scenario(
                self.hierarchy, self.rng, self.rate, self.state.nonce, self.state.scenario
            )
        assert self.scenario is not None
        if self.state.sending:
            # A step the hub may hold already, its answer never recorded: the same events
            # again (DUPLICATE where the hub has them), then the scenario goes on after it.
            self._step = [pb.Event.FromString(x) for x in self.state.sending]
            self._send_by_source(self._step)
            self._commit()
        if not self.state.backfilled:
            self.publish_backfill()
        if self.scenario.plan is None:
            launch = self.scenario.launch(self.clock())
            self._publish(launch)
            assert self.scenario.plan is not None
            log.info("simulator launched campaign %s", self.scenario.plan.campaign_id)
            self._commit()

    def publish_backfill(self) -> None:
        """Publish the 2022 history, seqs 1.. of each source, so a resend is a duplicate."""
        assert self.state is not None
        events = backfill_2022(self.hierarchy)
        fixed = SeqBook()
        fixed.assign(events)
        for source, nxt in fixed.next_seq.items():
            self.state.seqs.next_seq[source] = max(self.state.seqs.next_seq.get(source, 1), nxt)
        self.state.save()
        for source in sorted(fixed.next_seq):
            mine = [e for e in events if e.source == source]
            for i in range(0, len(mine), BACKFILL_BATCH):
                self._send([mine[i : i + BACKFILL_BATCH]])
        self.state.backfilled = True
        self.state.save()
        log.info("simulator published the 2022 backfill (%d events)", len(events))

    def tick(self) -> list[pb.Event]:
        """Publish one step of live activity at the clock's now; return its events."""
        assert self.scenario is not None, "prepare() first"
        events = self.scenario.step(self.clock())
        self._publish(events)
        self._commit()
        return events

    # -- publishing --------------------------------------------------------------------------

    def _commit(self) -> None:
        """Record that the hub answered every event of the step just sent."""
        assert self.state is not None and self.scenario is not None
        self.state.scenario = self.scenario.snapshot()
        self.state.sending = []
        self.state.save()

    def _publish(self, events: Sequence[pb.Event]) -> None:
        """Reserve seqs and record the step's events with the scenario after it (saved before
        sending: a restart sends them again, never a new step in their place), then send one
        request per source."""
        assert self.state is not None and self.scenario is not None
        self.state.seqs.assign(events)
        self.state.scenario = self.scenario.snapshot()
        self._step = list(events)
        self.state.sending = [e.SerializeToString() for e in events]
        self.state.save()
        self._send_by_source(events)

    def _send_by_source(self, events: Sequence[pb.Event]) -> None:
        by_source: dict[str, list[pb.Event]] = {}
        for e in events:
            by_source.setdefault(e.source, []).append(e)
        self._send(list(by_source.values()))

    def _send(self, batches: list[list[pb.Event]]) -> None:
        assert self.state is not None
        jump = SKIP_SEQS
        while batches:
            again: list[list[pb.Event]] = []
            for batch, reply in zip(batches, self._link.publish(batches), strict=True):
                if reply is None:
                    self.stats["refused_batches"] += 1
                    continue
                again += [self._tally(batch, reply, jump)]
            batches = [b for b in again if b]
            if batches:  # the hub knew some seqs already: take fresh ones past them, resend
                self.state.seqs.assign(e for b in batches for e in b)
                if self.state.sending:  # the step as it is sent now (its events renumbered)
                    self.state.sending = [e.SerializeToString() for e in self._step]
                self.state.save()
                jump *= 2

    def _tally(
        self, batch: list[pb.Event], reply: ipb.PublishResponse, jump: int
    ) -> list[pb.Event]:
        """Count the results; return the events to send again under new seqs."""
        assert self.state is not None
        resend = []
        for e, r in zip(batch, reply.results, strict=True):
            if r.result == ipb.RESULT_ACCEPTED:
                self.stats["accepted"] += 1
            elif r.result == ipb.RESULT_DUPLICATE:
                self.stats["duplicate"] += 1
            elif r.field in ("seq", "event_id") and "already used" in r.reason:
                self.stats["seq_skips"] += 1
                self.state.seqs.skip(e.source, e.seq, jump)
                resend.append(e)
            elif r.field == "campaign_launched.campaign_id" and "already launched" in r.reason:
                self.stats["campaign_known"] += 1  # launched before this state file was lost
            elif resend:
                # Judged without an earlier event of its batch that is sent again (its seq was
                # taken): it may need it, as a rectification needs its problem found. Sent
                # again after it, in the batch's order.
                self.stats["resent_after"] += 1
                resend.append(e)
            else:
                self.stats["rejected"] += 1
                self.rejections = [*self.rejections[-99:], f"{r.event_id}: {r.reason}"]
                if self.stats["rejected"] <= 20 or self.stats["rejected"] % 1000 == 0:
                    log.warning(
                        "hub rejected %s (%d so far): %s",
                        r.event_id,
                        self.stats["rejected"],
                        r.reason,
                    )
        return resend
