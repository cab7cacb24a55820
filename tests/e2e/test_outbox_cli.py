"""`duhub outbox retry|status` as a county office reads them: what a retry sent and what the
hub answered, and what the outbox holds after a file was sent twice. A real hub (embedded log,
SQLite) in process, the `duhub` command as its own process, an outbox per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from duhub.bootstrap import Hub, HubConfig
from duhub.cli.publish import parse_event
from duhub.node.outbox import BATCH, Outbox
from duhub.v1 import ingest_pb2 as ipb
from tests.e2e.hubproc import duhub
from tests.flakylink import CutLink

YIDU = "420581"
DOWN = "127.0.0.1:1"  # nothing listens there: publish leaves its events waiting


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = Hub(HubConfig(tmp_path_factory.mktemp("outbox-cli") / "data", listen="127.0.0.1:0"))
    hub.start()
    yield hub
    hub.stop()


def sanction(event_id: str, seq: int, unit_id: str = YIDU) -> str:
    return json.dumps(
        {
            "eventId": event_id,
            "source": YIDU,
            "seq": str(seq),
            "occurredAt": "2022-11-05T00:00:00Z",
            "sanctionImposed": {"unitId": unit_id, "area": "ecology", "persons": 1},
        }
    )


def write(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_outbox_retry_says_what_it_sent_and_what_the_hub_answered(hub: Hub, tmp_path: Path) -> None:
    """Before, `outbox retry` printed only the outbox's whole state ("0 pending, 3 accepted,
    0 duplicate, 1 rejected"): a user could not tell what this retry sent from what earlier
    runs had, nor read why the hub rejected what it just sent without `outbox status`."""
    box = str(tmp_path / "outbox.db")
    first = write(tmp_path, [sanction("ret-1", 1)])
    done = duhub(hub.address, "publish", first, "--outbox", box, "--wait", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    # The link is down: three events wait, one of them naming another county's unit.
    lines = [sanction("ret-2", 2), sanction("ret-3", 3, "420582"), sanction("ret-1", 1)]
    done = duhub(DOWN, "publish", write(tmp_path, lines), "--outbox", box, "--retry-for", "0")
    assert done.returncode == 3, done.stdout + done.stderr

    done = duhub(hub.address, "outbox", "retry", "--outbox", box)
    assert done.returncode == 1, done.stdout + done.stderr  # it holds a rejected event
    assert done.stdout.splitlines() == [
        "sent 3 events: 1 accepted, 1 duplicate, 1 rejected",
        "  ret-3: sanction_imposed.unit_id: unit '420582' lies outside the source's 420581",
        f"{box}: 0 pending, 2 delivered, 1 rejected (duhub outbox status lists them)",
    ]
    done = duhub(hub.address, "outbox", "retry", "--outbox", box, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["sent"] == {"accepted": 0, "duplicate": 0, "rejected": 0, "rejections": []}
    assert (answer["pending"], answer["delivered"], answer["rejected"]) == (0, 2, 1)

    done = duhub(hub.address, "outbox", "retry", "--outbox", box, "--rejected", "--json")
    answer = json.loads(done.stdout)
    assert answer["sent"] == {
        "accepted": 0,
        "duplicate": 0,
        "rejected": 1,
        "rejections": [
            {
                "event_id": "ret-3",
                "field": "sanction_imposed.unit_id",
                "reason": "sanction_imposed.unit_id: unit '420582' lies outside the source's "
                "420581",
            }
        ],
    }


def test_outbox_status_counts_a_file_sent_twice_as_delivered(hub: Hub, tmp_path: Path) -> None:
    """A file published, then published again: the second answers are DUPLICATE, recorded
    over the first ACCEPTED, and `outbox status` said "0 accepted, 2 duplicate": read as
    nothing having been accepted. Both answers mean the hub holds the event: delivered."""
    box = str(tmp_path / "outbox.db")
    events = write(tmp_path, [sanction("twice-1", 11), sanction("twice-2", 12)])
    for _ in range(2):
        done = duhub(hub.address, "publish", events, "--outbox", box, "--wait", "0")
        assert done.returncode == 0, done.stdout + done.stderr
    assert "0 accepted, 2 duplicate, 0 rejected" in done.stdout  # this run's answers

    done = duhub(hub.address, "outbox", "status", "--outbox", box)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"{box}: 0 pending, 2 delivered, 0 rejected"]
    done = duhub(hub.address, "outbox", "status", "--outbox", box, "--json")
    answer = json.loads(done.stdout)
    assert (answer["pending"], answer["delivered"], answer["rejected"]) == (0, 2, 0)


@pytest.mark.parametrize("as_json", [False, True])
def test_an_outbox_retry_that_gives_up_says_what_the_hub_answered_before(
    hub: Hub, tmp_path: Path, as_json: bool
) -> None:
    """Before, a retry whose link dropped partway (exit 3) said only why it gave up: what the
    hub had answered before the drop, a rejection and its reason included, went unsaid."""
    box, tag = str(tmp_path / "outbox.db"), "json" if as_json else "text"
    first = 1000 if as_json else 3000  # this source's seqs, apart from the other tests'
    lines = [sanction(f"drop-{tag}-{i}", first + i) for i in range(2 * BATCH)]
    lines[3] = sanction(f"drop-{tag}-3", first + 3, "420582")  # another county's unit
    done = duhub(DOWN, "publish", write(tmp_path, lines), "--outbox", box, "--retry-for", "0")
    assert done.returncode == 3, done.stdout + done.stderr
    # The link carries the first batch whole, then drops partway through the second.
    one_batch = ipb.PublishRequest(events=[parse_event(x) for x in lines[:BATCH]]).ByteSize()
    link = CutLink(hub.address, budget=one_batch + 4096)
    try:
        args = ["outbox", "retry", "--outbox", box, "--retry-for", "0"]
        done = duhub(link.address, *args, *(["--json"] if as_json else []))
    finally:
        link.close()
    assert done.returncode == 3, done.stdout + done.stderr
    reason = "sanction_imposed.unit_id: unit '420582' lies outside the source's 420581"
    if as_json:
        answer = json.loads(done.stdout)
        assert answer["sent"] == {
            "accepted": BATCH - 1,
            "duplicate": 0,
            "rejected": 1,
            "rejections": [
                {"event_id": "drop-json-3", "field": "sanction_imposed.unit_id", "reason": reason}
            ],
        }
        assert (answer["pending"], answer["delivered"], answer["rejected"]) == (BATCH, BATCH - 1, 1)
    else:
        assert done.stdout.splitlines() == [
            f"sent {BATCH} events: {BATCH - 1} accepted, 0 duplicate, 1 rejected",
            f"  drop-text-3: {reason}",
            f"{box}: {BATCH} pending, {BATCH - 1} delivered, 1 rejected (duhub outbox status "
            "lists them)",
        ]
    # Then why it gave up, and that nothing unanswered is lost.
    assert f"{BATCH} events wait in {box}" in done.stderr, done.stderr
    assert f"no hub answers at {link.address}" in done.stderr, done.stderr


@pytest.mark.parametrize("as_json", [False, True])
def test_a_publish_that_gives_up_says_what_the_hub_answered_before(
    hub: Hub, tmp_path: Path, as_json: bool
) -> None:
    """As for `outbox retry`: a publish whose link dropped partway (exit 3) said only how many
    events wait; the answers it had per line, a rejection and its reason included, went
    unsaid."""
    box, tag = str(tmp_path / "outbox.db"), "json" if as_json else "text"
    first = 5000 if as_json else 7000  # this source's seqs, apart from the other tests'
    lines = [sanction(f"cut-{tag}-{i}", first + i) for i in range(2 * BATCH)]
    lines[3] = sanction(f"cut-{tag}-3", first + 3, "420582")  # another county's unit
    one_batch = ipb.PublishRequest(events=[parse_event(x) for x in lines[:BATCH]]).ByteSize()
    link = CutLink(hub.address, budget=one_batch + 4096)
    try:
        args = ["publish", write(tmp_path, lines), "--outbox", box, "--retry-for", "0"]
        done = duhub(link.address, *args, *(["--json"] if as_json else []))
    finally:
        link.close()
    assert done.returncode == 3, done.stdout + done.stderr
    reason = "sanction_imposed.unit_id: unit '420582' lies outside the source's 420581"
    if as_json:
        answer = json.loads(done.stdout)
        assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (BATCH - 1, 0, 1)
        assert answer["rejections"] == [
            {
                "line": 4,
                "event_id": f"cut-{tag}-3",
                "field": "sanction_imposed.unit_id",
                "reason": reason,
            }
        ]
        assert answer["pending"] == BATCH
    else:
        assert done.stdout.splitlines() == [
            f"{tmp_path / 'events.jsonl'}: before the hub stopped answering: {BATCH - 1} "
            "accepted, 0 duplicate, 1 rejected",
            f"  line 4 (cut-{tag}-3): {reason}",
        ]
    assert f"{BATCH} events wait in the outbox {box}" in done.stderr, done.stderr


def test_a_publish_no_hub_ever_answered_says_so(tmp_path: Path) -> None:
    """Before, it said "before the hub stopped answering: 0 accepted, …" of a hub that never
    answered at all. A line that is no event is still refused, by publish itself."""
    box = str(tmp_path / "outbox.db")
    lines = [sanction("none-1", 1), "not json"]
    done = duhub(DOWN, "publish", write(tmp_path, lines), "--outbox", box, "--retry-for", "0")
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == (
        f"{tmp_path / 'events.jsonl'}: no hub answered: 0 accepted, 0 duplicate, 1 rejected"
    )
    assert "1 events wait in the outbox" in done.stderr


def talk(event_id: str, seq: int, persons: int) -> str:
    return json.dumps(
        {
            "eventId": event_id,
            "source": YIDU,
            "seq": str(seq),
            "occurredAt": "2022-11-12T09:00:00Z",
            "talkHeld": {"unitId": YIDU, "kind": "TALK_KIND_OTHER", "persons": persons},
        }
    )


def held_persons(box: str, event_id: str) -> int:
    with Outbox(box, create=False) as outbox:
        return outbox.get([event_id])[event_id].event.talk_held.persons


@pytest.mark.parametrize(
    ("name", "seq", "copies", "filler"),
    [
        # persons 0 is rejected ("must be at least 1"); the first copy the hub accepts stays.
        ("bad-good", 9100, [0, 7], 0),
        ("bad-bad-good", 9200, [0, 0, 7], 0),
        ("good-bad", 9300, [7, 0], 0),
        # The corrected copy a batch or more after the rejected one (and its own batch).
        ("bad-far-good", 10000, [0, 7], BATCH + 10),
    ],
)
def test_the_outbox_holds_the_copy_the_hub_accepted_when_a_file_corrects_a_line(
    hub: Hub, tmp_path: Path, name: str, seq: int, copies: list[int], filler: int
) -> None:
    """A file holding a rejected line and, further on, its corrected copy under the same
    event_id: publish said "1 accepted, 1 rejected" and the hub counted the corrected copy, but
    the outbox kept the rejected one (the later copy went to the hub outside it): `outbox
    status` listed it rejected for good (exit 1), and `outbox retry --rejected` sent the
    invalid copy again, to be rejected again."""
    box, event_id = str(tmp_path / "outbox.db"), f"rr-{name}"
    lines = [talk(event_id, seq, copies[0])]
    lines += [sanction(f"{event_id}-f{i}", seq + 1 + i) for i in range(filler)]
    lines += [talk(event_id, seq, persons) for persons in copies[1:]]
    done = duhub(hub.address, "publish", write(tmp_path, lines), "--outbox", box, "--wait", "0")
    assert f"{1 + filler} accepted, 0 duplicate, {len(copies) - 1} rejected" in done.stdout, (
        done.stdout + done.stderr
    )

    done = duhub(hub.address, "outbox", "status", "--outbox", box)
    assert done.stdout.splitlines() == [f"{box}: 0 pending, {1 + filler} delivered, 0 rejected"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert held_persons(box, event_id) == 7
    done = duhub(hub.address, "outbox", "retry", "--outbox", box, "--rejected")
    assert done.stdout.splitlines()[0] == "sent nothing: no event was pending", done.stdout


def test_a_line_corrected_in_a_second_publish_replaces_the_rejected_copy(
    hub: Hub, tmp_path: Path
) -> None:
    """The same mistake mended across two runs: the file published with the bad line, then
    mended and published again. The outbox ends holding the accepted copy, delivered."""
    box = str(tmp_path / "outbox.db")
    for persons, answer in ((0, "0 accepted, 0 duplicate, 1 rejected"), (7, "1 accepted")):
        events = write(tmp_path, [talk("rr-runs", 9500, persons)])
        done = duhub(hub.address, "publish", events, "--outbox", box, "--wait", "0")
        assert answer in done.stdout, done.stdout + done.stderr
    done = duhub(hub.address, "outbox", "status", "--outbox", box)
    assert done.stdout.splitlines() == [f"{box}: 0 pending, 1 delivered, 0 rejected"]
    assert held_persons(box, "rr-runs") == 7
    # The file holding both copies published again: the hub holds the good one already.
    events = write(tmp_path, [talk("rr-runs", 9500, 0), talk("rr-runs", 9500, 7)])
    done = duhub(hub.address, "publish", events, "--outbox", box, "--wait", "0")
    assert "0 accepted, 1 duplicate, 1 rejected" in done.stdout, done.stdout + done.stderr
    done = duhub(hub.address, "outbox", "status", "--outbox", box)
    assert done.stdout.splitlines() == [f"{box}: 0 pending, 1 delivered, 0 rejected"]
    assert held_persons(box, "rr-runs") == 7
