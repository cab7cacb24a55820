"""Run `duhub` as real processes, the way a user does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

DUHUB = str(Path(sys.executable).parent / "duhub")
ADDRESS = re.compile(r"gRPC \(ingest \+ query\):\s+(\S+)")
DASHBOARD = re.compile(r"^  dashboard: {14}(http://\S+/)$")


class DuhubProcess:
    """A duhub command run as its own process; started once it printed `ready`."""

    def __init__(self, args: list[str], ready: re.Pattern[str], timeout: float = 90) -> None:
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [DUHUB, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        # Drained from the start, so no read blocks: the waits below poll the output
        # against their deadline, and a child gone quiet cannot hang the test.
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        self.match = self._wait_for(ready, timeout)

    def _wait_for(self, ready: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            exited = self._exited()
            lines = list(self.output)
            for line in lines[seen:]:
                found = ready.search(line)
                if found:
                    return found
            seen = len(lines)
            if exited:
                raise RuntimeError(
                    f"duhub exited early (code {self.proc.returncode}):\n" + "".join(self.output)
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait(timeout=30)
                self._drainer.join(timeout=5)
                raise TimeoutError(
                    f"duhub never said it was ready in {timeout} s, killed it:\n"
                    + "".join(self.output)
                )
            time.sleep(0.02)

    def _exited(self) -> bool:
        """Whether the process ended; if so, its last lines are in the output (within 5 s)."""
        if self.proc.poll() is None:
            return False
        self._drainer.join(timeout=5)  # bounded: a grandchild may hold the pipe open
        return True

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def address(self) -> str:
        return self.match.group(1)

    def find(self, pattern: re.Pattern[str], timeout: float = 10) -> re.Match[str]:
        """Return the first line of output matching `pattern`, waiting for it to come."""
        deadline = time.monotonic() + timeout
        while True:
            exited = self._exited()
            for line in list(self.output):
                found = pattern.search(line.rstrip("\n"))
                if found:
                    return found
            if exited or time.monotonic() > deadline:
                raise TimeoutError(f"no line matches {pattern.pattern}:\n" + "".join(self.output))
            time.sleep(0.05)

    @property
    def dashboard(self) -> str:
        """The dashboard's URL, from the line the command printed."""
        return self.find(DASHBOARD).group(1)

    def sigterm_timed(self) -> tuple[int, float, str]:
        """SIGTERM it and wait: its exit code, the seconds it took, its last output."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        took = time.monotonic() - t0
        self._drainer.join(timeout=5)
        return code, took, "".join(self.output)[-4000:]

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class HubProcess(DuhubProcess):
    """`duhub up` on a loopback port picked by the OS; the address is read from its banner."""

    def __init__(self, data_dir: Path, *extra: str, simulate: bool = False) -> None:
        args = ["up", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"]
        args += ["--http", "127.0.0.1:0", *extra]
        if not simulate:
            args.append("--no-simulate")
        super().__init__(args, ADDRESS)


def serve(service: str, *options: str) -> DuhubProcess:
    """Start `duhub serve SERVICE` (on a port picked by the OS)."""
    if service == "aggregate":
        return DuhubProcess(["serve", service, *options], re.compile(r"(duhub aggregate)"))
    http = ["--http", "127.0.0.1:0"] if service == "query" else []
    return DuhubProcess(
        ["serve", service, "--listen", "127.0.0.1:0", *http, *options],
        re.compile(r"listening on (\S+)"),
    )


def publish_in_flight(target: str, outbox: Path) -> subprocess.Popen[bytes]:
    """`duhub publish` of the quickstart file to `target`, left running (kill it): a publish
    whose append waits on a frozen broker."""
    quickstart = Path(__file__).resolve().parents[2] / "examples" / "quickstart.jsonl"
    return subprocess.Popen(
        [DUHUB, "publish", str(quickstart), "--wait", "0", "--target", target]
        + ["--outbox", str(outbox)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def duhub(address: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the duhub command against a hub; return the finished process."""
    return subprocess.run(
        [DUHUB, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DUHUB_TARGET": address},
    )


def duhub_json(address: str, *args: str) -> dict:  # type: ignore[type-arg]
    done = duhub(address, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def stat_values(address: str, *args: str) -> dict[str, int]:
    """Return the single row of an ungrouped statistics answer, as ints."""
    reply = duhub_json(address, "query", "stats", *args)
    (row,) = reply["rows"]
    return {k: int(v) for k, v in row["values"].items()}
