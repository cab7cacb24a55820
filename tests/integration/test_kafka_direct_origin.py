"""Kafka-direct producers are not authenticated by duhub (README, Security), but what they
write is checked as any Kafka-direct event: "recorded_at is the broker's log-append time, a
client's value is ignored", and the source `reference` is the hub's own. A producer that adds
the header ingest puts on its records (`duhub-origin: ingest`) must not get the trust given to
ingest's records: its recorded_at taken as it claims (so it counts in `as_of` answers about a
past in which it was not in the log), or the source `reference` (a city registered). Ingest
signs its records under the hub's origin key (`duhub/log/origin.py`); these are refused."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
from google.protobuf import json_format
from kafka import KafkaProducer

from duhub.log.kafka import INGEST_ORIGIN, ORIGIN_HEADER, KafkaSpec
from duhub.v1 import events_pb2 as pb
from duhub.v1 import query_pb2 as qpb
from duhub.v1 import query_pb2_grpc
from tests.e2e.hubproc import HubProcess, stat_values
from tests.infra import kafka_log_url
from tests.integration.scale import accountability, publish, wait_applied
from tests.integration.test_kafka_direct import dead_letters
from tests.unit.test_ops_cli import duhub

FORGED = [(ORIGIN_HEADER, INGEST_ORIGIN)]


def test_a_forged_origin_header_gets_no_trust(tmp_path: Path) -> None:
    log_url = kafka_log_url(partitions=1)
    spec = KafkaSpec.parse(log_url)
    hub = HubProcess(tmp_path / "data", "--log", log_url)
    try:
        # Through ingest first: the reference hierarchy is in and applied.
        first = publish(hub.address, [accountability("420581", 1, 2)])
        wait_applied(hub.address, {0: first[0].offset + 1})

        backdated = accountability("420581", 2, 40)
        backdated.recorded_at.FromJsonString("2022-05-02T00:00:00Z")
        city = json_format.ParseDict(
            {
                "eventId": "forged-city",
                "source": "reference",
                "seq": "2000000000",
                "occurredAt": "2022-05-01T08:00:00Z",
                "recordedAt": "2022-05-02T00:00:00Z",
                "orgUnitRegistered": {"unitId": "990000", "level": "LEVEL_CITY", "name": "x"},
            },
            pb.Event(),
        )
        producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
        sent = [
            producer.send(
                spec.topic, key=b"420581", value=backdated.SerializeToString(), headers=FORGED
            ),
            producer.send(
                spec.topic, key=b"reference", value=city.SerializeToString(), headers=FORGED
            ),
        ]
        producer.flush()
        last = [f.get(timeout=30) for f in sent][-1]
        producer.close()
        wait_applied(hub.address, {0: last.offset + 1})

        # The hub did not exist in 2022: nothing was in its log then; and no city but the
        # reference data's.
        then = stat_values(
            hub.address, "--metric", "accountability_persons", "--as-of", "2022-12-01"
        )
        stub = query_pb2_grpc.QueryServiceStub(grpc.insecure_channel(hub.address))
        cities = stub.ListUnits(qpb.ListUnitsRequest(parent_id=""), timeout=10).units
        assert (then, [u.unit_id for u in cities]) == ({"accountability_persons": 0}, ["420500"])
        # Refused, naming the header: neither is ingest's, whatever it says.
        reasons = [h["duhub-reason"] for _, h in dead_letters(spec, want=2)]
        assert (
            reasons
            == [
                "headers.duhub-origin-mac: missing: a record claiming ingest's origin must carry "
                "its MAC"
            ]
            * 2
        )
        # Ingest's own records pass: the first event counts.
        now = stat_values(hub.address, "--metric", "accountability_persons", "--scope", "420581")
        assert now == {"accountability_persons": 2}
    finally:
        hub.stop()


def _chained(seq: int, prev: bytes, persons: int = 1) -> bytes:
    event = accountability("420581", seq, persons)
    event.event_id = f"audit-{seq}-{persons}"
    event.recorded_at.FromJsonString("2023-01-01T00:00:00Z")
    event.prev_hash = prev
    return event.SerializeToString()


def _chain(n: int) -> list[bytes]:
    """Return seq 1 … n of 420581, each linked to the one before as ingest links them."""
    from duhub.convert import chain_hash

    prev, values = b"", []
    for seq in range(1, n + 1):
        values.append(_chained(seq, prev))
        prev = chain_hash(values[-1])
    return values


def _forged_after_chain(seq: int, links_to: int) -> str:
    """Return the url of a new 1-partition log holding ingest's chain of 3 events of 420581,
    then a record claiming ingest's origin (no MAC) as seq `seq`, linked to seq `links_to`."""
    from duhub.convert import chain_hash
    from duhub.log.kafka import KafkaLog

    log_url = kafka_log_url(partitions=1)
    spec = KafkaSpec.parse(log_url)
    log = KafkaLog(spec)
    values = _chain(3)
    log.append([(b"420581", v) for v in values])
    log.close()
    producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
    forged = _chained(seq, chain_hash(values[links_to - 1]), persons=40)
    producer.send(spec.topic, key=b"420581", value=forged, headers=FORGED).get(timeout=30)
    producer.close()
    return log_url


def test_audit_verify_with_the_key_names_a_record_forged_in_ingests_name() -> None:
    # A producer adds a second seq 3 of 420581 with ingest's header (no MAC). Read without
    # the key, audit verify chains it and names the break. With the key it is known not to be
    # ingest's: named FORGED where it lies and left out of the chain, which is intact (once
    # the key made the audit blind to it, exit 0; then it was chained, and in other layouts
    # its bad link blamed ingest's genuine events: `tests/unit/test_audit_forged.py`).
    from duhub.audit.chain import audit
    from duhub.audit.records import log_records

    log_url = _forged_after_chain(seq=3, links_to=2)
    without_key = log_url.split("&key=")[0]
    for url, chained, found in (
        # Two seq 3 linked to seq 2: without the key, which is ingest's cannot be told.
        (without_key, 4, [("inserted", 2)]),
        (log_url, 3, [("forged", 3)]),
    ):
        report = audit(log_records(url))
        assert (report.records, report.chained) == (4, chained), url
        assert [(f.kind, f.offset) for f in report.findings] == found, url
        assert report.heads["420581"][:2] == (chained, 3), url


def test_audit_verify_leaves_a_garbled_kafka_direct_record_out_of_the_chains() -> None:
    # README: Kafka-direct events are not chained, they are listed as records only; one whose
    # value does not parse is a dead letter. audit verify reported such a record as ALTERED
    # (exit 4, the log tampered with), later even as damage inside 420581's chain: a county
    # producer's garbage made every audit of a sound log fail.
    from duhub.audit.chain import audit
    from duhub.audit.records import log_records
    from duhub.log.kafka import KafkaLog

    log_url = kafka_log_url(partitions=1)
    spec = KafkaSpec.parse(log_url)
    log = KafkaLog(spec)
    values = _chain(3)
    log.append([(b"420581", v) for v in values[:2]])
    producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
    producer.send(spec.topic, key=b"420581", value=b"\x0a\x05abc").get(timeout=30)  # cut short
    direct = accountability("420581", 100, 1).SerializeToString()  # a sound Kafka-direct one
    producer.send(spec.topic, key=b"420581", value=direct).get(timeout=30)
    producer.close()
    log.append([(b"420581", values[2])])
    log.close()
    report = audit(log_records(log_url))
    assert (report.records, report.chained) == (5, 3)
    assert report.findings == []
    assert report.heads["420581"][:2] == (3, 3)


def test_audit_verify_with_the_key_names_a_forged_record_that_links_into_the_chain() -> None:
    # The log is readable by any producer, so a forger can link a record into a chain: seq 4
    # of 420581 with prev_hash = the stored hash of seq 3, ingest's header and no MAC. At the
    # chain's head no later link breaks: audit verify said 'every chain is intact', exit 0, and
    # its checkpoint digested the forgery as the head, though with the key it knows the MAC
    # fails (the aggregator dead-letters the record for just that). Now it is named, and in
    # no chain: the head the checkpoint digests is ingest's seq 3.
    from duhub.audit.chain import audit
    from duhub.audit.records import log_records

    log_url = _forged_after_chain(seq=4, links_to=3)
    report = audit(log_records(log_url))
    assert [(f.kind, f.source, f.offset) for f in report.findings] == [("forged", "420581", 3)]
    assert "duhub-origin-mac" in report.findings[0].detail
    assert (report.chained, report.heads["420581"][:2]) == (3, (3, 3))


def test_a_forged_origin_header_on_a_hub_without_a_key_is_named(tmp_path: Path) -> None:
    # Without ?key= the header is taken at its word (README, Security), so a Kafka-direct
    # producer that adds it passes for ingest. Its event has no recorded_at (ingest stamps
    # every one): before, that read as 1970 and the dead letter said "occurred_at: more than
    # 24 hours in the future", which sent the producer looking at a sound timestamp.
    log_url = kafka_log_url(partitions=1).split("&key=")[0]
    spec = KafkaSpec.parse(log_url)
    hub = HubProcess(tmp_path / "data", "--log", log_url)
    try:
        first = publish(hub.address, [accountability("420581", 1, 2)])
        wait_applied(hub.address, {0: first[0].offset + 1})
        producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
        forged = accountability("420581", 2, 40).SerializeToString()
        sent = producer.send(spec.topic, key=b"420581", value=forged, headers=FORGED)
        last = sent.get(timeout=30)
        producer.close()
        wait_applied(hub.address, {0: last.offset + 1})
        ((_, headers),) = dead_letters(spec, want=1)
        assert headers["duhub-reason"] == (
            "headers.duhub-origin: claims ingest's origin, but the event has no recorded_at, "
            "which ingest stamps on every event (a Kafka-direct producer must not set this "
            "header)"
        )
        now = stat_values(hub.address, "--metric", "accountability_persons", "--scope", "420581")
        assert now == {"accountability_persons": 2}
    finally:
        hub.stop()


def test_a_replay_without_the_key_that_differs_over_a_forged_record_says_to_give_it(
    tmp_path: Path,
) -> None:
    # The hub, run with its origin key, dead-lettered a record forged in ingest's name; a
    # replay of the same topic without ?key= takes the header at its word, counts the record,
    # and so differs. Before, it said only "DIFFERENT in: dead_letters, rollups, …" (exit 4),
    # which sent the auditor looking for a fault in the hub, not in the replay's URL.
    log_url = kafka_log_url(partitions=1)
    spec = KafkaSpec.parse(log_url)
    data = tmp_path / "data"
    hub = HubProcess(data, "--log", log_url)
    try:
        first = publish(hub.address, [accountability("420581", 1, 2)])
        wait_applied(hub.address, {0: first[0].offset + 1})
        forged = accountability("420581", 2, 40)
        forged.recorded_at.FromJsonString("2026-01-02T00:00:00Z")
        producer = KafkaProducer(bootstrap_servers=spec.bootstrap, acks="all")
        sent = producer.send(
            spec.topic, key=b"420581", value=forged.SerializeToString(), headers=FORGED
        )
        last = sent.get(timeout=30)
        producer.close()
        wait_applied(hub.address, {0: last.offset + 1})
    finally:
        hub.stop()
    keyless = log_url.split("&key=")[0]
    into = f"sqlite:///{tmp_path / 'replay.db'}"
    done = duhub("replay", "--log", keyless, "--data-dir", str(data), "--into", into)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "without ?key=" in done.stdout and "the hub's origin key" in done.stdout, done.stdout
    again = duhub("replay", "--log", keyless, "--data-dir", str(data), "--into", into, "--json")
    assert json.loads(again.stdout)["hint"].startswith("the log was read without ?key=")
    # Given the key as the hint says but resumed, without --fresh: refused, naming the key.
    # Before, the keyless replay's dead letter stood, its reason written without the key,
    # and the comparison said only "DIFFERENT in: dead_letters" (found by an ops review).
    resumed = duhub("replay", "--log", log_url, "--data-dir", str(data), "--into", into)
    assert resumed.returncode == 2, resumed.stdout + resumed.stderr
    assert (
        "--log: read with an origin key (?key=), but --into holds a replay read without one"
        in resumed.stderr
    ), resumed.stderr
    assert "add --fresh to start over" in resumed.stderr, resumed.stderr
    # With the key, the same log gives the live figures.
    keyed = duhub("replay", "--log", log_url, "--data-dir", str(data), "--fresh", "--into", into)
    assert keyed.returncode == 0, keyed.stdout + keyed.stderr
    assert "without ?key=" not in keyed.stdout
    # And the other way round: a keyed replay is not resumed without the key.
    keyless_again = duhub("replay", "--log", keyless, "--data-dir", str(data), "--into", into)
    assert keyless_again.returncode == 2, keyless_again.stdout + keyless_again.stderr
    assert "but --into holds a replay read with one" in keyless_again.stderr
