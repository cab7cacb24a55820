"""Which build of duhub runs: its package version and, run from a git checkout, its commit.

The version alone tells builds apart only when it is moved, and it was not between commits:
an operator rolling a hub back or forward (deploy/README.md, "Upgrading") could not tell which
build a process ran, nor whether the one still writing was the older. So `duhub --version`,
each server's banner and /metrics (duhub_build_info) name the commit too, and say when the
files git tracks differ from it. A build installed without its checkout names its version only.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

# The checkout this package is run from, when it is run from one (`make setup` installs it
# editable): its .git sits beside the package. Installed elsewhere (site-packages), no .git is
# there, and a repository further up (a venv inside some other checkout) is not this build's.
SOURCE = Path(__file__).resolve().parent.parent
GIT_TIMEOUT_S = 5.0
SHORT = 12  # hex digits of the commit shown to people; /metrics carries all 40


@functools.cache
def version() -> str:
    """Return the installed package's version, or "unknown" when it is not installed."""
    try:
        return metadata.version("duhub")
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def commit(source: Path = SOURCE) -> tuple[str, bool]:
    """Return the commit checked out at `source` and whether the files git tracks differ from
    it; ("", False) when `source` is no checkout or git cannot tell."""
    if not (source / ".git").exists():
        return "", False
    try:
        head = _git(source, "rev-parse", "--verify", "HEAD")
        changed = _git(source, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "", False
    return head, bool(changed)


def describe(source: Path = SOURCE) -> str:
    """Return the build in a line for people: "duhub 0.1.0 (commit 0123456789ab, modified)"."""
    head, modified = commit(source)
    if not head:
        return f"duhub {version()}"
    return f"duhub {version()} (commit {head[:SHORT]}{', modified' if modified else ''})"


def labels(source: Path = SOURCE) -> dict[str, str]:
    """Return the build as /metrics' duhub_build_info labels."""
    head, modified = commit(source)
    return {"version": version(), "commit": head, "modified": "true" if modified else "false"}


def _git(source: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(source), *args],
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT_S,
        check=True,
    )
    return done.stdout.strip()
