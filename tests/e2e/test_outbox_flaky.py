"""County nodes publish through their outboxes over a link that drops connections at random:
every event ends up counted exactly once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from google.protobuf import json_format

from duhub.node import Backoff, Outbox
from tests.e2e.hubproc import HubProcess, duhub, duhub_json
from tests.flakylink import FlakyProxy
from tests.integration.scale import accountability

COUNTIES = ["420502", "420581", "420582", "420583"]
PER_COUNTY = 400
CHUNK = 20


def persons_by_county(address: str) -> dict[str, int]:
    reply = duhub_json(
        address, "query", "stats", "--metric", "accountability_persons", "--group-by", "unit"
    )
    return {r["key"]: int(r["values"]["accountability_persons"]) for r in reply["rows"]}


def test_nodes_behind_a_flaky_link_count_every_event_exactly_once(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data")
    proxy = FlakyProxy(hub.address, drop_every=0.15, outage=0.2, outage_s=0.8, lifetime=150)
    try:
        retries: dict[str, int] = {}
        counts: dict[str, dict[str, int]] = {}

        def node(county: str) -> None:
            with Outbox(tmp_path / f"outbox-{county}.db") as box:
                retries[county] = 0
                for start in range(1, PER_COUNTY + 1, CHUNK):
                    box.add(
                        [accountability(county, s, s % 5 + 1) for s in range(start, start + CHUNK)]
                    )
                    report = box.forward(
                        proxy.address,
                        batch=50,
                        timeout=2.0,
                        give_up_after=60,
                        backoff=Backoff(base=0.05, cap=1.0),
                    )
                    retries[county] += report.retries
                counts[county] = box.counts()

        t0 = time.monotonic()
        nodes = [threading.Thread(target=node, args=(c,)) for c in COUNTIES]
        for t in nodes:
            t.start()
        for t in nodes:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in nodes), "a node never got through"
        assert time.monotonic() - t0 < 120
        # Cuts come at random times, so a quick run sees fewer: a few are enough to matter.
        assert proxy.cuts >= 3 and sum(retries.values()) > 0

        for county in COUNTIES:
            c = counts[county]
            assert c["pending"] == 0 and c["rejected"] == 0
            assert c["accepted"] + c["duplicate"] == PER_COUNTY

        # `duhub publish` over the same link: its outbox rides out the drops as well.
        more = tmp_path / "more.jsonl"
        lines = [accountability("420583", s, 7) for s in range(PER_COUNTY + 1, PER_COUNTY + 201)]
        more.write_text("".join(json_format.MessageToJson(e, indent=None) + "\n" for e in lines))
        done = duhub(
            proxy.address, "publish", str(more), "--json", "--outbox", str(tmp_path / "cli.db")
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["accepted"] + report["duplicate"] == 200 and report["rejected"] == 0

        proxy.heal()
        expected = {c: sum(s % 5 + 1 for s in range(1, PER_COUNTY + 1)) for c in COUNTIES}
        expected["420583"] += 7 * 200
        deadline = time.monotonic() + 30
        while True:
            got = {k: v for k, v in persons_by_county(hub.address).items() if k in expected}
            if got == expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == expected
    finally:
        proxy.close()
        hub.stop()
