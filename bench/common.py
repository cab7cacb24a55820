"""What every benchmark shares: statistics, machine facts, memory, processes, and the local
Kafka and PostgreSQL (started with the deploy scripts; only 127.0.0.1 is ever contacted)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DUHUB = str(Path(sys.executable).parent / "duhub")
KAFKA = os.environ.get("DUHUB_BENCH_KAFKA", "127.0.0.1:19092")
PG_ADMIN = os.environ.get("DUHUB_BENCH_PG", "postgresql://duhub:duhub@127.0.0.1:55432/duhub")
WORK = Path(os.environ.get("DUHUB_BENCH_DIR", "/tmp/duhub-bench"))
# The origin key of the benchmark's hubs on Kafka (`duhub/log/origin.py`), made on first use.
ORIGIN_KEY = str(WORK / "origin.key")


# -- statistics -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0..100), linear between closest ranks."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# -- results ----------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure beside its reference, as medians over the runs."""

    name: str
    value: float
    unit: str
    runs: list[float] = field(default_factory=list)
    reference: str = ""
    reference_value: float | None = None
    reference_runs: list[float] = field(default_factory=list)
    # value / reference_value, or the other way round when smaller is better (say which).
    ratio: float | None = None
    ratio_note: str = ""
    target: str = ""
    met: bool | None = None
    size: str = ""
    note: str = ""
    bench: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class Results:
    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.details: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def add(self, fig: Figure) -> Figure:
        self.figures.append(fig)
        return fig


def fmt(x: float | None, unit: str = "") -> str:
    if x is None or x != x:  # NaN
        return "—"
    if unit in ("events/s", "req/s"):
        return f"{x:,.0f}"
    if unit == "ms":
        return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"
    if unit == "MB":
        return f"{x:,.0f}"
    if unit == "s":
        return f"{x:,.1f}"
    return f"{x:,.2f}"


def table(figures: Sequence[Figure]) -> str:
    """Return a Markdown table of the figures."""
    lines = [
        "| figure | size | value | reference | ratio | target | met |",
        "| --- | --- | ---: | --- | ---: | --- | :---: |",
    ]
    notes: list[str] = []
    for f in figures:
        name = f.name
        if f.note:
            if f.note not in notes:
                notes.append(f.note)
            name += f" [{notes.index(f.note) + 1}]"
        ref = (
            f"{f.reference}: {fmt(f.reference_value, f.unit)} {f.unit}"
            if f.reference_value is not None
            else f.reference
        )
        ratio = "—" if f.ratio is None else f"{f.ratio:,.2f}×"
        if f.ratio_note and f.ratio is not None:
            ratio += f" ({f.ratio_note})"
        met = "—" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(
            f"| {name} | {f.size} | {fmt(f.value, f.unit)} {f.unit} | {ref} | {ratio} "
            f"| {f.target} | {met} |"
        )
    lines += [""] + [f"- [{i}] {n}" for i, n in enumerate(notes, start=1)] if notes else []
    return "\n".join(lines)


BIG = 10_000_000


def at_target_size(events: int, ok: bool) -> tuple[bool | None, str]:
    """Judge a target set at 10M events: a miss below 10M where the cost only grows with the
    size is a miss; otherwise say it was not measured at 10M."""
    if events >= BIG:
        return ok, ""
    return (None, f"target is at 10,000,000 events; measured at {events:,} only")


# -- machine facts and memory -----------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError):
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_kb = int(m.group(1)) if m else 0
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        commit = done.stdout.strip() if done.returncode == 0 else ""
    return {
        "cpu": model,
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "load_average_at_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "commit": commit,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def rss_mb(pid: int) -> dict[str, float]:
    """Return VmRSS and VmHWM (peak) of a process, in MB (0 when it is gone)."""
    out = {"rss": 0.0, "peak": 0.0}
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/status").read_text()
        for key, name in (("VmRSS", "rss"), ("VmHWM", "peak")):
            m = re.search(rf"{key}:\s+(\d+) kB", text)
            if m:
                out[name] = int(m.group(1)) / 1024
    return out


class PeakWatcher:
    """Sample a process's RSS now and then (VmHWM is the peak; sampling shows the curve).

    Its child processes count too (a long replay writes SQLite from a child): the peak is the
    sum of each process's own peak, an upper bound of what they held together."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid, self.every = pid, every
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    @property
    def peak(self) -> float:
        return sum(self.peaks.values())

    def _sample(self) -> None:
        for pid in (self.pid, *_descendants(self.pid)):
            r = rss_mb(pid)
            self.peaks[pid] = max(self.peaks.get(pid, 0.0), r["peak"], r["rss"])

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def stop(self) -> float:
        self._sample()
        self._stop.set()
        self._t.join(2)
        return self.peak


def _descendants(pid: int) -> list[int]:
    """Return the pids of a process's children, their children, and so on."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError, ValueError):
            kids = [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
            out += kids
            todo += kids
    return out


# -- processes --------------------------------------------------------------------------------


class Proc:
    """A `duhub` command run as its own process; ready once a line matches `ready`."""

    def __init__(
        self,
        args: list[str],
        ready: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        log: Path | None = None,
    ) -> None:
        self.args = args
        self.lines: list[str] = []
        self.log = log
        self.proc = subprocess.Popen(
            [DUHUB, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=str(WORK),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.match = self._wait(re.compile(ready), timeout)
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait(self, ready: re.Pattern[str], timeout: float) -> re.Match[str]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        result: list[re.Match[str]] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                found = ready.search(line)
                if found:
                    result.append(found)
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))
        if not result:
            self.stop()
            tail = "".join(self.lines[-30:])
            raise RuntimeError(f"duhub {' '.join(self.args[:2])} did not get ready:\n{tail}")
        return result[0]

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self.proc.stdout:
                self.lines.append(line)
                if len(self.lines) > 5000:
                    del self.lines[:1000]

    @property
    def address(self) -> str:
        return self.match.group(1)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the process (its own session), then SIGKILL it if it lingers."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.log is not None:
            with contextlib.suppress(OSError):
                self.log.write_text("".join(self.lines))


class Supervised:
    """Keep a `duhub serve` process running, as a supervisor (systemd, Kubernetes) would:
    restart it when it exits, or when it printed a line matching `dead` (a liveness check: a
    Faust worker whose fetcher crashed stays alive, applying nothing, for minutes), and count
    the restarts."""

    def __init__(self, start: Callable[[int], Proc], dead: str = "") -> None:
        self._start = start
        self._dead = re.compile(dead) if dead else None
        self.restarts = 0
        self.exits: list[str] = []
        self.proc = start(0)
        self.pids = [self.proc.pid]

    def _stuck(self) -> str:
        if self._dead is None:
            return ""
        for line in list(self.proc.lines):
            if self._dead.search(line):
                return line.strip()
        return ""

    def check(self) -> bool:
        """Restart the process if it exited or looks dead; return whether it had to."""
        stuck = self._stuck()
        if self.proc.alive() and not stuck:
            return False
        tail = [ln for ln in self.proc.lines[-200:] if "Error" in ln or "CRITICAL" in ln]
        why = stuck or (tail[-1].strip() if tail else f"exit {self.proc.proc.returncode}")
        self.exits.append(why)
        self.proc.stop()
        self.restarts += 1
        say(f"bench: {self.proc.args[:2]} died ({self.exits[-1][:160]}); restarting it")
        self.proc = self._start(self.restarts)
        self.pids.append(self.proc.pid)
        return True

    def stop(self) -> None:
        self.proc.stop()


# A Faust worker whose fetcher crashed (aiokafka KeyError) applies nothing until it times out.
FAUST_DEAD = r"Fetcher\]: Crashed|We experienced a crash"


def serve(service: str, *options: str, log: Path | None = None) -> Proc:
    """Start `duhub serve SERVICE` on a loopback port picked by the OS."""
    if service == "aggregate":
        return Proc(["serve", service, *options], r"(duhub aggregate)", log=log)
    return Proc(
        ["serve", service, "--listen", "127.0.0.1:0", "--http", "off", *options],
        r"listening on (\S+)",
        log=log,
    )


# -- Kafka and PostgreSQL ---------------------------------------------------------------------


def reachable(host_port: str) -> bool:
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def pg_host_port(url: str = PG_ADMIN) -> str:
    return url.rsplit("@", 1)[-1].split("/", 1)[0]


def ensure_services(kafka: bool = True, pg: bool = True) -> float:
    """Start Kafka and/or PostgreSQL with the deploy scripts when not answering; return the
    seconds it took (0 when they were up)."""
    targets = []
    if kafka and not reachable(KAFKA):
        targets.append("kafka-up")
    if pg and not reachable(pg_host_port()):
        targets.append("pg-up")
    if not targets:
        return 0.0
    t0 = time.monotonic()
    print(f"bench: starting {' '.join(targets)} ...", file=sys.stderr, flush=True)
    subprocess.run(["make", "-s", *targets], cwd=ROOT, check=True, timeout=600)
    return time.monotonic() - t0


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def kafka_url(topic: str, partitions: int = 12) -> str:
    origin_key()  # made on first use
    return f"kafka://{KAFKA}?topic={topic}&partitions={partitions}&key={ORIGIN_KEY}"


def origin_key() -> bytes:
    """The origin key of the benchmark's hubs (ingest signs its records with it)."""
    from duhub.log.origin import make_key

    return make_key(ORIGIN_KEY)


def delete_topics(names: Sequence[str]) -> None:
    from kafka import KafkaAdminClient

    if not names:
        return
    admin = KafkaAdminClient(bootstrap_servers=KAFKA, client_id="duhub-bench-admin")
    try:
        for name in names:  # one by one: an absent one must not keep the others
            with contextlib.suppress(Exception):
                admin.delete_topics([name], timeout_ms=30_000)
    finally:
        admin.close()


def _admin_engine():  # type: ignore[no-untyped-def]
    from sqlalchemy import create_engine

    url = PG_ADMIN.replace("postgresql://", "postgresql+psycopg2://", 1)
    return create_engine(url, isolation_level="AUTOCOMMIT")


def create_database(prefix: str = "duhub_bench_") -> str:
    """Create a fresh database; return its URL (postgresql://…)."""
    from sqlalchemy import text

    name = unique(prefix)
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    from sqlalchemy import text

    name = url.rsplit("/", 1)[1]
    admin = _admin_engine()
    try:
        # FORCE cannot end a backend of another role: after the 10M run, an autovacuum
        # worker on the database refused it once. Those end soon; try a few times.
        for attempt in range(5):
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                return
            except Exception as e:  # noqa: BLE001 - say so: the next run's start drops it
                if attempt == 4:
                    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                    say(f"could not drop database {name} ({reason}); the next run drops it")
                else:
                    time.sleep(3)
    finally:
        admin.dispose()


def drop_stale_databases(prefix: str = "duhub_bench_") -> None:
    """Drop databases an interrupted earlier run left behind. One with a session open is
    another run's, in use (a forced drop ended a benchmark running beside this one): it is
    left, and dropped by a later start once nothing uses it."""
    from sqlalchemy import text

    admin = _admin_engine()
    with contextlib.suppress(Exception), admin.connect() as conn:
        rows = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": prefix + "%"}
        )
        for (name,) in rows.all():
            with contextlib.suppress(Exception):  # in use: not stale
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


class Cleanup:
    """Undo what a benchmark set up, last first, whatever happened."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def add(self, fn: Callable[[], None]) -> None:
        self._undo.append(fn)

    def proc(self, p: Proc) -> Proc:
        self.add(p.stop)
        return p

    def database(self, url: str) -> str:
        self.add(lambda: drop_database(url))
        return url

    def topic(self, name: str) -> str:
        """Delete the topic afterwards, with the dead-letter topic duhub creates beside it."""
        self.add(lambda: delete_topics([name, f"{name}.dlq"]))
        return name

    def run(self) -> None:
        while self._undo:
            fn = self._undo.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                print(f"bench: cleanup step failed: {e}", file=sys.stderr)


@contextlib.contextmanager
def cleanup() -> Iterator[Cleanup]:
    c = Cleanup()
    try:
        yield c
    finally:
        c.run()


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_until(pred: Callable[[], bool], timeout: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(every)
    return pred()


def dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
