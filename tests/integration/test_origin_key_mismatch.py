"""A process whose origin key is not ingest's refuses to start, naming --log's key. Before, an
aggregate worker given another key file dead-lettered every event ingest had answered
ACCEPTED (one WARNING each) and kept running, and with the only worker so the reference data
went too: every event was then rejected as "not a registered city or county-level unit"
(found by an operator probe on real Kafka, 2026-12-06)."""

from __future__ import annotations

from pathlib import Path

import pytest

from duhub.bootstrap import open_log
from duhub.log.belongs import refuse_other_origin_key
from duhub.log.origin import make_key
from duhub.readmodel.engine import open_engine
from services.ingest.ingestor import Ingestor
from tests.infra import kafka_log_url
from tests.unit.builders import Clock, hierarchy, kinds
from tests.unit.test_ops_cli import duhub

pytestmark = [pytest.mark.kafka]


def _written(url: str, tmp_path: Path) -> None:
    """Ingest's reference records, on a topic of their own, signed under the URL's key."""
    log = open_log(url)
    engine = open_engine(f"sqlite:///{tmp_path / 'ingest.db'}")
    try:
        done = Ingestor(log, engine, Clock()).publish(hierarchy(), allow_reference=True)
        assert set(kinds(done)) == {"accepted"}
    finally:
        log.close()
        engine.dispose()


@pytest.mark.parametrize("ingest_key", ["another", "none"])
def test_a_process_with_another_origin_key_than_ingests_refuses_to_start(
    tmp_path: Path, ingest_key: str
) -> None:
    url = kafka_log_url(partitions=4)
    plain = url.split("&key=")[0]
    if ingest_key == "another":
        other = tmp_path / "other.key"
        make_key(str(other))
        _written(f"{plain}&key={other}", tmp_path)
    else:
        _written(plain, tmp_path)
    log = open_log(url)  # the test suite's key
    try:
        with pytest.raises(ValueError) as e:
            refuse_other_origin_key(log)
        said = str(e.value)
        assert said.startswith(
            f"--log: key={url.split('&key=')[1]}: the records ingest wrote fail this origin key"
        ), said
        assert ("does not match" if ingest_key == "another" else "missing") in said, said
    finally:
        log.close()
    # The worker says so and stops, exit 2, before it applies anything.
    db = f"sqlite:///{tmp_path / 'worker.db'}"
    done = duhub("serve", "aggregate", "--log", url, "--db", db, "--data-dir", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the records ingest wrote fail this origin key" in done.stderr, done.stderr
    # Audit verify walks the log all the same (an auditor's finding is not to be refused),
    # every record FORGED, exit 4, and says the key is the likelier fault.
    done = duhub("audit", "verify", "--log", url)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "no record claiming ingest's origin passed this origin key" in done.stdout


def test_a_process_with_ingests_key_or_none_starts(tmp_path: Path) -> None:
    url = kafka_log_url(partitions=4)
    _written(url, tmp_path)
    for given in (url, url.split("&key=")[0]):  # without a key there is nothing to check
        log = open_log(given)
        try:
            refuse_other_origin_key(log)  # no error: ingest's records pass under this key
        finally:
            log.close()
