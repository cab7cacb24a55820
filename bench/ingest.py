"""Ingest over the gRPC stream into Kafka (acks=all) vs the raw kafka-python producer sending
the same serialized events to the same broker.

The events are serialized once; a PublishRequest is built from their bytes, so the client
costs next to nothing and the figure is the server's. One PublishStream in stream order (a
campaign launch is accepted before the visits naming it; concurrent streams would reorder
them). `duhub serve ingest` runs alone against a fresh topic and a fresh PostgreSQL read
model; no aggregator competes for the two cores. The raw producer has the same settings as
duhub's (acks=all, idempotent, linger 2 ms, 512 KiB batches), sends everything, then flushes.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import common as c
from bench.events import request_bytes, wire_stream
from duhub.v1 import ingest_pb2 as ipb

BATCH = 1000
METHOD = "/duhub.v1.IngestService/PublishStream"


def wait_serving(address: str, timeout: float = 120) -> None:
    channel = grpc.insecure_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    finally:
        channel.close()
    raise TimeoutError(f"ingest at {address} never became SERVING")


def publish_stream(address: str, requests: list[bytes]) -> tuple[float, dict[str, int]]:
    """Send the requests on one PublishStream; return (seconds, answer counts)."""
    channel = grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)])
    call = channel.stream_stream(
        METHOD, request_serializer=None, response_deserializer=ipb.PublishResponse.FromString
    )
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    reasons: list[str] = []
    t0 = time.perf_counter()
    for reply in call(iter(requests), timeout=3600):
        counts["accepted"] += reply.accepted
        counts["duplicate"] += reply.duplicate
        counts["rejected"] += reply.rejected
        if reply.rejected and len(reasons) < 3:
            reasons += [r.reason for r in reply.results if r.reason][:3]
    seconds = time.perf_counter() - t0
    channel.close()
    if reasons:
        c.say(f"ingest: some rejected, e.g. {reasons}")
    return seconds, counts


def raw_produce(topic: str, items: list[tuple[bytes, bytes]]) -> float:
    from kafka import KafkaProducer

    from duhub.log.kafka import BATCH_BYTES, LINGER_MS, MAX_REQUEST_BYTES

    producer = KafkaProducer(  # duhub's settings
        bootstrap_servers=c.KAFKA,
        acks="all",
        enable_idempotence=True,
        linger_ms=LINGER_MS,
        batch_size=BATCH_BYTES,
        max_request_size=MAX_REQUEST_BYTES,
        client_id="duhub-bench-raw",
    )
    try:
        t0 = time.perf_counter()
        for key, value in items:
            producer.send(topic, key=key, value=value)
        producer.flush()
        return time.perf_counter() - t0
    finally:
        producer.close(timeout=10)


def ensure_topic(topic: str, partitions: int = 12) -> None:
    from duhub.log.kafka import KafkaSpec, ensure_topics

    ensure_topics(KafkaSpec(c.KAFKA, topic, partitions))


def run(ctx: Any) -> None:
    n = ctx.size("ingest")
    c.ensure_services(kafka=True, pg=True)
    items, flags, info = wire_stream(n, seed=11, prefix="ing")
    requests = [
        request_bytes([v for _, v in items[i : i + BATCH]]) for i in range(0, len(items), BATCH)
    ]
    sent = len(items)
    c.say(
        f"ingest: {n:,} events + {info.duplicates:,} resends, {len(requests)} requests of {BATCH}"
    )
    rates, raw_rates, details = [], [], []
    for rep in range(ctx.repeats):
        with c.cleanup() as undo:
            topic = undo.topic(c.unique("duhub.bench.ingest."))
            db = undo.database(c.create_database())
            workdir = ctx.workdir / f"ingest-{rep}"
            workdir.mkdir(parents=True, exist_ok=True)
            proc = undo.proc(
                c.serve(
                    "ingest",
                    "--log",
                    c.kafka_url(topic),
                    "--db",
                    db,
                    "--data-dir",
                    str(workdir),
                    log=workdir / "ingest.out",
                )
            )
            wait_serving(proc.address)
            watch = c.PeakWatcher(proc.pid)
            seconds, counts = publish_stream(proc.address, requests)
            peak = watch.stop()
            answered = counts["accepted"] + counts["duplicate"] + counts["rejected"]
            rate = answered / seconds
            raw_topic = undo.topic(c.unique("duhub.bench.raw."))
            ensure_topic(raw_topic)
            raw_seconds = raw_produce(raw_topic, items)
            raw_rate = sent / raw_seconds
        rates.append(rate)
        raw_rates.append(raw_rate)
        details.append(
            {
                "seconds": seconds,
                "counts": counts,
                "raw_seconds": raw_seconds,
                "ingest_peak_mb": peak,
            }
        )
        c.say(
            f"ingest run {rep + 1}: {rate:,.0f} events/s ({counts}), raw producer {raw_rate:,.0f}/s"
        )
    value, ref = c.median(rates), c.median(raw_rates)
    ratio = value / ref
    ctx.results.add(
        c.Figure(
            "ingest, gRPC PublishStream → Kafka acks=all",
            value,
            "events/s",
            rates,
            "raw kafka-python producer",
            ref,
            raw_rates,
            ratio,
            "of raw",
            "≥ 50,000/s and ≥ 0.5× raw",
            value >= 50_000 and ratio >= 0.5,
            f"{n:,} (+{info.duplicates:,} resends)",
        )
    )
    ctx.results.details["ingest"] = {"runs": details, "batch": BATCH, "events": n}
