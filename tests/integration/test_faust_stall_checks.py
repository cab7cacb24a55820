"""Faust's stall checks watch its own stream, which the worker keeps paused (its records come
from the kafka-python reader): they are pushed out of reach, or a healthy worker logs ERROR
"Stream has not started processing TP(…)" for each partition from its fifth minute on."""

from __future__ import annotations

from pathlib import Path

from services.aggregate import faust_app
from tests.infra import kafka_log_url


def test_faust_does_not_report_its_paused_stream_as_stalled(tmp_path: Path) -> None:
    app = faust_app.build_app(
        kafka_log_url(partitions=1), f"sqlite:///{tmp_path / 'rm.db'}", str(tmp_path / "faust")
    )
    # The timeouts its checks compare with (aiokafka driver: fetch, stream and commit).
    assert app.conf.stream_processing_timeout >= 365 * 24 * 3600
    assert app.conf.stream_processing_timeout == faust_app.FAUST_STALL_CHECK_S
