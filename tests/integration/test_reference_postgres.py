"""`--reference FILE` on a PostgreSQL read model: a restart with the file unchanged finds the
read model's fingerprint before anything is opened and does not check each unit again; a
changed file is checked whole and refused, naming the first difference."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from duhub.bootstrap import Hub, HubConfig, ReferenceMismatch
from duhub.readmodel.writer import read_positions
from duhub.reference import Reference
from duhub.reference import file as reference_file
from duhub.reference.file import reference_from_file
from tests.infra import fresh_database

pytestmark = [pytest.mark.postgres]

OWN: list[dict[str, Any]] = [
    {"unit_id": "420500", "parent_id": "", "level": "LEVEL_CITY", "name": "宜昌市"},
    {"unit_id": "420502", "parent_id": "420500", "level": "LEVEL_COUNTY", "name": "西陵区"},
    {"unit_id": "420502101", "parent_id": "420502", "level": "LEVEL_TOWNSHIP", "name": "西陵街道"},
]


def write(path: Path, units: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"about": "our own", "units": units}, ensure_ascii=False))
    return str(path)


def start(data: Path, db_url: str, reference: Reference) -> str:
    """Start a hub and stop it once its read model caught up; return why it refused, or ''."""
    hub = Hub(HubConfig(data, listen="127.0.0.1:0", db_url=db_url, reference=reference))
    try:
        hub.start()
        deadline = time.monotonic() + 30
        while read_positions(hub.engine).get(0, 0) < hub.log.end_offsets()[0]:
            assert time.monotonic() < deadline, "the read model never caught up"
            time.sleep(0.05)
        return ""
    except ReferenceMismatch as e:
        return str(e)
    finally:
        hub.stop(grace=0)


def test_an_unchanged_file_on_postgresql_is_not_checked_unit_by_unit_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real = reference_file.check_units

    def check_units(events: Any, base: Any, first: int = 0) -> str | None:
        asked.append(len(events))
        return real(events, base, first)

    monkeypatch.setattr(reference_file, "check_units", check_units)
    own, data = write(tmp_path / "own.json", OWN), tmp_path / "data"
    with fresh_database() as db_url:
        assert start(data, db_url, reference_from_file(own, db_url)) == ""  # loads, fingerprints
        assert asked == [3]
        assert start(data, db_url, reference_from_file(own, db_url)) == ""
        assert start(data, db_url, reference_from_file(own, db_url)) == ""
        assert asked == [3]  # vouched for by the fingerprint: not checked again
        changed = write(tmp_path / "changed.json", [*OWN[:2], dict(OWN[2], name="改名街道")])
        refused = start(data, db_url, reference_from_file(changed, db_url))
        assert asked == [3, 3]
        assert "its reference event 3 'ref:own:420502101' registered the unit otherwise" in refused
