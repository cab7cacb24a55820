"""The ops commands refuse bad arguments with exit 2 naming the option, and change nothing."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from duhub.bootstrap import Hub, HubConfig
from duhub.readmodel.digest import digest, table_digests
from tests.childlines import finish, first_line, said
from tests.unit.builders import YIDU_V1, Pipeline, at, hierarchy, visit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub() -> Iterator[Pipeline]:
    p = Pipeline.open()
    p.clock.now = at("2023-02-01")
    p.publish(hierarchy(), allow_reference=True)
    for seq in range(1, 4):
        p.clock.now += 10**9
        p.publish([visit(YIDU_V1, event_id=f"v{seq}", seq=seq, occurred_at=at("2022-11-01"))])
    p.tailer.catch_up()
    yield p
    p.close()


def duhub(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duhub.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def live_files(data: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in data.glob("readmodel.db*")}


@pytest.mark.parametrize("spelling", ["relative", "dotted"])
def test_replay_refuses_the_live_read_model_however_it_is_spelled(
    hub: Pipeline, spelling: str
) -> None:
    # Before, only the very string sqlite:///DATA/readmodel.db was refused: a relative path
    # to the same file passed, and --fresh deleted the live read model under the running hub.
    live = hub.dir / "readmodel.db"
    into = {
        "relative": f"sqlite:///{hub.dir.name}/readmodel.db",
        "dotted": f"sqlite:///{hub.dir}/./readmodel.db",
    }[spelling]
    before, figures = live_files(hub.dir), digest(table_digests(hub.engine))
    assert live.exists()
    done = duhub(
        "replay", "--data-dir", str(hub.dir), "--into", into, "--fresh", cwd=hub.dir.parent
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--into: must not be the live read model" in done.stderr
    assert live_files(hub.dir) == before
    assert digest(table_digests(hub.engine)) == figures


def test_replay_refuses_the_data_dirs_own_read_model_whatever_db_names(
    hub: Pipeline, tmp_path: Path
) -> None:
    # Before, only --db's database was refused: with DUHUB_DB (or --db) naming another file,
    # --fresh deleted DATA/readmodel.db under the hub `duhub up --data-dir DATA` ran, which
    # then answered "the read model holds no units", its figures short after a restart.
    before, figures = live_files(hub.dir), digest(table_digests(hub.engine))
    done = duhub(
        "replay",
        "--data-dir",
        str(hub.dir),
        "--db",
        f"sqlite:///{tmp_path / 'other.db'}",
        "--into",
        f"sqlite:///{hub.dir / 'readmodel.db'}",
        "--fresh",
        "--no-compare",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--into: must not be the live read model" in done.stderr
    assert "the data dir's own" in done.stderr
    assert live_files(hub.dir) == before
    assert digest(table_digests(hub.engine)) == figures


def test_replay_fresh_refuses_a_read_model_no_replay_made(hub: Pipeline) -> None:
    # Another hub's live read model (its data dir not this replay's): --fresh deleted its
    # figures and put this log's in their place.
    with another_hub() as other:
        live = other.dir / "readmodel.db"
        before, figures = live_files(other.dir), digest(table_digests(other.engine))
        done = duhub(
            "replay",
            "--data-dir",
            str(hub.dir),
            "--into",
            f"sqlite:///{live}",
            "--fresh",
            "--no-compare",
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert "holds applied records but is not a replay's" in done.stderr, done.stderr
        assert live_files(other.dir) == before
        assert digest(table_digests(other.engine)) == figures


def test_a_refused_replay_leaves_fresh_still_refused(hub: Pipeline) -> None:
    # A replay refused without --fresh made the (empty) replay_cut table before its checks,
    # and the guard took the table for a replay's: the --fresh that followed deleted another
    # hub's figures and put this log's in their place.
    with another_hub() as other:
        live = other.dir / "readmodel.db"
        before, figures = live_files(other.dir), digest(table_digests(other.engine))
        into = ("--data-dir", str(hub.dir), "--into", f"sqlite:///{live}", "--no-compare")
        first = duhub("replay", *into)
        assert first.returncode == 2, first.stdout + first.stderr
        done = duhub("replay", *into, "--fresh")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "holds applied records but is not a replay's" in done.stderr, done.stderr
        assert live_files(other.dir) == before
        assert digest(table_digests(other.engine)) == figures


def test_a_whole_log_replay_into_a_read_model_no_replay_made_is_refused(
    hub: Pipeline, tmp_path: Path
) -> None:
    # A standby's copy of the live read model (or a live PostgreSQL one --db did not name):
    # the whole-log replay was taken as continuing it, wrote into it and recorded a cut, and
    # the --fresh guard then took it for a replay's and let --fresh delete it.
    hub.engine.dispose()
    standby = tmp_path / "standby.db"
    standby.write_bytes((hub.dir / "readmodel.db").read_bytes())
    into = ("--data-dir", str(hub.dir), "--into", f"sqlite:///{standby}", "--no-compare")
    before = _figures_of(standby)
    done = duhub("replay", *into)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a replay's" in done.stderr, done.stderr
    fresh = duhub("replay", *into, "--fresh")
    assert fresh.returncode == 2, fresh.stdout + fresh.stderr
    assert "holds applied records but is not a replay's" in fresh.stderr, fresh.stderr
    assert _figures_of(standby) == before


def _figures_of(path: Path) -> dict[str, str]:
    """The digest of each table of the read model at `path` but the replay's cut (a refused
    replay makes it, empty)."""
    from duhub.readmodel.engine import open_engine

    engine = open_engine(f"sqlite:///{path}", create=False)
    try:
        return {t: d for t, d in table_digests(engine).items() if t != "replay_cut"}
    finally:
        engine.dispose()


def test_a_read_model_no_replay_made_is_not_advised_fresh(hub: Pipeline, tmp_path: Path) -> None:
    # A standby hub's live read model of the same log, replayed into with a cut: refused with
    # "add --fresh to start over", advice the --fresh guard then (rightly) refuses.
    hub.engine.dispose()
    standby = tmp_path / "standby.db"
    standby.write_bytes((hub.dir / "readmodel.db").read_bytes())
    into = ("--data-dir", str(hub.dir), "--into", f"sqlite:///{standby}", "--no-compare")
    done = duhub("replay", *into, "--until", "2023-02-01T00:00:02Z")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not a replay's" in done.stderr and "--fresh" not in done.stderr, done.stderr


def test_replay_fresh_refuses_a_postgresql_read_model_no_replay_made(hub: Pipeline) -> None:
    # The Kafka hub's PostgreSQL read model given as --into: --fresh dropped its tables.
    from tests.infra import fresh_database

    with fresh_database() as url:
        other = Pipeline.open(db_url=url)
        try:
            other.clock.now = at("2023-03-01")
            other.publish(hierarchy(), allow_reference=True)
            other.tailer.catch_up()
            figures = digest(table_digests(other.engine))
            done = duhub(
                "replay", "--data-dir", str(hub.dir), "--into", url, "--fresh", "--no-compare"
            )
            assert done.returncode == 2, done.stdout + done.stderr
            assert "holds applied records but is not a replay's" in done.stderr, done.stderr
            assert digest(table_digests(other.engine)) == figures
        finally:
            other.close()


@pytest.mark.parametrize("limit", ["-1", "4294967296", "many"])
def test_explain_refuses_a_limit_out_of_range_naming_it(limit: str) -> None:
    # Before, a number outside uint32 reached the request: a ValueError traceback, exit 1.
    done = duhub("explain", "--metric", "visits", "--limit", limit, "--target", "127.0.0.1:1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --limit:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("query stats --metric visits", "--scope"),
        ("query stats --metric visits", "--area"),
        ("explain --metric visits", "--scope"),
        ("explain --metric visits", "--area"),
        ("query coverage --campaign c1", "--scope"),
        ("query coverage", "--campaign"),
        ("audit report --from 2022-01-01 --to 2023-01-01", "--area"),
    ],
)
def test_an_empty_scope_area_or_campaign_is_refused_not_read_as_left_out(
    command: str, option: str
) -> None:
    # --scope "$COUNTY" with the variable unset answered for the whole city, --area "" for
    # every area: another question than the one meant, without a word.
    done = duhub(*command.split(), option, "", "--target", "127.0.0.1:1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"argument {option}: '' is empty" in done.stderr, done.stderr


def test_units_of_an_unknown_unit_is_not_found_naming_it(tmp_path: Path) -> None:
    # Before, 'duhub units nope' printed an empty table and exited 0, as for a village with
    # no children; every other question answers an unknown unit NOT_FOUND (exit 2).
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    hub.start()
    try:
        done = duhub("units", "nope", "--target", hub.address)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "parent_id: unknown unit 'nope'" in done.stderr
        village = duhub("units", "420581101201", "--target", hub.address)  # no children
        assert village.returncode == 0, village.stdout + village.stderr
    finally:
        hub.stop(grace=0)


def replay_digest(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split("digest of the rebuilt read model: ")[1].split()[0]


def test_a_cut_replay_does_not_resume_a_target_holding_more(hub: Pipeline, tmp_path: Path) -> None:
    # `--until T` rebuilds the state at T. Into a target a whole replay filled before (the
    # default DATA/replay.db of an earlier `duhub replay`), it used to "resume" from the
    # target's positions past T: nothing replayed, exit 0, the digest of the whole log.
    until = "2023-02-01T00:00:02Z"  # the hierarchy and visit v1 were recorded before it
    cut = replay_digest(
        duhub(
            "replay",
            "--data-dir",
            str(hub.dir),
            "--until",
            until,
            "--into",
            f"sqlite:///{tmp_path / 'cut.db'}",
            "--no-compare",
        )
    )
    into = f"sqlite:///{tmp_path / 'reused.db'}"
    whole = replay_digest(
        duhub("replay", "--data-dir", str(hub.dir), "--into", into, "--no-compare")
    )
    assert whole != cut
    again = duhub(
        "replay", "--data-dir", str(hub.dir), "--until", until, "--into", into, "--no-compare"
    )
    assert again.returncode == 2, again.stdout + again.stderr
    assert "--into: holds a replay of the whole log" in again.stderr
    assert "--fresh" in again.stderr
    fresh = duhub(
        "replay",
        "--data-dir",
        str(hub.dir),
        "--until",
        until,
        "--into",
        into,
        "--no-compare",
        "--fresh",
    )
    assert replay_digest(fresh) == cut
    # A replay cut at T continues to a later cut, and to the whole log, as it always did.
    assert (
        replay_digest(duhub("replay", "--data-dir", str(hub.dir), "--into", into, "--no-compare"))
        == whole
    )
    counted = duhub(
        "replay", "--data-dir", str(hub.dir), "--from-time", until, "--into", into, "--no-compare"
    )
    assert counted.returncode == 2 and "--from-time" in counted.stderr


def test_a_replay_cut_reads_a_bare_date_in_the_time_zone_given(
    hub: Pipeline, tmp_path: Path
) -> None:
    # Everything was recorded from 2023-02-01 00:00 UTC on. Midnight of 02-01 at -08:00 is
    # 08:00 UTC, after all of it; at UTC, only the hierarchy (recorded at 00:00:00) is in.
    def cut(*options: str) -> str:
        into = f"sqlite:///{tmp_path / f'cut{len(list(tmp_path.iterdir()))}.db'}"
        args = ["replay", "--data-dir", str(hub.dir), "--into", into, "--no-compare"]
        return replay_digest(duhub(*args, *options))

    whole = cut()
    utc = cut("--until", "2023-02-01")
    assert utc == cut("--until", "2023-02-01T00:00:00Z") != whole
    assert cut("--until", "2023-02-01", "--time-zone=-08:00") == whole  # argparse: "="
    said = duhub(
        "replay",
        "--data-dir",
        str(hub.dir),
        "--no-compare",
        "--into",
        f"sqlite:///{tmp_path / 'said.db'}",
        "--until",
        "2023-02-01",
        "--time-zone",
        "+08:00",
    )
    assert "cut at 2023-01-31T16:00:00Z: the records recorded at or before it" in said.stdout
    assert cut("--until", "2023-02-01", "--time-zone", "America/Los_Angeles") == whole
    # --from-time too: from 02-01 at +08:00 (01-31 16:00 UTC) counts all of it, as from nothing.
    assert cut("--from-time", "2023-02-01", "--time-zone", "+08:00") == whole


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--until", ""], "--until: ''"),  # a script's unset variable: it replayed everything
        (["--from-time", ""], "--from-time: ''"),
        (["--until", "2023-02-01", "--time-zone", "Asia/Shangai"], "--time-zone: unknown"),
        (["--until", "2023-02-01", "--time-zone", ""], "--time-zone: empty"),
        # Ranges that hold nothing. Counted from after the cut: it said "0 events applied".
        (["--from-time", "2023-02-02", "--until", "2023-02-01"], "--from-time: 2023-02-02"),
        # Past the log's end: every record built state only, figures all 0, exit 0.
        (["--from-offset", "99999999"], "--from-offset: offset 99999999 of partition 0 is past"),
        (["--from-offset", "0:12"], "--from-offset: offset 12 of partition 0 is past"),
    ],
)
def test_a_replay_with_an_empty_time_bad_zone_or_empty_range_exits_2_naming_it(
    hub: Pipeline, tmp_path: Path, options: list[str], named: str
) -> None:
    into = tmp_path / "untouched.db"
    args = ["replay", "--data-dir", str(hub.dir), "--into", f"sqlite:///{into}", "--no-compare"]
    done = duhub(*args, *options)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"duhub: {named}" in done.stderr, done.stderr
    assert not into.exists()


def test_a_replay_counted_from_the_logs_end_is_no_mistake(hub: Pipeline, tmp_path: Path) -> None:
    into = f"sqlite:///{tmp_path / 'end.db'}"
    args = ["replay", "--data-dir", str(hub.dir), "--into", into, "--no-compare"]
    assert duhub(*args, "--from-offset", str(hub.end())).returncode == 0


def test_a_replay_whose_default_target_has_no_directory_says_so(
    hub: Pipeline, tmp_path: Path
) -> None:
    # On Kafka and PostgreSQL there is no data dir: the default --into (DATA/replay.db) failed
    # after the log was opened, "--into: cannot open sqlite:///…: unable to open database file".
    missing = tmp_path / "nodir"
    done = duhub("replay", "--log", str(hub.dir), "--data-dir", str(missing), "--no-compare")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"duhub: --data-dir: no directory {missing} for the default --into" in done.stderr
    assert "--into sqlite:///" in done.stderr  # what to give instead
    assert not missing.exists()


def test_a_compared_replay_says_how_many_records_it_replayed_in_all(
    hub: Pipeline, tmp_path: Path
) -> None:
    # The records the live read model applied meanwhile are replayed too: the count of
    # events applied below could exceed the headline's, with nothing saying why.
    hub.tailer.catch_up()
    into = f"sqlite:///{tmp_path / 'compared.db'}"
    done = duhub("replay", "--data-dir", str(hub.dir), "--into", into, "--wait", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    replayed = int(done.stdout.split("replayed ")[1].split()[0].replace(",", ""))
    assert replayed == hub.end()
    assert f"0 more records, which it applied meanwhile, replayed too: {replayed:,} in all" in (
        done.stdout
    )


def test_a_replay_does_not_resume_a_target_built_from_another_log(
    hub: Pipeline, tmp_path: Path
) -> None:
    # The default --into is DATA/replay.db: after `duhub replay` of `make run`'s ./data, a
    # replay of another log (the Kafka one, `--log kafka://…`) from the same directory
    # "resumed" from the first log's positions: the other log's records past them were
    # folded onto the first's state, and the comparison waited 60 s and blamed the live
    # read model ("stayed behind the replayed one").
    with another_hub() as other:
        into = f"sqlite:///{tmp_path / 'replay.db'}"
        first = duhub("replay", "--data-dir", str(hub.dir), "--into", into, "--no-compare")
        assert first.returncode == 0, first.stdout + first.stderr
        again = duhub("replay", "--data-dir", str(other.dir), "--into", into, "--wait", "1")
        assert again.returncode == 2, again.stdout + again.stderr
        assert "--into: holds a replay of another log" in again.stderr, again.stderr
        assert "--fresh" in again.stderr
        fresh = duhub("replay", "--data-dir", str(other.dir), "--into", into, "--fresh")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert "equal: the live figures are exactly what the log gives" in fresh.stdout
        # The same log again continues, as it always did.
        same = duhub("replay", "--data-dir", str(other.dir), "--into", into)
        assert same.returncode == 0 and "replayed 0 log records" in same.stdout, same.stdout


@contextlib.contextmanager
def another_hub() -> Iterator[Pipeline]:
    """A second hub's log and live read model: the city's hierarchy, applied."""
    other = Pipeline.open()
    try:
        other.clock.now = at("2023-03-01")
        other.publish(hierarchy(), allow_reference=True)
        other.tailer.catch_up()
        yield other
    finally:
        other.close()


@pytest.mark.parametrize("its_log", ["embedded", "kafka"])
def test_a_replay_does_not_fold_its_log_into_another_hubs_live_read_model(
    hub: Pipeline, its_log: str
) -> None:
    # A live read model holds no replay's record of its log. Given as --into by mistake (the
    # Kafka hub's PostgreSQL while replaying the embedded ./data), it was "resumed": this
    # log's records past its positions were folded into the other hub's figures, and that
    # hub then refused to start ("--db: the read model stands past the end of --log").
    with another_hub() as other:
        if its_log == "kafka":  # a partition the embedded log does not have
            with other.engine.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE log_positions SET partition = 2, next_offset = 1160, "
                        "last_offset = 1159, layout_offset = 1160"
                    )
                )
        figures = digest(table_digests(other.engine))
        into = f"sqlite:///{other.dir / 'readmodel.db'}"
        done = duhub("replay", "--data-dir", str(hub.dir), "--into", into, "--no-compare")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "--into: holds a read model of another log" in done.stderr, done.stderr
        assert "replayed" not in done.stdout
        assert digest(table_digests(other.engine)) == figures


def test_fresh_starts_over_in_postgresql_too(hub: Pipeline) -> None:
    # --fresh deleted a SQLite target's file and did nothing to any other: a replay into a
    # PostgreSQL database "started over" by resuming what it held.
    from tests.infra import fresh_database

    with fresh_database() as url:
        args = ("replay", "--data-dir", str(hub.dir), "--into", url, "--no-compare")
        cut = replay_digest(duhub(*args, "--until", "2023-02-01T00:00:02Z"))
        done = duhub(*args, "--fresh")
        whole = replay_digest(done)
        assert whole != cut and f"replayed {hub.end()} log records" in done.stdout
        done = duhub(*args, "--fresh", "--until", "2023-02-01T00:00:02Z")
        assert replay_digest(done) == cut


@pytest.mark.parametrize("command", ["replay", "audit verify"])
@pytest.mark.parametrize("option", ["--data-dir", "--log"])
def test_replay_of_a_data_dir_without_a_log_is_refused_and_makes_nothing(
    tmp_path: Path, command: str, option: str
) -> None:
    # Before, a mistyped --data-dir got an empty log, read model and replay.db made in it,
    # and the replay of nothing was "equal: the live figures are exactly what the log gives".
    # audit verify named neither option ("log: no events.log in …").
    typo = tmp_path / "dat"
    done = duhub(*command.split(), option, str(typo))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"duhub: {option}: no events.log in {typo}" in done.stderr
    assert not typo.exists()


def test_replay_with_a_bad_option_leaves_the_target_as_it_was(
    hub: Pipeline, tmp_path: Path
) -> None:
    into = f"sqlite:///{tmp_path / 'kept.db'}"
    first = replay_digest(
        duhub("replay", "--data-dir", str(hub.dir), "--into", into, "--no-compare")
    )
    done = duhub("replay", "--data-dir", str(hub.dir), "--into", into, "--fresh", "--until", "soon")
    assert done.returncode == 2 and "--until:" in done.stderr
    assert (tmp_path / "kept.db").exists()  # --fresh deleted it before the bad --until
    assert (
        replay_digest(duhub("replay", "--data-dir", str(hub.dir), "--into", into, "--no-compare"))
        == first
    )


def test_replay_into_a_database_it_cannot_open_names_the_option(hub: Pipeline) -> None:
    from tests.infra import postgres_url

    nowhere = postgres_url().rsplit("/", 1)[0] + "/duhub_no_such_database"
    for option in ("--into", "--db"):
        done = duhub("replay", "--data-dir", str(hub.dir), option, nowhere)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"{option}: cannot open" in done.stderr and "Traceback" not in done.stderr
        assert "replayed" not in done.stdout  # refused before replaying


def test_a_damaged_log_is_named_not_a_traceback(hub: Pipeline, tmp_path: Path) -> None:
    # A record damaged before the end stops the open of the log (it is not a torn tail to
    # cut): `duhub up` and `duhub replay` ended in a LogCorrupted traceback, exit 1.
    hub.log.close()
    data = tmp_path / "damaged"
    data.mkdir()
    raw = bytearray((hub.dir / "events.log").read_bytes())
    raw[200] ^= 0xFF
    (data / "events.log").write_bytes(bytes(raw))
    done = duhub("replay", "--data-dir", str(data), "--no-compare")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "is damaged: 'duhub audit verify' names" in done.stderr
    assert "Traceback" not in done.stderr
    up = duhub(
        "up",
        "--data-dir",
        str(data),
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--metrics",
        "off",
        "--no-simulate",
    )
    assert up.returncode == 4, up.stdout + up.stderr
    assert "is damaged: 'duhub audit verify' names" in up.stderr
    assert "Traceback" not in up.stderr


def test_a_second_hub_on_a_port_in_use_is_refused(tmp_path: Path) -> None:
    # gRPC binds with SO_REUSEPORT by default: a second `duhub up` on the port of a running
    # hub started as well, and the kernel split the connections between the two hubs, each
    # with its own log: 20 events published, one hub counted 6 and the other 14, and the
    # answers alternated between them.
    hub = Hub(HubConfig(tmp_path / "first", listen="127.0.0.1:0"))
    hub.start()
    second = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "duhub.cli.main",
            "up",
            "--data-dir",
            str(tmp_path / "second"),
            "--listen",
            hub.address,
            "--http",
            "off",
            "--metrics",
            "off",
            "--no-simulate",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    try:
        out, err = second.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        second.kill()
        out, err = second.communicate()
        pytest.fail(f"a second hub runs on {hub.address}:\n{out}")
    finally:
        hub.stop(grace=0)
    assert second.returncode == 2, out + err
    assert f"--listen: cannot bind {hub.address}" in err


def test_a_second_hub_on_a_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    # The second `duhub up` on a data dir printed "duhub is up", then answered every
    # publish UNKNOWN ("log: another process is writing …"; the CLI: exit 3, no hub
    # answered) while its aggregator wrote the same read model as the first.
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    hub.start()
    try:
        done = duhub(
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            "127.0.0.1:0",
            "--http",
            "off",
            "--metrics",
            "off",
            "--no-simulate",
        )
    finally:
        hub.stop(grace=0)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--data-dir: another hub uses it" in done.stderr
    assert "duhub is up" not in done.stdout


@pytest.mark.parametrize("days", ["0", "-3", "1000000000"])
def test_certs_refuse_a_validity_out_of_range_naming_days(tmp_path: Path, days: str) -> None:
    # Before: 0 wrote a certificate expired when written (exit 0), -3 a message naming no
    # option, 1000000000 an OverflowError traceback (exit 1).
    assert duhub("certs", "init", "--dir", str(tmp_path)).returncode == 0
    done = duhub(
        "certs",
        "user",
        "--dir",
        str(tmp_path),
        "--name",
        "alice",
        "--scope",
        "420581",
        "--days",
        days,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --days:" in done.stderr
    assert not (tmp_path / "user-alice.crt").exists()


@pytest.mark.parametrize("rate", ["nan", "inf", "-1", "0"])
def test_up_refuses_a_simulated_rate_that_is_no_rate(rate: str) -> None:
    # Before, any float passed: inf had the simulated nodes make events without end in one
    # step (credit never ran out), nan or 0 or less made none.
    from duhub.cli.main import parser

    with pytest.raises(SystemExit) as stopped:
        parser().parse_args(["up", "--rate", rate])
    assert stopped.value.code == 2


@pytest.mark.parametrize("spelling", ["host", "default-port"])
def test_replay_refuses_the_live_postgresql_read_model_however_it_is_spelled(
    hub: Pipeline, spelling: str
) -> None:
    # The check compared host, port and database as written: the same server named by
    # another host name (localhost for 127.0.0.1), or with its default port left out, passed,
    # and --fresh dropped every table of the live read model under the running hub.
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.infra import fresh_database

    with fresh_database() as live:
        url = make_url(live)
        assert url.host == "127.0.0.1", "the test server is named by its address"
        if spelling == "host":
            into = url.set(host="localhost")
        else:  # the port it listens on, as libpq's default: PGPORT names it
            into = url.set(port=None)
        into_url = into.render_as_string(hide_password=False)
        first = duhub("replay", "--data-dir", str(hub.dir), "--into", live, "--no-compare")
        assert first.returncode == 0, first.stdout + first.stderr
        probe = create_engine(live.replace("postgresql://", "postgresql+psycopg2://", 1))
        oid = "SELECT 'events_seen'::regclass::oid"
        try:
            with probe.connect() as conn:
                before = conn.execute(text(oid)).scalar()
            done = duhub_env(
                {"PGPORT": str(url.port)},
                "replay",
                "--data-dir",
                str(hub.dir),
                "--db",
                live,
                "--into",
                into_url,
                "--fresh",
                "--no-compare",
            )
            with probe.connect() as conn:
                after = conn.execute(text(oid)).scalar()
        finally:
            probe.dispose()
        assert done.returncode == 2, done.stdout + done.stderr
        assert "--into: must not be the live read model" in done.stderr
        assert after == before  # the live tables were not dropped and made again


def duhub_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "duhub.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env},
    )


@pytest.mark.parametrize("action", ["status", "retry"])
def test_outbox_status_of_a_path_without_an_outbox_says_so_and_makes_nothing(
    tmp_path: Path, action: str
) -> None:
    # Before, `duhub outbox status --outbox PATH` made PATH's directories and an empty outbox
    # there, and printed "0 pending, 0 accepted, 0 duplicate, 0 rejected" (exit 0): a typo in
    # the path passed for an outbox holding nothing.
    where = tmp_path / "typo" / "outbox.db"
    done = duhub("outbox", action, "--outbox", str(where), "--target", "127.0.0.1:1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == f"duhub: --outbox: no outbox at {where}"
    assert list(tmp_path.iterdir()) == []


def test_publish_to_an_outbox_whose_directory_cannot_be_made_says_so(tmp_path: Path) -> None:
    # Before: "no outbox at /proc/nonexistent/o.db", as if a status query had a typo; publish
    # makes an outbox, and here it could not make its directory.
    events = tmp_path / "one.jsonl"
    events.write_text(
        '{"eventId": "e1", "source": "420581", "seq": "1", "occurredAt": '
        '"2023-01-01T00:00:00Z", "supervisionVisit": {"unitId": "420581", "area": "grain"}}\n'
    )
    where = "/proc/nonexistent/o.db"
    done = duhub("publish", str(events), "--outbox", where, "--target", "127.0.0.1:1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"duhub: --outbox: cannot open {where}: "), done.stderr
    assert "No such file or directory" in done.stderr


def test_outbox_status_without_a_default_outbox_names_the_option(tmp_path: Path) -> None:
    done = duhub_env(
        {"XDG_CACHE_HOME": str(tmp_path / "cache")}, "outbox", "status", "--target", "hub:50051"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    default = tmp_path / "cache" / "duhub" / "outbox-hub_50051.db"
    assert f"--outbox: no outbox at {default}" in done.stderr
    assert "the default of target hub:50051" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["up", "--no-simulate", "--http", "off", "--metrics", "off"],
        ["serve", "ingest"],
        ["serve", "query", "--http", "off"],
        ["serve", "aggregate"],
    ],
    ids=["up", "ingest", "query", "aggregate"],
)
def test_a_data_dir_that_cannot_be_one_is_refused_naming_it(
    tmp_path: Path, command: list[str]
) -> None:
    # Before: a FileExistsError traceback (exit 1) from the mkdir of the log or the hub.
    taken = tmp_path / "a-file"
    taken.write_text("not a directory\n")
    listen = [] if command[1] == "aggregate" else ["--listen", "127.0.0.1:0"]
    done = duhub(*command, "--data-dir", str(taken), *listen)
    assert done.returncode == 2, done.stdout + done.stderr
    name = " ".join(command[:2]) if command[0] == "serve" else "up"
    assert done.stderr == f"duhub {name}: --data-dir: {taken} is not a directory\n"
    assert taken.read_text() == "not a directory\n"


# A line gRPC's C core writes itself (a port in use: "E1205 00:15:05.948867 5491 add_port.cc:83]
# Failed to add port …"): only GRPC_VERBOSITY, read as grpc loads, keeps it out of stderr.
GRPC_CORE = re.compile(r"^[EWIF]\d{4} [\d:.]+ +\d+ \S+:\d+\] ", re.MULTILINE)


def records(stderr: str) -> list[dict[str, object]]:
    """The JSON records of a process's standard error; fails on any line that is not one (a
    line of gRPC's C core too: under json, duhub sets GRPC_VERBOSITY before grpc loads)."""
    out = []
    for line in stderr.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON record: {line!r} in\n{stderr}")
    return out


@pytest.mark.parametrize("refused", ["port in use", "data dir in use", "option", "data dir"])
def test_a_refused_start_is_a_json_record_under_log_format_json(
    tmp_path: Path, refused: str
) -> None:
    # Before, these were printed as plain text ("duhub up: --listen: cannot bind …") among
    # the JSON records of --log-format json: a log collector reading JSON lines could not
    # parse why the server did not start.
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    hub.start()
    quiet = ["--http", "off", "--metrics", "off", "--log-format", "json"]
    try:
        args, name, said = {
            "port in use": (
                [
                    "up",
                    "--data-dir",
                    str(tmp_path / "other"),
                    "--listen",
                    hub.address,
                    "--no-simulate",
                    *quiet,
                ],
                "up",
                f"--listen: cannot bind {hub.address}",
            ),
            "data dir in use": (
                [
                    "up",
                    "--data-dir",
                    str(tmp_path / "data"),
                    "--listen",
                    "127.0.0.1:0",
                    "--no-simulate",
                    *quiet,
                ],
                "up",
                "--data-dir: another hub uses it",
            ),
            "option": (
                [
                    "serve",
                    "ingest",
                    "--data-dir",
                    str(tmp_path / "other"),
                    "--listen",
                    "0.0.0.0:0",
                    *quiet,
                ],
                "serve ingest",
                "--listen 0.0.0.0:0: without credentials",
            ),
            "data dir": (
                [
                    "serve",
                    "aggregate",
                    "--data-dir",
                    str(tmp_path / "data" / "events.log"),
                    "--log-format",
                    "json",
                ],
                "serve aggregate",
                "--data-dir: ",
            ),
        }[refused]
        done = duhub(*args)
    finally:
        hub.stop(grace=0)
    assert done.returncode == 2, done.stdout + done.stderr
    last = records(done.stderr)[-1]
    assert last["level"] == "critical"
    assert str(last["message"]).startswith(f"duhub {name}: {said}"), last
    assert last["exit_code"] == 2


def test_a_refused_argument_is_a_json_record_under_log_format_json() -> None:
    done = duhub("up", "--log-format", "json", "--rate", "fast")
    assert done.returncode == 2, done.stdout + done.stderr
    (record,) = records(done.stderr)
    assert record["message"] == "duhub up: error: argument --rate: 'fast' is not a number"
    assert record["level"] == "critical" and record["exit_code"] == 2
    # Without it, argparse's own lines for people, as before.
    text = duhub("up", "--rate", "fast")
    assert text.returncode == 2
    assert text.stderr.startswith("usage: duhub up")
    assert text.stderr.endswith("duhub up: error: argument --rate: 'fast' is not a number\n")


# What a first `duhub serve` of a real deployment gets wrong (README "Running the services
# apart"), each refused with exit 2 naming the option. Before, each was a traceback and exit 1.
SERVE_MISTAKES = {
    "an unreadable origin key": (
        ["aggregate", "--log", "kafka://127.0.0.1:1?key=/nonexistent/origin.key"],
        "--log: key=/nonexistent/origin.key: no such file",
    ),
    "a misspelt kafka:// option": (
        ["aggregate", "--log", "kafka://127.0.0.1:1?topik=mine"],
        "--log: unknown option 'topik'",
    ),
    "a --db that is no URL": (["query", "--db", "nonsense"], "--db: "),
    "a --db of a database duhub has no driver for": (
        ["aggregate", "--log", "kafka://127.0.0.1:1", "--db", "mysql://u@h/db"],
        "--db: mysql://u:***@h/db: duhub's read model is postgresql://… or sqlite:///…",
    ),
}


@pytest.mark.parametrize("mistake", SERVE_MISTAKES)
def test_serve_refuses_a_bad_backend_naming_the_option(tmp_path: Path, mistake: str) -> None:
    args, message = SERVE_MISTAKES[mistake]
    done = duhub("serve", *args, "--data-dir", str(tmp_path), "--http", "off")
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_serve_refuses_a_database_it_cannot_open_naming_db(tmp_path: Path) -> None:
    from tests.infra import postgres_url

    missing = postgres_url().rsplit("/", 1)[0] + "/duhub_no_such_database"
    done = duhub("serve", "query", "--db", missing, "--data-dir", str(tmp_path), "--http", "off")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--db: cannot open postgresql://" in done.stderr, done.stderr
    assert '"duhub_no_such_database" does not exist' in done.stderr
    assert "Traceback" not in done.stderr


@contextlib.contextmanager
def taken_port() -> Iterator[str]:
    """Yield the loopback address of a port another socket listens on meanwhile."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield f"127.0.0.1:{taken.getsockname()[1]}"


@pytest.mark.parametrize("option", ["--listen", "--http", "--metrics"])
def test_up_on_a_port_in_use_is_refused_before_the_data_dir_is_made(
    tmp_path: Path, option: str
) -> None:
    # Before, the port was found taken only once the data dir was made and its log held the
    # shipped reference: the corrected start, with --reference own.json, was then refused
    # ("the log holds another reference hierarchy").
    data = tmp_path / "new"
    addresses = {"--listen": "127.0.0.1:0", "--http": "off", "--metrics": "off"}
    with taken_port() as address:
        addresses[option] = address
        done = duhub(
            "up",
            "--data-dir",
            str(data),
            "--no-simulate",
            *(x for pair in addresses.items() for x in pair),
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"duhub up: {option}: cannot " in done.stderr and address in done.stderr, done.stderr
    assert not data.exists()


@pytest.mark.parametrize(
    ("service", "option"),
    [
        ("ingest", "--listen"),
        ("ingest", "--metrics"),
        ("query", "--http"),
        ("aggregate", "--metrics"),
    ],
)
def test_serve_on_a_port_in_use_is_refused_before_the_data_dir_is_made(
    tmp_path: Path, service: str, option: str
) -> None:
    # Before, ingest bound --metrics only once it had made the data dir and loaded the
    # shipped reference into a new log (a later --reference refused); aggregate made the
    # data dir, query its read model.
    data = tmp_path / "new"
    addresses = {"--metrics": "off"}
    if service != "aggregate":
        addresses["--listen"] = "127.0.0.1:0"
    if service == "query":
        addresses["--http"] = "off"
    with taken_port() as address:
        addresses[option] = address
        done = duhub(
            "serve",
            service,
            "--data-dir",
            str(data),
            *(x for pair in addresses.items() for x in pair),
        )
    assert done.returncode == 2, done.stdout + done.stderr
    said = f"duhub serve {service}: {option}: cannot "
    assert said in done.stderr and address in done.stderr, done.stderr
    assert not data.exists()


@pytest.mark.parametrize("service", ["ingest", "query"])
def test_serve_on_a_port_in_use_is_refused_naming_listen(tmp_path: Path, service: str) -> None:
    # serve.run meant to name --listen (its "an address in use" branch), but the servers bind
    # when they are made, before that branch: an OSError traceback, exit 1.
    with taken_port() as address:
        done = duhub(
            "serve", service, "--listen", address, "--data-dir", str(tmp_path), "--http", "off"
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--listen: cannot bind {address}" in done.stderr and "Traceback" not in done.stderr


def test_replay_refuses_a_partition_the_log_does_not_have(hub: Pipeline, tmp_path: Path) -> None:
    # Before, --from-offset 3:1 on a log of one partition (a typo for 0:1, or a partition of
    # another topic) was dropped: the whole log counted, exit 0, with a digest as if asked.
    kept = tmp_path / "kept.db"
    first = duhub(
        "replay", "--data-dir", str(hub.dir), "--into", f"sqlite:///{kept}", "--no-compare"
    )
    assert first.returncode == 0, first.stdout + first.stderr
    done = duhub(
        "replay",
        "--data-dir",
        str(hub.dir),
        "--into",
        f"sqlite:///{kept}",
        "--fresh",
        "--from-offset",
        "3:1",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--from-offset: the log has no partition 3 (its partitions: 0)" in done.stderr
    assert kept.exists()  # --fresh changed nothing before the option was checked


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("0:5,0:6", "--from-offset: partition 0 given twice"),
        ("9223372036854775808", "--from-offset: offset 9223372036854775808 is past"),
        ("0:99999999999999999999999", "--from-offset: offset 99999999999999999999999 is past"),
    ],
)
def test_replay_refuses_a_partition_given_twice_or_an_offset_past_64_bits(
    hub: Pipeline, tmp_path: Path, given: str, said: str
) -> None:
    # Before, '0:5,0:6' counted from 6, the 5 dropped without a word, and an offset past
    # what a log's 64-bit offsets hold replayed the whole log as state, counting nothing, and
    # was kept in --into as the cut a later replay must continue.
    into = tmp_path / "into.db"
    done = duhub(
        "replay", "--data-dir", str(hub.dir), "--into", f"sqlite:///{into}", "--from-offset", given
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert said in done.stderr and "Traceback" not in done.stderr
    assert not into.exists()


def test_publish_to_a_hub_that_answers_unavailable_does_not_say_no_hub_answers(
    tmp_path: Path,
) -> None:
    # Ingest refuses publishing UNAVAILABLE while the read model is too far behind (new
    # today: the aggregate workers down for an hour or so) or catching up. `duhub publish`
    # then said "no hub answers at ...; start one with 'duhub up'", to a hub that answered.
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0"))
    hub.start()
    hub.ingestor.max_pending = 0  # as if the read model were 200,000 events behind
    try:
        events = tmp_path / "events.jsonl"
        events.write_text(
            '{"eventId": "e1", "source": "420581", "seq": "1", "occurredAt": '
            '"2023-01-01T00:00:00Z", "sanctionImposed": {"unitId": "420581", "area": "grain", '
            '"persons": 1}}\n'
        )
        done = duhub(
            "publish", str(events), "--target", hub.address, "--retry-for", "1",
            "--outbox", str(tmp_path / "outbox.db"),
        )  # fmt: skip
        assert done.returncode == 3, done.stdout + done.stderr
        assert "no hub answers" not in done.stderr and "duhub up" not in done.stderr
        assert f"the hub at {hub.address} answers UNAVAILABLE" in done.stderr
        assert "the read model is 0 events behind" in done.stderr  # the hub's reason
        # The summary line too: it said "no hub answered: 0 accepted, …" above that line.
        assert done.stdout == (
            f"{events}: not sent, the hub answers UNAVAILABLE: 0 accepted, 0 duplicate, "
            "0 rejected\n"
        ), done.stdout
    finally:
        hub.stop(grace=0)


def test_serve_refuses_a_negative_answer_cache_naming_it(tmp_path: Path) -> None:
    # A plain int, left out when the whole-number options got one type: -1 was taken (as 0,
    # silently) and the query service started with no answers kept.
    done = duhub(
        "serve", "query", "--answer-cache", "-1", "--db", f"sqlite:///{tmp_path / 'r.db'}",
        "--listen", "nope", "--http", "off",  # so that it stops, were -1 taken
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --answer-cache: -1 is not between 0 and" in done.stderr


# replay and audit verify open the log as serve does: 3c90bdf made serve's refusals one line,
# exit 2; replay and audit verify still printed a ValueError traceback, exit 1.
LOG_MISTAKES = {
    "a misspelt kafka:// option": (
        "kafka://127.0.0.1:1?topik=mine",
        "--log: unknown option 'topik'",
    ),
    "an unreadable origin key": (
        "kafka://127.0.0.1:1?key=/nonexistent/origin.key",
        "--log: key=/nonexistent/origin.key: no such file",
    ),
}


@pytest.mark.parametrize("mistake", LOG_MISTAKES)
@pytest.mark.parametrize("command", ["replay", "audit verify"])
def test_replay_and_audit_refuse_a_bad_log_naming_it(
    tmp_path: Path, command: str, mistake: str
) -> None:
    url, message = LOG_MISTAKES[mistake]
    extra = (
        ["--no-compare", "--into", f"sqlite:///{tmp_path / 'r.db'}"] if command == "replay" else []
    )
    done = duhub(*command.split(), "--log", url, "--data-dir", str(tmp_path), *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_replay_refuses_a_partition_the_log_does_not_have_from_its_start(
    hub: Pipeline, tmp_path: Path
) -> None:
    # An offset 0 is dropped before the partitions are checked: '--from-offset 3:0' (a typo
    # for 0:0) replayed the whole log, exit 0, where '3:1' is refused.
    done = duhub(
        "replay", "--data-dir", str(hub.dir), "--into", f"sqlite:///{tmp_path / 'r.db'}",
        "--from-offset", "3:0",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--from-offset: the log has no partition 3 (its partitions: 0)" in done.stderr


def test_serve_says_the_broker_refused_not_that_it_cannot_reach_it(tmp_path: Path) -> None:
    # Every KafkaError was 'cannot reach': ?replication=3 on a one-broker cluster (a real
    # cluster's value copied) sent the user looking for a network fault.
    from tests.infra import kafka_bootstrap, unique

    url = f"kafka://{kafka_bootstrap()}?topic={unique('duhub.test.')}&replication=3"
    done = duhub(
        "serve", "ingest", "--log", url, "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--log: the broker of {url} refused: " in done.stderr, done.stderr
    assert "InvalidReplicationFactor" in done.stderr and "cannot reach" not in done.stderr


def test_replay_counts_duplicates_and_dead_letters_apart_from_events_applied(
    hub: Pipeline, tmp_path: Path
) -> None:
    # A resent copy of an event (a duplicate) and a record that is no Event (a dead letter)
    # were both in "replayed N events", as if applied, in the text and in --json.
    last = hub.log.read(0, hub.end() - 1, 1)[0]
    hub.log.append([(last.key, last.value), (b"420581", b"not an event")])
    hub.tailer.catch_up()
    records = hub.end()
    for compare in ((), ("--no-compare",)):
        into = f"sqlite:///{tmp_path / f'r{len(compare)}.db'}"
        args = ("replay", "--data-dir", str(hub.dir), "--into", into, *compare)
        text = duhub(*args)
        assert text.returncode == 0, text.stdout + text.stderr
        assert f"replayed {records} log records" in text.stdout
        assert f"{records - 2} events applied, 1 duplicate, 1 dead letter" in text.stdout
        js = duhub(*args, "--fresh", "--json")
        assert js.returncode == 0, js.stdout + js.stderr
        report = json.loads(js.stdout)
        assert report["replayed"] == records  # the field scripts read, as it was
        assert (report["applied"], report["duplicates"], report["dead_letters"]) == (
            records - 2,
            1,
            1,
        )


def banner(*args: str) -> str:
    """Start a duhub server, return the first line it prints once up, and stop it."""
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "duhub.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        try:
            line = first_line(proc, 60, stderr)
        finally:
            proc.terminate()
            _, err = finish(proc, 30, stderr)
    assert line, err
    return line


def test_serve_query_names_only_the_read_model_it_uses(tmp_path: Path) -> None:
    # Before, its banner said "(log DATA_DIR, read model …)", or the --log given: a query
    # service reads the read model only and never opens a log.
    db = f"sqlite:///{tmp_path / 'rm.db'}"
    line = banner(
        "serve", "query", "--listen", "127.0.0.1:0", "--http", "off", "--db", db,
        "--log", "kafka://127.0.0.1:1", "--data-dir", str(tmp_path / "unused"),
    )  # fmt: skip
    assert re.fullmatch(
        rf"duhub query listening on 127\.0\.0\.1:\d+ \(read model {re.escape(db)}\)\n", line
    )
    assert not (tmp_path / "unused").exists()


def test_a_grpc_verbosity_the_user_set_is_kept_under_log_format_json(tmp_path: Path) -> None:
    # duhub sets GRPC_VERBOSITY=NONE for json logs only when the environment has none: one
    # set on purpose (to see the C core's reasons) is the user's.
    # A unix socket in a directory that does not exist: gRPC's core fails the bind and says
    # so (a TCP port in use is refused before gRPC is asked, `duhub.cli.bindcheck`).
    address = f"unix:{tmp_path / 'no-such-dir' / 'hub.sock'}"
    args = ("serve", "query", "--listen", address, "--http", "off", "--log-format", "json")
    db = ("--db", f"sqlite:///{tmp_path / 'rm.db'}")
    quiet = duhub_env({}, *args, *db)
    kept = duhub_env({"GRPC_VERBOSITY": "ERROR"}, *args, *db)
    for done in (quiet, kept):
        assert done.returncode == 2, done.stdout + done.stderr
    said = str(records(quiet.stderr)[-1]["message"])
    assert said.startswith(f"duhub serve query: --listen: cannot bind {address}"), said
    assert GRPC_CORE.search(kept.stderr), kept.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
@pytest.mark.parametrize(
    "command",
    [
        ["publish", "EMPTY", "--outbox", "OUTBOX", "--wait"],
        ["publish", "EMPTY", "--outbox", "OUTBOX", "--retry-for"],
        ["outbox", "retry", "--outbox", "OUTBOX", "--retry-for"],
        ["replay", "--data-dir", "DATA", "--wait"],
    ],
    ids=["publish-wait", "publish-retry-for", "outbox-retry-for", "replay-wait"],
)
def test_a_number_of_seconds_must_be_finite_and_not_negative(
    tmp_path: Path, command: list[str], value: str
) -> None:
    # Before, any float passed: `publish --retry-for nan` retried without end with no hub
    # (every "waited longer than nan?" is false), `replay --wait nan` waited for ever for a
    # live read model behind, `--wait nan` or -1 of publish meant "don't", silently.
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    given = {"EMPTY": str(empty), "OUTBOX": str(tmp_path / "o.db"), "DATA": str(tmp_path)}
    args = [given.get(a, a) for a in command]
    done = duhub(*args, value, *(["--target", "127.0.0.1:1"] if command[0] != "replay" else []))
    assert done.returncode == 2, done.stdout + done.stderr
    option = command[-1]
    assert f"error: argument {option}: {value} is not a number of seconds, 0 or more" in (
        done.stderr
    )
    assert done.stdout == "" and list(tmp_path.iterdir()) == [empty]


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--listen", "127.0.0.1:99999", "the port must be a whole number from 0 to 65535"),
        ("--listen", "localhost", "is not HOST:PORT"),
        ("--http", "127.0.0.1:65536", "the port must be a whole number from 0 to 65535"),
        ("--metrics", "127.0.0.1:99999", "the port must be a whole number from 0 to 65535"),
        ("--metrics", "127.0.0.1:x", "the port must be a whole number from 0 to 65535"),
    ],
)
@pytest.mark.parametrize("command", [["serve", "query"], ["up", "--no-simulate"]])
def test_a_server_address_without_a_port_that_exists_is_refused(
    tmp_path: Path, command: list[str], option: str, value: str, said: str
) -> None:
    # Before, `serve query --listen 127.0.0.1:99999` listened on port 34463 (gRPC took the
    # port modulo 65536), `--listen localhost` on port 443, and `--metrics 127.0.0.1:99999`
    # ended in an OverflowError traceback (exit 1).
    defaults = {"--listen": "127.0.0.1:0", "--http": "off", "--metrics": "off"}
    defaults[option] = value
    args = [a for o, v in defaults.items() for a in (o, v)]
    done = duhub(*command, "--data-dir", str(tmp_path / "d"), *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: argument {option}: '{value}'" in done.stderr and said in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["127.0.0.1:99999", "127.0.0.1:0", "localhost:65536"])
@pytest.mark.parametrize(
    "command",
    [["query", "stats", "--metric", "visits"], ["units"], ["outbox", "status"]],
)
def test_a_hub_address_without_a_port_that_exists_is_refused(
    tmp_path: Path, command: list[str], value: str
) -> None:
    # Before, `--target 127.0.0.1:99999` called port 34463 (gRPC took the port modulo 65536)
    # and said "no hub answers" (exit 3), as if an address were right and the hub down.
    done = duhub_env({"HOME": str(tmp_path)}, *command, "--target", value)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: argument --target: '{value}'" in done.stderr
    assert "the port must be a whole number from 1 to 65535" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("", "empty"),
        ("localhost:abc", "the port must be a whole number from 1 to 65535"),
        ("127.0.0.1:50051/x", "the port must be a whole number from 1 to 65535"),
    ],
)
@pytest.mark.parametrize("command", [["publish", "EMPTY"], ["units"], ["outbox", "status"]])
def test_an_empty_target_or_one_whose_port_is_no_number_is_refused(
    tmp_path: Path, command: list[str], value: str, said: str
) -> None:
    # Before, an empty --target (a script's unset variable: --target "$CITY_HUB") went to
    # DUHUB_TARGET or the local hub: a publish delivered there, its outbox then counting the
    # events delivered. A port that is no number was gRPC's to refuse: "no hub answers"
    # (exit 3), as if the address were right and the hub down.
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    args = [str(empty) if a == "EMPTY" else a for a in command]
    done = duhub_env({"HOME": str(tmp_path)}, *args, "--target", value)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: argument --target: '{value}'" in done.stderr and said in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert list(tmp_path.iterdir()) == [empty]


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "ingest", "--log", ""],
        ["serve", "query", "--db", ""],
        ["serve", "ingest", "--reference", ""],
        ["up", "--no-simulate", "--db", ""],
        ["up", "--no-simulate", "--log", ""],
        ["up", "--no-simulate", "--reference", ""],
        ["up", "--no-simulate", "--data-dir", ""],
        ["replay", "--into", ""],
        ["audit", "verify", "--log", ""],
    ],
    ids=" ".join,
)
def test_an_empty_log_db_reference_or_data_dir_is_refused_before_anything_starts(
    tmp_path: Path, command: list[str]
) -> None:
    # A script's unset variable (serve ingest --log "$KAFKA_URL") was taken as the option
    # left out: ingest ran on an embedded log in ./data and acknowledged the counties' events
    # there, never reaching the hub's log; a query service answered from an empty SQLite file;
    # --reference "" loaded the shipped sample units into a real deployment's log for good.
    servers = {"serve": ["--http", "off"] * (command[1] == "query"), "up": ["--http", "off"]}
    args = [*command, *servers.get(command[0], []), "--listen", "127.0.0.1:0", "--metrics", "off"]
    if command[0] in ("replay", "audit"):
        args = command
    try:
        done = subprocess.run(
            [sys.executable, "-m", "duhub.cli.main", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=30,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"duhub {' '.join(command)!r} started instead of refusing the empty value")
    option = next(a for a in command if a.startswith("--") and a != "--no-simulate")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"argument {option}: '' is empty" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_duhub_target_without_a_port_that_exists_is_refused_naming_it(tmp_path: Path) -> None:
    done = duhub_env({"HOME": str(tmp_path), "DUHUB_TARGET": "127.0.0.1:99999"}, "units")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "DUHUB_TARGET='127.0.0.1:99999': the port must be" in done.stderr
    # A scheme or a host without a port is gRPC's to resolve: not refused here.
    for fine in ("dns:///127.0.0.1:1", "unix:/nonexistent/duhub.sock"):
        done = duhub_env({"HOME": str(tmp_path), "DUHUB_TARGET": fine}, "units")
        assert done.returncode == 3, done.stdout + done.stderr


def test_the_hub_address_is_target_else_duhub_target_else_the_local_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from duhub.cli import client

    monkeypatch.delenv("DUHUB_TARGET", raising=False)
    assert client.target(None) == "127.0.0.1:50051"  # the contract's local all-in-one hub
    monkeypatch.setenv("DUHUB_TARGET", "")  # set empty: as unset
    assert client.target(None) == "127.0.0.1:50051"
    monkeypatch.setenv("DUHUB_TARGET", "10.0.0.7:50051")
    assert client.target(None) == "10.0.0.7:50051"
    assert client.target("10.0.0.8:50051") == "10.0.0.8:50051"  # --target wins


class _SlowToAnswer:
    """A TCP relay to `upstream` that holds the server's first bytes (its HTTP/2 SETTINGS)
    back for `delay` seconds on each connection: a hub on a loaded machine."""

    def __init__(self, upstream: str, delay: float) -> None:
        import threading

        self._upstream, self._delay = upstream.rsplit(":", 1), delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection((self._upstream[0], int(self._upstream[1])))
            threading.Thread(target=self._pipe, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pipe, args=(server, client, self._delay), daemon=True
            ).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, delay: float) -> None:
        import time

        time.sleep(delay)
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self._listener.close()


def test_a_hub_slow_to_answer_a_new_connection_is_waited_for(tmp_path: Path) -> None:
    # Before, the command line gave a connection attempt 100 ms (grpc.min_reconnect_backoff_ms
    # is also gRPC's connect timeout): a hub whose first HTTP/2 frame took longer, as on a
    # loaded machine, was "no hub answers ... timed out before receiving SETTINGS frame" (3).
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0", http=""))
    hub.start()
    relay = _SlowToAnswer(hub.address, delay=0.5)
    try:
        done = duhub("units", "--target", relay.address)
    finally:
        relay.close()
        hub.stop(grace=0)
    assert done.returncode == 0, done.stderr
    assert "420581" in done.stdout


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[list[str]]:
    """A hub holding examples/quickstart.jsonl, published as the README does; yields the
    --target option of its address."""
    hub = Hub(HubConfig(tmp_path / "data", listen="127.0.0.1:0", http=""))
    hub.start()
    try:
        target = ["--target", hub.address]
        sent = duhub_env(
            {"HOME": str(tmp_path)},
            "publish",
            str(ROOT / "examples" / "quickstart.jsonl"),
            "--outbox",
            str(tmp_path / "outbox.db"),
            *target,
        )
        assert sent.returncode == 1, sent.stdout + sent.stderr  # one line rejected on purpose
        yield target
    finally:
        hub.stop(grace=0)


def test_the_record_time_explain_prints_answers_as_of_then_with_its_event(
    quickstart: list[str],
) -> None:
    # Ops reproduce a figure as of a moment from the record times `explain` lists. Before,
    # the table cut them to the second (`2026-12-05 06:18:16`, recorded at 06:18:16.116…):
    # `--as-of` that moment came before the event, and the figure read 0.
    shown = duhub("explain", "--metric", "visits", *quickstart)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("visits = 2, from 2 events\n"), shown.stdout
    header, *_, last = shown.stdout.splitlines()[1:]
    recorded = last[header.index("recorded") : header.index("log")].strip()
    then = duhub("query", "stats", "--metric", "visits", "--as-of", recorded, *quickstart)
    assert then.returncode == 0, then.stderr
    assert then.stdout.splitlines()[-1].strip() == "2", then.stdout


def test_stats_by_unit_lists_the_scopes_own_events_so_the_rows_add_up(
    quickstart: list[str],
) -> None:
    # The quick start's city group visits 宜都市 (420581) itself, which is in none of its
    # townships' rows. Before, `--scope 420581 --group-by unit` showed the townships'
    # 1 + 0 + … and a total of 2, with nothing to say where the other visit was.
    shown = duhub(
        "query", "stats", "--metric", "visits,problems_found", "--scope", "420581",
        "--group-by", "unit", *quickstart,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()[3:]]
    total, parts = rows[-1], rows[:-1]
    assert total[:2] == ["total", "合计"] and total[2:] == ["2", "1"], shown.stdout
    own = [r for r in parts if r[0] == "420581"]
    assert own and own[0][-2:] == ["1", "0"], shown.stdout
    assert [sum(int(r[-i]) for r in parts) for i in (2, 1)] == [2, 1], shown.stdout
    # Scripts get it too, from the same answer as the rows (the table asked a second time
    # for the total, and --json had the children's rows only).
    shown = duhub(
        "query", "stats", "--metric", "visits,problems_found", "--scope", "420581",
        "--group-by", "unit", "--json", *quickstart,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    reply = json.loads(shown.stdout)
    own = reply["own"]
    assert (own["key"], own["name"], own["values"]) == (
        "420581", "宜都市", {"visits": "1", "problems_found": "0"},
    )  # fmt: skip
    assert "420581" not in [r["key"] for r in reply["rows"]]
    every = [own, *reply["rows"]]
    assert [sum(int(r["values"][x]) for r in every) for x in ("visits", "problems_found")] == [
        2,
        1,
    ]


def test_stats_takes_several_metric_names_after_one_metric_option(quickstart: list[str]) -> None:
    # The contract writes `duhub query stats --metric NAME…`: a script passes the names after
    # one --metric, as the commas and a repeated --metric do. Before, the second name was
    # refused, "unrecognized arguments: problems_found", exit 2.
    answers = [
        duhub("query", "stats", *metric, "--scope", "420581", "--json", *quickstart)
        for metric in (
            ["--metric", "visits", "problems_found", "talk_persons"],
            ["--metric", "visits,problems_found", "--metric", "talk_persons"],
        )
    ]
    for done in answers:
        assert done.returncode == 0, done.stdout + done.stderr
    values = [json.loads(done.stdout)["rows"][0]["values"] for done in answers]
    assert values[0] == values[1] == {"visits": "2", "problems_found": "1", "talk_persons": "3"}


@pytest.mark.parametrize("value", ["http://127.0.0.1:50051", "https://hub.example.org:50051/"])
def test_a_web_address_for_the_hub_is_refused_naming_target(tmp_path: Path, value: str) -> None:
    # A new user copies the dashboard's http:// address. Before, gRPC took it for a host
    # name and the command said "no hub answers … Misformatted domain name; start one with
    # 'duhub up'" (exit 3), as if the hub were down.
    done = duhub_env({"HOME": str(tmp_path)}, "campaigns", "--target", value)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"error: argument --target: '{value}'" in done.stderr
    assert "HOST:PORT" in done.stderr and "no hub answers" not in done.stderr
    done = duhub_env({"HOME": str(tmp_path), "DUHUB_TARGET": value}, "campaigns")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"DUHUB_TARGET='{value}'" in done.stderr and "HOST:PORT" in done.stderr


@pytest.fixture(scope="module")
def bare_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A hub holding only the reference hierarchy; yields its address."""
    hub = Hub(HubConfig(tmp_path_factory.mktemp("bare") / "data", listen="127.0.0.1:0", http=""))
    hub.start()
    yield hub.address
    hub.stop(grace=0)


@pytest.mark.parametrize(
    ("args", "field", "option"),
    [
        (
            ["query", "stats", "--metric", "visits", "--scope", "9"],
            "scope_unit_id",
            "option --scope",
        ),
        (["query", "stats", "--metric", "visit"], "metrics", "option --metric"),
        (["query", "stats", "--metric", "visits", "--area", "Ecology"], "area", "option --area"),
        (["query", "stats", "--metric", "visits", "--group-by", "month"], "from", "option --from"),
        (["query", "coverage", "--campaign", "nosuch"], "campaign_id", "option --campaign"),
        (
            ["explain", "--metric", "visits", "--from", "2023-01-01", "--to", "2022-01-01"],
            "to",
            "option --to",
        ),
        (["units", "nope"], "parent_id", "argument PARENT"),
        (["explain", "--campaign", "c", "--group", " g"], "group_id", "option --group"),
    ],
)
def test_a_question_the_hub_refuses_names_the_option_the_user_gave(
    bare_hub: str, args: list[str], field: str, option: str
) -> None:
    # The hub names the request's field (scope_unit_id); the user typed --scope. Before,
    # 'duhub query stats --scope 999999' said only "scope_unit_id: unknown unit '999999'".
    done = duhub(*args, "--target", bare_hub)
    assert done.returncode == 2, done.stdout + done.stderr
    line = done.stderr.strip()
    assert line.startswith(f"duhub: {field}: ") and line.endswith(f" ({option})"), line


def test_a_question_to_an_empty_read_model_says_it_is_empty(tmp_path: Path) -> None:
    # `duhub serve query --db sqlite:///cut.db` with the path mistyped serves a new, empty
    # read model. Before, every question was "scope_unit_id: unknown unit '(the city)'": no
    # such unit was asked for, and nothing said the read model held nothing.
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "duhub.cli.main", "serve", "query", "--listen", "127.0.0.1:0",
             "--http", "off", "--db", f"sqlite:///{tmp_path / 'typo.db'}"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        try:
            line = first_line(proc, 60, stderr)
            address = re.search(r"listening on (\S+)", line)
            assert address, line + said(stderr)
            done = duhub("query", "stats", "--metric", "visits", "--target", address.group(1))
        finally:
            proc.terminate()
            finish(proc, 30, stderr)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "(the city)" not in done.stderr
    assert "scope_unit_id: the read model holds no units" in done.stderr, done.stderr


@pytest.mark.parametrize("command", [["up", "--no-simulate"], ["serve", "query"]])
def test_a_dashboard_port_in_use_is_refused_naming_http(tmp_path: Path, command: list[str]) -> None:
    # A new user's 8080 is often taken. Before, it said "http: cannot bind …": no such
    # option; --listen's refusal names --listen.
    with taken_port() as address:
        done = duhub(
            *command, "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0",
            "--http", address, "--metrics", "off",
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f": --http: cannot bind {address}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_up_and_serve_refuse_a_callers_share_outside_one_to_the_cap_naming_it(
    tmp_path: Path,
) -> None:
    # Each caller's share of a kind's stream places is at least 1 and at most --max-streams.
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")  # so that the hub stops at once, were the share taken
    done = duhub(
        "up", "--max-streams", "4", "--max-streams-per-caller", "5", "--no-simulate",
        "--data-dir", str(not_a_dir), "--listen", "127.0.0.1:0", "--http", "off",
        "--metrics", "off",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--max-streams-per-caller: 5 is more than --max-streams (4)" in done.stderr
    assert "Traceback" not in done.stderr
    done = duhub(
        "serve", "query", "--max-streams-per-caller", "0", "--db",
        f"sqlite:///{tmp_path / 'r.db'}", "--listen", "nope", "--http", "off",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --max-streams-per-caller: 0 is not between 1 and" in done.stderr
    for command in (["up"], ["serve", "query"]):
        shown = " ".join(duhub(*command, "--help").stdout.split())  # as argparse wraps it
        assert "--max-streams-per-caller M" in shown and "a quarter of N" in shown, shown


MISTYPED_KAFKA = ["kafka//127.0.0.1:9092", "kafka:/127.0.0.1:9092", "Kafka://127.0.0.1:9092"]


@pytest.mark.parametrize("log", MISTYPED_KAFKA)
@pytest.mark.parametrize(
    "command",
    [
        ("serve", "ingest", "--listen", "127.0.0.1:0", "--metrics", "off"),
        ("serve", "aggregate", "--metrics", "off"),
        ("up", "--no-simulate", "--listen", "127.0.0.1:0", "--http", "off", "--metrics", "off"),
        ("replay",),
        ("audit", "verify"),
    ],
    ids=["serve ingest", "serve aggregate", "up", "replay", "audit verify"],
)
def test_a_mistyped_kafka_log_is_refused_not_taken_for_a_directory(
    tmp_path: Path, command: tuple[str, ...], log: str
) -> None:
    # Before 2026-12-06, `serve ingest --log kafka//127.0.0.1:9092` made
    # ./kafka/127.0.0.1:9092/events.log, loaded the reference data into it and served.
    done = duhub(*command, "--log", log, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (
        f"argument --log: {log!r} is neither kafka://HOST:PORT nor a directory path it will use"
        in done.stderr
    ), done.stderr
    assert "kafka://127.0.0.1:9092" in done.stderr  # the hint: the lowercase kafka:// form
    assert list(tmp_path.iterdir()) == []  # nothing made: no ./kafka, no ./data


def test_a_mistyped_kafka_log_in_duhub_log_is_refused_naming_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "duhub.cli.main", "replay"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "DUHUB_LOG": "kafka//b:9092"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --log: 'kafka//b:9092' (from $DUHUB_LOG) is neither" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_kafka_log_typed_as_it_is_in_duhub_log_is_not_blamed_on_it() -> None:
    # Before, the refusal said "(from $DUHUB_LOG)" whenever the text equalled the variable,
    # also when the user had typed it as --log.
    done = duhub_env({"DUHUB_LOG": "kafka//b:9092"}, "replay", "--log", "kafka//b:9092")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "argument --log: 'kafka//b:9092' is neither" in done.stderr, done.stderr


def test_a_directory_named_kafka_is_given_as_a_relative_path(tmp_path: Path) -> None:
    """The way out the refusal names: ./kafka… is a directory, as before."""
    done = duhub("audit", "verify", "--log", "./kafka-data", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--log: no events.log in ./kafka-data" in done.stderr  # taken as a directory
